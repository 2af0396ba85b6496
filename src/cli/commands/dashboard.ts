/**
 * `stepping dashboard [--port N] [--host H] [--allow-actions] [--max-connections N]`: serves the web dashboard
 * (src/dashboard) until SIGINT or SIGTERM; a second signal exits at once (exit code 1).
 */
import { isIP } from 'node:net';

import { DEFAULT_DASHBOARD_HOST, DEFAULT_DASHBOARD_PORT, startDashboard } from '../../dashboard/server.js';
import { parseInteger, UsageError } from '../args.js';
import type { ServerCommand } from './command.js';

function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || (isIP(bare) === 4 && bare.startsWith('127.'));
}

/** Resolves on the first SIGINT or SIGTERM; a second one ends the process at once. */
function untilSignal(onSecond: () => void): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const first = (signal: NodeJS.Signals) => {
      process.off('SIGINT', first);
      process.off('SIGTERM', first);
      process.once('SIGINT', onSecond);
      process.once('SIGTERM', onSecond);
      resolve(signal);
    };
    process.on('SIGINT', first);
    process.on('SIGTERM', first);
  });
}

/** The dashboard command. */
export const dashboardCommand: ServerCommand = {
  name: 'dashboard',
  synopsis: 'dashboard [--port N] [--host H] [--allow-actions] [--max-connections N]',
  summary:
    'serve a web dashboard: queues, workers, failing steps, jobs; retry/cancel with --allow-actions (--databases: pick one)',
  flags: ['port', 'host', 'allowActions', 'maxConnections'],
  args: [],
  server: true,
  prepare: (_args, flags) => {
    const port =
      flags.port === undefined ? DEFAULT_DASHBOARD_PORT : parseInteger('--port', flags.port, 0, 65_535);
    const host = flags.host ?? DEFAULT_DASHBOARD_HOST;
    if (host.trim() === '') throw new UsageError('--host must name a host or an address');
    const allowActions = flags.allowActions ?? false;
    const maxConnections =
      flags.maxConnections === undefined
        ? undefined
        : parseInteger('--max-connections', flags.maxConnections, 1, 100_000);
    return async (ctx) => {
      const dashboard = await startDashboard({
        ...(ctx.databases ? { databases: ctx.databases } : { connectionString: ctx.databaseUrl! }),
        schema: ctx.schema,
        host,
        port,
        allowActions,
        ...(maxConnections !== undefined ? { maxConnections } : {}),
        log: (line) => ctx.note(line),
      });
      const stopped = untilSignal(() => {
        ctx.note('stepping dashboard: second signal, exiting at once');
        process.exit(1);
      });
      if (!isLoopback(host)) {
        ctx.note(
          `note: listening on ${host}: anyone who can reach this port can read every job` +
            (allowActions ? ' and retry or cancel it' : '') +
            ' (the dashboard has no login; prefer 127.0.0.1 and an SSH tunnel)',
        );
      }
      const mode = allowActions ? 'retry and cancel allowed' : 'read-only';
      if (ctx.json) ctx.printJson({ url: dashboard.url, allow_actions: allowActions });
      else ctx.print(`stepping dashboard on ${dashboard.url} (${mode}); Ctrl+C stops it`);
      const signal = await stopped;
      ctx.note(`stepping dashboard: ${signal}, stopping`);
      await dashboard.close();
    };
  },
};
