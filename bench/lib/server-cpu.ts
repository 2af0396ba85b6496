/**
 * CPU time used by the PostgreSQL server, when it runs on this machine: the postmaster's
 * own and reaped children's time (utime, stime, cutime, cstime in /proc/<pid>/stat) plus
 * that of its live children (backends, autovacuum, checkpointer, ...). The difference of
 * two readings is the server's CPU over that interval, whichever backend did the work.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

import pg from 'pg';

/** Clock ticks per second of /proc's CPU times (getconf CLK_TCK, usually 100). */
export function ticksPerSecond(): number {
  if (cachedTicks === null) {
    try {
      cachedTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      cachedTicks = 100;
    }
  }
  return cachedTicks;
}
let cachedTicks: number | null = null;

/** CPU milliseconds (user + system) one process has used so far; NaN when it is gone. */
export function cpuMsOf(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name: state is field 3, utime and stime are fields 14 and 15.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * (1000 / ticksPerSecond());
  } catch {
    return Number.NaN;
  }
}

interface ProcStat {
  ppid: number;
  ticks: number;
}

function readStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    const num = (field: number) => Number(fields[field - 3]);
    return { ppid: num(4), ticks: num(14) + num(15) + num(16) + num(17) };
  } catch {
    return null;
  }
}

/** Reads the CPU time of a local PostgreSQL server's process tree. */
export class ServerCpu {
  private readonly msPerTick = 1000 / ticksPerSecond();

  private constructor(readonly postmasterPid: number) {}

  /** Finds the postmaster behind `url`; null when the server is not a local process. */
  static async locate(url: string): Promise<ServerCpu | null> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const backend = rows[0] ? readStat(rows[0].pid) : null;
      if (!backend || !readStat(backend.ppid)) return null;
      return new ServerCpu(backend.ppid);
    } finally {
      await client.end();
    }
  }

  /** CPU milliseconds used so far by the server's processes (live and exited). */
  read(): number {
    let ticks = readStat(this.postmasterPid)?.ticks ?? 0;
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid === this.postmasterPid) continue;
      const stat = readStat(pid);
      if (stat && stat.ppid === this.postmasterPid) ticks += stat.ticks;
    }
    return ticks * this.msPerTick;
  }
}
