import { appendFileSync } from "node:fs";
import { describeError, PlumError } from "../lib/errors.ts";

/**
 * One step of an install or an uninstall. `run` does it (and must be safe to run again on a host where it
 * was done before: a second install repairs); what it returns is shown after the title. `run` answers with
 * an `undo` when it changed something that a failure of a later step must put back (Ghost-CLI's rollback:
 * the list of what was done, run backwards).
 */
export interface Task {
  title: string;
  run(log: TaskLog): Promise<TaskOutcome | void>;
}

export interface TaskOutcome {
  /** A word or two after the title: "created", "kept: already there", "installed restic, …". */
  said?: string;
  undo?: () => Promise<void>;
}

/** Where a task writes its details (commands, their output): the log file whose path every failure names. */
export interface TaskLog {
  file: string;
  write(line: string): void;
}

export function taskLog(file: string): TaskLog {
  return {
    file,
    write(line: string) {
      appendFileSync(file, `${new Date().toISOString()} ${line.trimEnd()}\n`, { mode: 0o600 });
    },
  };
}

export type TaskEvent =
  | { kind: "done"; title: string; said?: string }
  | { kind: "failed"; title: string; error: unknown }
  | { kind: "undone"; title: string }
  | { kind: "undo-failed"; title: string; error: unknown };

/** A task list failed: what failed, what was put back, what could not be, and the log with the details. */
export class TaskListError extends PlumError {
  readonly failedTask: string;
  readonly undone: string[];
  readonly notUndone: string[];
  constructor(failedTask: string, cause: unknown, undone: string[], notUndone: string[], logFile: string) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`${failedTask}: ${why}`, {
      hint:
        (cause instanceof PlumError && cause.hint ? `${cause.hint}\n  ` : "") +
        (notUndone.length > 0
          ? `these steps could not be undone and need a look: ${notUndone.join("; ")}. `
          : undone.length > 0
            ? `the steps already done were undone (${undone.length}). `
            : "") +
        `the details are in ${logFile}`,
      cause,
    });
    this.failedTask = failedTask;
    this.undone = undone;
    this.notUndone = notUndone;
  }
}

/**
 * Run `tasks` in order; when one fails, undo the ones done so far, last first, and throw a TaskListError.
 * `onEvent` hears every step (the command prints them).
 */
export async function runTasks(tasks: Task[], log: TaskLog, onEvent: (e: TaskEvent) => void = () => {}): Promise<void> {
  const done: Array<{ title: string; undo: () => Promise<void> }> = [];
  for (const task of tasks) {
    log.write(`task: ${task.title}`);
    let outcome: TaskOutcome | void;
    try {
      outcome = await task.run(log);
    } catch (err) {
      log.write(`failed: ${task.title}\n${describeError(err)}`);
      onEvent({ kind: "failed", title: task.title, error: err });
      const undone: string[] = [];
      const notUndone: string[] = [];
      for (const step of done.reverse()) {
        try {
          await step.undo();
          log.write(`undone: ${step.title}`);
          undone.push(step.title);
          onEvent({ kind: "undone", title: step.title });
        } catch (undoErr) {
          log.write(`undo failed: ${step.title}\n${describeError(undoErr)}`);
          notUndone.push(`${step.title} (${undoErr instanceof Error ? undoErr.message : String(undoErr)})`);
          onEvent({ kind: "undo-failed", title: step.title, error: undoErr });
        }
      }
      throw new TaskListError(task.title, err, undone, notUndone, log.file);
    }
    log.write(`done: ${task.title}${outcome?.said ? ` — ${outcome.said}` : ""}`);
    if (outcome?.undo) done.push({ title: task.title, undo: outcome.undo });
    onEvent({ kind: "done", title: task.title, said: outcome?.said });
  }
}
