/**
 * A reader that stops early (`plumctl backup list | head -1`) closes the pipe: the next write fails with EPIPE,
 * which unhandled crashes the process with a stack trace. Instead what is left to print goes nowhere and the
 * command ends as it would have: its work done (an audit row it writes after printing is still written), exit 0
 * unless it failed. Like `git log | head -1` under `set -o pipefail`, a reader that had enough is no error
 * (a shell's 141, SIGPIPE, would fail such a pipeline). Node ignores SIGPIPE, so EPIPE is all that arrives.
 */
export function endQuietlyWhenReaderCloses(stream: NodeJS.WriteStream): void {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE" || err.code === "ERR_STREAM_DESTROYED") return; // the stream is destroyed: later writes are dropped
    throw err;
  });
}
