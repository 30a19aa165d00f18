import path from "node:path";

export type ResticVerb = "backup" | "cat" | "check" | "copy" | "dump" | "forget" | "init" | "key" | "prune" | "restore" | "snapshots" | "unlock";

/**
 * A restic command line, the verb first. It never names a repository: restic reads the repository (and the
 * source of a copy) from RESTIC_REPOSITORY / RESTIC_FROM_REPOSITORY, since a URL can carry credentials.
 */
export type VerbArgs = [ResticVerb, ...string[]];

/** restic splits `--tag` values on commas. */
export function tagList(tags: string[]): string {
  for (const t of tags) if (t === "" || t.includes(",")) throw new Error(`invalid restic tag ${JSON.stringify(t)}: empty or with a comma`);
  return tags.join(",");
}

/**
 * The arguments of each restic verb, pure (the wrapper in restic.ts runs them). `--json` wherever restic
 * 0.14 has it; `check`, `prune`, `restore` print text only.
 */
export const resticArgs = {
  /** `copyChunkerParams` (with a source repository in RESTIC_FROM_REPOSITORY): a second site that deduplicates copies like the first. */
  init(opts: { fromRepo?: boolean; copyChunkerParams?: boolean } = {}): VerbArgs {
    if (opts.copyChunkerParams && !opts.fromRepo) throw new Error("init: copyChunkerParams needs fromRepo");
    return ["init", ...(opts.copyChunkerParams ? ["--copy-chunker-params"] : [])];
  },
  /** One `--tag` per tag: a snapshot carries each; stdin as one file named `filename`, or absolute paths. */
  backup(tags: string[], source: { stdinFilename: string } | { paths: string[] }): VerbArgs {
    const sources = "paths" in source ? source.paths.map((p) => path.resolve(p)) : ["--stdin", "--stdin-filename", source.stdinFilename];
    if (sources.length === 0) throw new Error("backupPaths: no path given");
    return ["backup", "--json", ...tags.flatMap((t) => ["--tag", tagList([t])]), ...sources];
  },
  /** Snapshots carrying every one of `tags` (one `--tag a,b`), or those with the given ids. */
  snapshots(opts: { tags?: string[]; ids?: string[] } = {}): VerbArgs {
    const tagFilter = opts.tags && opts.tags.length > 0 ? ["--tag", tagList(opts.tags)] : [];
    return ["snapshots", "--json", ...tagFilter, ...(opts.ids ?? [])];
  },
  forget(snapshotIds: string[]): VerbArgs {
    if (snapshotIds.length === 0) throw new Error("forget: no snapshot given (restic would forget nothing, or with policies, more)");
    return ["forget", ...snapshotIds];
  },
  prune(): VerbArgs {
    return ["prune"];
  },
  /** The source repository goes in RESTIC_FROM_REPOSITORY (restic-process.ts), never here. */
  copy(snapshotIds: string[]): VerbArgs {
    if (snapshotIds.length === 0) throw new Error("copy: no snapshot given (restic would copy every snapshot)");
    return ["copy", ...snapshotIds];
  },
  check(readDataSubset?: string): VerbArgs {
    return ["check", ...(readDataSubset ? ["--read-data-subset", readDataSubset] : [])];
  },
  restore(snapshotId: string, target: string, include: string[] = []): VerbArgs {
    return ["restore", snapshotId, "--target", path.resolve(target), ...include.flatMap((p) => ["--include", p])];
  },
  dump(snapshotId: string, filePath: string): VerbArgs {
    return ["dump", snapshotId, filePath];
  },
  unlock(): VerbArgs {
    return ["unlock"];
  },
  catConfig(): VerbArgs {
    return ["cat", "config"];
  },
  keyList(): VerbArgs {
    return ["key", "list", "--json"];
  },
};
