/** The text of progress lines: a bar for work of known size. */

/** `[########------------]` for `done` of `total` (a full bar when total is 0). */
export function progressBar(done: number, total: number, width = 20): string {
  const filled = total <= 0 ? width : Math.min(width, Math.floor((done / total) * width));
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}
