/**
 * Notices changes to a file (`stepping-worker --databases <file>`), so an edit takes effect
 * at once instead of at the next periodic re-read. It watches the file's directory, not the
 * file: editors that save by writing a new file and renaming it over the old one replace
 * the inode a watch on the file would hold. Best effort: where watching is not available
 * (no inotify, a network file system), nothing fires and the periodic re-read still runs.
 */
import { type FSWatcher, watch } from 'node:fs';
import path from 'node:path';

/** Calls `onChange` once a burst of changes to `file` has settled for `settleMs`; returns a stop function. */
export function watchFile(file: string, onChange: () => void, settleMs: number): () => void {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, { persistent: false }, (_event, name) => {
      // Some platforms do not say which file changed: take it as this one.
      if (name !== null && name.toString() !== base) return;
      clearTimeout(timer);
      timer = setTimeout(onChange, settleMs);
    });
    // A watch that fails later (the directory removed) just ends; the re-read goes on.
    watcher.on('error', () => watcher?.close());
  } catch {
    // Watching is not available here: the periodic re-read is all there is.
  }
  return () => {
    clearTimeout(timer);
    watcher?.close();
  };
}
