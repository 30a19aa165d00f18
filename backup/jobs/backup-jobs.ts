import { randomBytes } from "node:crypto";

export type JobKind = "backup" | "copy" | "check" | "forget" | "restore" | "drill";
export type JobStatus = "queued" | "running" | "succeeded" | "failed";

/** What the console and `plumctl` see of a backup job. */
export interface JobView {
  id: string;
  kind: JobKind;
  label: string;
  status: JobStatus;
  startedBy: string;
  queuedAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  progress: string[];
  result?: unknown;
  error?: string;
}

export type Progress = (line: string) => void;
type Listener = (event: { type: "progress"; line: string } | { type: "done"; job: JobView }) => void;

const KEEP_JOBS = 50;
const KEEP_LINES = 200;

/**
 * Backup, copy, check, forget, restore and drill jobs of the agent, run one at a time in the order they were
 * asked for (restic and the databases are better served one job at a time), with their progress kept for
 * the console's live page and streamed to `plumctl`.
 */
export class BackupJobs {
  private queue: Promise<void> = Promise.resolve();
  private readonly jobs = new Map<string, JobView>();
  private readonly listeners = new Map<string, Set<Listener>>();

  enqueue(kind: JobKind, label: string, startedBy: string, work: (progress: Progress) => Promise<unknown>): JobView {
    const job: JobView = {
      id: `${kind}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`,
      kind,
      label,
      status: "queued",
      startedBy,
      queuedAt: new Date(),
      progress: [],
    };
    this.jobs.set(job.id, job);
    while (this.jobs.size > KEEP_JOBS) this.jobs.delete(this.jobs.keys().next().value!);
    const emit: Listener = (e) => this.listeners.get(job.id)?.forEach((l) => l(e));
    const progress: Progress = (line) => {
      job.progress.push(`${new Date().toISOString().slice(11, 19)} ${line}`);
      if (job.progress.length > KEEP_LINES) job.progress.splice(0, job.progress.length - KEEP_LINES);
      emit({ type: "progress", line });
    };
    this.queue = this.queue.then(async () => {
      job.status = "running";
      job.startedAt = new Date();
      try {
        job.result = await work(progress);
        job.status = "succeeded";
      } catch (err) {
        job.status = "failed";
        job.error = (err as Error).message;
        progress(`failed: ${job.error}`);
      } finally {
        job.finishedAt = new Date();
        emit({ type: "done", job });
        this.listeners.delete(job.id);
      }
    });
    return job;
  }

  get(id: string): JobView | undefined {
    return this.jobs.get(id);
  }

  list(): JobView[] {
    return [...this.jobs.values()].reverse();
  }

  /** Follow a job: progress lines as they come, then the finished job. Returns a function that stops following. */
  follow(id: string, listener: Listener): () => void {
    const job = this.jobs.get(id);
    if (job && (job.status === "succeeded" || job.status === "failed")) {
      listener({ type: "done", job });
      return () => undefined;
    }
    if (!this.listeners.has(id)) this.listeners.set(id, new Set());
    this.listeners.get(id)!.add(listener);
    return () => this.listeners.get(id)?.delete(listener);
  }

  /** Resolves when the job has finished. */
  done(id: string): Promise<JobView> {
    return new Promise((resolve) => {
      const stop = this.follow(id, (e) => {
        if (e.type === "done") {
          stop();
          resolve(e.job);
        }
      });
    });
  }
}
