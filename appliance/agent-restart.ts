import { runChild } from "../lib/child-process.ts";
import { PlumError } from "../lib/errors.ts";
import { serviceOfThisProcess } from "../lib/systemd-service.ts";

export interface RestartOutcome {
  /** "systemd": the service manager restarts the agent; "stop": the agent stops and whoever supervises it starts the next. */
  how: "systemd" | "stop";
  unit?: string;
}

/** A restart on a host where the agent is no service: said once, for the restart and for the agent upgrade. */
export function notAServiceError(what: string): PlumError {
  return new PlumError(
    `${what} needs the agent to run as the systemd service (plum.service): this agent was started by hand (npm start, plumctl agent) or in a container`,
    {
      hint: "install with `plumctl install` (from the install bundle); elsewhere stop the agent and start the new one yourself",
    },
  );
}

/**
 * Restart the agent with a handover: the instances and PostgreSQL keep serving and the next agent adopts them.
 * Under systemd, `systemctl restart --no-block` (the sockets of plum-proxy.socket and plum-console.socket stay
 * open, so no connection is refused meanwhile); with `stopOnly`, the agent just stops so (the next is started by
 * whoever supervises it). Either way the stop comes as SIGTERM, through the one stop path of `plumctl agent`.
 */
export async function restartWithHandover(handOverAtStop: () => void, opts: { stopOnly?: boolean; cancelHandover?: () => void } = {}): Promise<RestartOutcome> {
  const unit = serviceOfThisProcess();
  if (opts.stopOnly) {
    handOverAtStop();
    // After this answer has left: the caller hears how before the agent goes.
    setTimeout(() => process.kill(process.pid, "SIGTERM"), 200).unref();
    return { how: "stop" };
  }
  if (!unit) throw notAServiceError("a restart with a handover");
  handOverAtStop();
  try {
    // --no-block: systemd queues the restart and answers; its SIGTERM to this agent follows.
    await runChild(["systemctl", "restart", "--no-block", unit], { timeoutMs: 30_000, what: `systemctl restart --no-block ${unit}` });
  } catch (err) {
    // No restart is coming: a later plain stop must stop everything, not hand over to nobody.
    opts.cancelHandover?.();
    throw err;
  }
  return { how: "systemd", unit };
}
