import type { PlumConfig } from "../../lib/config.ts";

export type CheckCategory = "install" | "start" | "doctor";

/** What an install brings along, which the host need not have beforehand. */
export interface InstallContext {
  /** Debian packages the install bundle carries (installed when missing). */
  packages: string[];
  /** Bytes one unpacked release takes in /opt/plum. */
  releaseBytes: number;
  /** When the bundle was built: a host clock behind it is wrong. */
  builtAt: string;
  /** Where releases go (/opt/plum). */
  optDir: string;
}

export interface CheckContext {
  config: PlumConfig;
  /** Given when the checks run for `plumctl install`. */
  install?: InstallContext;
}

/** One preflight check: throws a PlumError with the measured numbers and a hint when it fails. */
export interface PreflightCheck {
  id: string;
  title: string;
  categories: CheckCategory[];
  run(ctx: CheckContext): Promise<string | void>;
}
