import { PlumError } from "../../lib/errors.ts";
import type { PreflightCheck } from "./check.ts";

export const nodeVersion: PreflightCheck = {
  id: "node-version",
  title: "Node.js 20.11 or newer",
  categories: ["install", "start", "doctor"],
  async run() {
    const [major, minor] = process.versions.node.split(".").map(Number);
    if (major < 20 || (major === 20 && minor < 11)) {
      throw new PlumError(`Node.js ${process.versions.node} is too old`, { hint: "install Node.js 20 LTS (20.11 or newer)" });
    }
    return `Node.js ${process.versions.node}`;
  },
};
