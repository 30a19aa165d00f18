/**
 * Work that must not overlap, run one at a time per key, in the order asked, within this process. Restic
 * uses it per repository location (a second restic command would fail on an exclusive lock or pay again
 * for opening the repository); backup sets use it per staging folder.
 */
const tails = new Map<string, Promise<unknown>>();

export function oneAtATime<T>(key: string, work: () => Promise<T>): Promise<T> {
  const previous = tails.get(key) ?? Promise.resolve();
  const run = previous.then(work, work);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  tails.set(key, tail);
  void tail.then(() => {
    if (tails.get(key) === tail) tails.delete(key);
  });
  return run;
}
