/**
 * What long-running commands do with a terminal: one progress line on stderr, a cleared
 * screen between `status --watch` refreshes, and a wait that SIGINT ends. Control
 * sequences are written to the raw output (terminalIo would escape them), and only when
 * that stream is a terminal; the text in them is escaped like all other output.
 */
import { escapeControl } from '../text.js';
import type { CliIo } from './args.js';

/** Terminal controls a command may use. */
export interface TerminalControls {
  /** Rewrites the one progress line on stderr ('' clears it); nothing unless stderr is a terminal. */
  progress(text: string): void;
  /** Clears the screen when stdout is a terminal; returns whether it did. */
  clearScreen(): boolean;
  /**
   * Waits `ms`, or less when interrupted; resolves true when interrupted. The first call
   * starts listening for SIGINT (unless the io brings its own signal), for good: a SIGINT
   * while a query runs then ends the command at its next pause instead of killing it.
   */
  pause(ms: number): Promise<boolean>;
  /** Stops listening for SIGINT. */
  dispose(): void;
}

/** The controls over the raw (unescaped) io. */
export function terminalControls(raw: CliIo): TerminalControls {
  let shown = false;
  let own: { controller: AbortController; onSignal: () => void } | null = null;
  const interruption = (): AbortSignal => {
    if (raw.interrupt) return raw.interrupt;
    if (!own) {
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.on('SIGINT', onSignal);
      own = { controller, onSignal };
    }
    return own.controller.signal;
  };
  return {
    progress(text) {
      if (!raw.stderrIsTerminal) return;
      if (text === '' && !shown) return;
      raw.stderr(`\r\x1b[K${escapeControl(text)}`);
      shown = text !== '';
    },
    clearScreen() {
      if (!raw.stdoutIsTerminal) return false;
      raw.stdout('\x1b[H\x1b[2J\x1b[3J');
      return true;
    },
    pause(ms) {
      const signal = interruption();
      return new Promise((resolve) => {
        if (signal.aborted) return resolve(true);
        const onAbort = () => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          signal.removeEventListener('abort', onAbort);
          resolve(false);
        }, ms);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    },
    dispose() {
      if (own) process.removeListener('SIGINT', own.onSignal);
      own = null;
    },
  };
}
