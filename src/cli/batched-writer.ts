/**
 * Joins the text written within one turn of the event loop into one write. A worker that
 * settles a batch of units logs three lines per one-step job in that turn, and stdout to a
 * pipe or a file is one synchronous system call per write on Linux: the `stepping-worker`
 * bin spent 8.5% of its CPU on them while it started 1,000 tenant databases.
 */

/** Pending text past this many characters is written at once, not at the end of the turn. */
export const BATCHED_WRITER_MAX_PENDING = 65_536;

export interface BatchedWriter {
  /** Queues text; it is written at the end of this turn (or now, past the size cap). */
  write(text: string): void;
  /** Writes what is pending now (at process exit, so no line is lost). */
  flush(): void;
}

export function batchedWriter(write: (text: string) => void): BatchedWriter {
  let pending: string[] = [];
  let size = 0;
  let scheduled = false;
  const flush = () => {
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    size = 0;
    write(text);
  };
  return {
    write(text) {
      pending.push(text);
      size += text.length;
      if (size >= BATCHED_WRITER_MAX_PENDING) {
        flush();
        return;
      }
      if (!scheduled) {
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          flush();
        });
      }
    },
    flush,
  };
}
