import net from "node:net";
import { PlumError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

function free(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

export const portsFree: PreflightCheck = {
  id: "ports",
  title: "the edge proxy and console ports are free",
  categories: ["install", "doctor"],
  async run({ config }) {
    const wanted = [
      { what: "edge proxy (http.port)", port: config.http.port, host: config.http.host },
      { what: "ops console (console.port)", port: config.console.port, host: config.console.host },
    ];
    const taken = [];
    for (const w of wanted) if (w.port !== 0 && !(await free(w.port, w.host))) taken.push(`${w.what} ${w.host}:${w.port}`);
    if (taken.length > 0)
      throw new PlumError(`in use: ${taken.join(", ")}`, {
        hint: "stop what listens there (is the appliance already running?) or choose other ports in plum.yaml",
      });
    return wanted.map((w) => `${w.host}:${w.port}`).join(", ");
  },
};
