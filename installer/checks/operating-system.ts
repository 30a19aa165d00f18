import { readFileSync } from "node:fs";
import { PlumError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

/** ID and VERSION_ID of /etc/os-release. */
export function osRelease(text: string): { id?: string; versionId?: string; pretty?: string } {
  const field = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?$`, "m").exec(text)?.[1];
  return { id: field("ID"), versionId: field("VERSION_ID"), pretty: field("PRETTY_NAME") };
}

export const operatingSystem: PreflightCheck = {
  id: "operating-system",
  title: "Debian 12 (the install bundle's packages are built for it)",
  categories: ["install"],
  async run({ install }) {
    let text: string;
    try {
      text = readFileSync("/etc/os-release", "utf8");
    } catch {
      throw new PlumError("this host has no /etc/os-release", { hint: "install on Debian 12 (bookworm)" });
    }
    const os = osRelease(text);
    if (os.id !== "debian" || os.versionId !== "12") {
      throw new PlumError(`this host runs ${os.pretty ?? os.id ?? "an unknown system"}, not Debian 12`, {
        hint: install
          ? "the bundle's Debian packages (restic, postgresql-client-15) are for Debian 12 (bookworm): install on Debian 12"
          : "the appliance is supported on Debian 12 (bookworm)",
      });
    }
    return os.pretty ?? "Debian 12";
  },
};
