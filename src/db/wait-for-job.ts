/**
 * Waiting for a job to finish: woken by NOTIFY on the done channel when LISTEN works,
 * polling when it does not (PgBouncer in transaction pooling mode) or while that is not
 * yet known. The database's state decides; a notification only says "read again".
 */
import { JobNotFoundError, WaitTimeoutError } from '../errors.js';
import { MAX_TIMER_MS } from '../timers.js';
import type { ListenCheck } from './listen-check.js';
import type { NotificationHub } from './notifications.js';

/** Default re-read interval while notifications cannot be relied on. */
export const WAIT_POLL_MS = 1000;

/** What waitForFinalState needs. */
export interface WaitForFinalOptions<T> {
  jobId: string;
  /** Reads the job's state (null: no such job). */
  read: () => Promise<T | null>;
  /** True when the state will not change any more. */
  isFinal: (state: T) => boolean;
  /** Listens on `doneChannel`, whose payload is `id:status,id:status,...`. */
  hub: NotificationHub;
  doneChannel: string;
  /** Tells whether the hub's NOTIFYs arrive at all. */
  listenCheck: ListenCheck;
  /** Give up after this long (WaitTimeoutError). Default: never. */
  timeoutMs?: number;
  /** Re-read interval while LISTEN does not (or not yet known to) work. Default WAIT_POLL_MS. */
  pollMs?: number;
  /** Stops the wait at once, rejecting with the signal's reason (a read in flight is not awaited). */
  signal?: AbortSignal;
}

/** True when a done-channel payload names `jobId`. */
function mentions(payload: string, jobId: string): boolean {
  return payload.split(',').some((item) => item.slice(0, item.indexOf(':')) === jobId);
}

/**
 * Resolves with the job's state once it is final. Throws JobNotFoundError when the job
 * does not exist, WaitTimeoutError when `timeoutMs` passes first.
 */
export async function waitForFinalState<T extends { status: string }>(
  options: WaitForFinalOptions<T>,
): Promise<T> {
  const { jobId, read, isFinal, timeoutMs, signal } = options;
  const pollMs = options.pollMs ?? WAIT_POLL_MS;
  // Checked before anything listens or reads.
  signal?.throwIfAborted();
  // Rejects when the signal is aborted; raced with every read and every sleep below.
  let onAbort: () => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    // The signal's reason, whatever it is (an AbortSignal's default is a DOMException).
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    onAbort = () => reject(signal?.reason);
  });
  aborted.catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  let wake: () => void = () => {};
  // Subscribed before the first read, so a job finishing in between is not missed. A
  // subscription that fails (the LISTEN connection is being made again after the server
  // went away) leaves the wait to polling instead of failing it.
  let unsubscribe: () => Promise<void> = () => Promise.resolve();
  let subscribed = true;
  const subscribing = options.hub.subscribe(
    options.doneChannel,
    (payload) => {
      if (mentions(payload, jobId)) wake();
    },
    () => wake(),
  );
  try {
    unsubscribe = await Promise.race([subscribing, aborted]);
  } catch {
    subscribed = false;
  }
  if (signal?.aborted) {
    signal.removeEventListener('abort', onAbort);
    // Undone once made (not awaited: making it may take long while its server is away).
    void subscribing.then(
      (undo) => undo(),
      () => {},
    );
    throw signal.reason;
  }
  let listening = (subscribed ? undefined : false) as boolean | undefined;
  const verdict = subscribed
    ? options.listenCheck.delivers().then((ok) => {
        listening = ok;
        // Notifications cannot be relied on: read again now, then poll.
        if (!ok) wake();
      })
    : Promise.resolve();
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  try {
    for (;;) {
      const woken = new Promise<'woken'>((resolve) => (wake = () => resolve('woken')));
      signal?.throwIfAborted();
      const reading = read();
      // Not awaited once aborted: its failure (the pool ended by close()) is nobody's concern.
      reading.catch(() => {});
      const state = await Promise.race([reading, aborted]);
      if (!state) throw new JobNotFoundError(`stepping: no job ${jobId}`);
      if (isFinal(state)) return state;
      if (deadline - Date.now() <= 0)
        throw new WaitTimeoutError(`job ${jobId} is still ${state.status} after ${timeoutMs} ms`);
      // Sleep until woken, the deadline, or (unless LISTEN is known to work) the next poll.
      // A verdict arriving meanwhile only changes how long to sleep; it is no reason to read.
      for (;;) {
        const left = deadline - Date.now();
        const sleepMs = listening === true ? left : Math.min(left, pollMs);
        let timer: NodeJS.Timeout | undefined;
        let outcome: 'woken' | 'timer' | 'verdict';
        try {
          outcome = await Promise.race([
            woken,
            aborted,
            new Promise<'timer'>((resolve) => {
              // Capped at setTimeout's limit: a longer delay would fire at once, in a loop.
              if (Number.isFinite(sleepMs))
                timer = setTimeout(() => resolve('timer'), Math.min(MAX_TIMER_MS, Math.max(0, sleepMs)));
            }),
            ...(listening === undefined ? [verdict.then(() => 'verdict' as const)] : []),
          ]);
        } finally {
          // Also when aborted: a sleep left running (up to the deadline) keeps the process alive.
          clearTimeout(timer);
        }
        if (outcome !== 'verdict') break;
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await unsubscribe();
    // The verdict outlives this call (it is the check's); keep its rejection handled.
    verdict.catch(() => {});
  }
}
