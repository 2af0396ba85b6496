/**
 * WAL written by one database over an interval. pg_current_wal_lsn() before and after
 * counts every database of the server (a shared server's other sessions included), so
 * when the server runs on this machine and its major version's pg_waldump is installed,
 * the interval's records are decoded and attributed: a record is the database's when it
 * touches one of its relations (block references name the database OID), or belongs to a
 * transaction that did (its commit record). Checkpoint and running-transaction records of
 * the server are nobody's. The breakdown by record kind (Heap UPDATE, Btree INSERT_LEAF,
 * full-page images, ...) is what the analysis in docs/benchmarks.md reads.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

import pg from 'pg';

import { queryOnce } from './db.js';

/** One kind of record (`rmgr/OP`), with its count and bytes. */
export interface WalKind {
  kind: string;
  records: number;
  bytes: number;
  /** Bytes of full-page images (record total minus its main data). */
  fpiBytes: number;
}

/** The database's own WAL over an interval. */
export interface OwnWal {
  bytes: number;
  records: number;
  fpiBytes: number;
  kinds: WalKind[];
}

const LINE =
  /^rmgr: (\S+)\s+len \(rec\/tot\):\s*(\d+)\/\s*(\d+), tx:\s*(\d+), lsn: \S+, prev \S+, desc: (\S+)(.*)$/;
const REL = / rel \d+\/(\d+)\/\d+/g;

/**
 * Sums the records of `pg_waldump` output lines that belong to database `dbOid`: those
 * whose block references name a relation of it, and the later records (commits) of
 * transactions that wrote such a record. Server records (checkpoints, running
 * transactions) and other databases' records are left out.
 */
export async function attributeWal(
  lines: AsyncIterable<string> | Iterable<string>,
  dbOid: number,
): Promise<OwnWal> {
  const ours = new Set<string>();
  const kinds = new Map<string, WalKind>();
  let bytes = 0;
  let records = 0;
  let fpiBytes = 0;
  const db = String(dbOid);
  const marker = `/${db}/`;
  for await (const line of lines) {
    // Most lines of a shared server are other databases': skip them before the regex.
    const mentions = line.includes(marker);
    if (!mentions) {
      const at = line.indexOf(', tx:');
      const tx = at < 0 ? '' : line.slice(at + 5, line.indexOf(',', at + 5)).trim();
      if (tx === '0' || !ours.has(tx)) continue;
    }
    const m = LINE.exec(line);
    if (!m) continue;
    const [, rmgr, rec, tot, tx, op, rest] = m;
    let mine = false;
    if (mentions) {
      for (const r of rest!.matchAll(REL)) {
        if (r[1] === db) {
          mine = true;
          break;
        }
      }
    }
    if (mine && tx !== '0') ours.add(tx!);
    else if (!mine && tx !== '0' && ours.has(tx!)) mine = true;
    if (!mine) continue;
    const total = Number(tot);
    const fpi = Math.max(0, total - Number(rec));
    bytes += total;
    records += 1;
    fpiBytes += fpi;
    const kind = `${rmgr}/${op}`;
    const k = kinds.get(kind) ?? { kind, records: 0, bytes: 0, fpiBytes: 0 };
    k.records += 1;
    k.bytes += total;
    k.fpiBytes += fpi;
    kinds.set(kind, k);
  }
  return { bytes, records, fpiBytes, kinds: [...kinds.values()].sort((a, b) => b.bytes - a.bytes) };
}

/** Decodes WAL of a local server with pg_waldump; null when that is not possible. */
export class WalMeter {
  /** Why the last decode returned null (for the log). */
  lastError = '';

  private constructor(
    private readonly waldump: string,
    private readonly walDir: string,
  ) {}

  /** Finds the server's pg_wal directory and a pg_waldump of its major version, or returns null. */
  static async locate(serverUrl: string): Promise<WalMeter | null> {
    try {
      const rows = await queryOnce<{ dir: string; v: string }>(
        serverUrl,
        `SELECT current_setting('data_directory') AS dir, current_setting('server_version_num') AS v`,
      );
      const dir = rows[0]?.dir;
      const major = Math.floor(Number(rows[0]?.v ?? 0) / 10000);
      const waldump = `/usr/lib/postgresql/${major}/bin/pg_waldump`;
      const walDir = dir ? path.join(dir, 'pg_wal') : '';
      if (!dir || !existsSync(walDir) || !existsSync(waldump)) return null;
      return new WalMeter(waldump, walDir);
    } catch {
      return null;
    }
  }

  /** The records of database `dbOid` between two LSNs; null when pg_waldump could not read them. */
  async own(dbOid: number, startLsn: string, endLsn: string): Promise<OwnWal | null> {
    const child = spawn(this.waldump, ['-p', this.walDir, '-s', startLsn, '-e', endLsn], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-1000)));
    const own = await attributeWal(createInterface({ input: child.stdout }), dbOid);
    const code = await new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('exit', resolve);
    });
    // pg_waldump exits non-zero when a segment was already recycled: no attribution then.
    if (code !== 0 && (own.records === 0 || /could not find file|could not open file/.test(stderr))) {
      this.lastError = stderr.trim().split('\n').pop() ?? `pg_waldump exited ${code}`;
      return null;
    }
    return own;
  }
}

/** The current WAL position as an LSN string (e.g. `1/59182DF8`). */
export async function currentLsn(url: string): Promise<string> {
  const [row] = await queryOnce<{ lsn: string }>(url, 'SELECT pg_current_wal_lsn()::text AS lsn');
  return row?.lsn ?? '0/0';
}

/** Bytes between two LSNs. */
export function lsnDiff(a: string, b: string): number {
  const parse = (lsn: string) => {
    const [hi, lo] = lsn.split('/');
    return BigInt(`0x${hi ?? '0'}`) * 0x100000000n + BigInt(`0x${lo ?? '0'}`);
  };
  return Number(parse(b) - parse(a));
}

/** The OID of the database at `url`. */
export async function databaseOid(url: string): Promise<number> {
  const [row] = await queryOnce<{ oid: number }>(
    url,
    'SELECT oid::int AS oid FROM pg_database WHERE datname = current_database()',
  );
  return row?.oid ?? 0;
}

/** Where a measured interval began. */
export interface WalMark {
  lsn: string;
  oid: number;
  /** The session holding a temporary replication slot that keeps the interval's WAL; null without one. */
  slot: pg.Client | null;
}

let slots = 0;

/**
 * Marks the start of an interval for the database at `url`. With a meter, a temporary
 * physical replication slot (dropped by the server when its session ends, so a crashed
 * benchmark leaves nothing behind) keeps the interval's WAL segments from being recycled
 * by the checkpoints of other sessions on a shared server until they are decoded.
 */
export async function walMark(url: string, meter: WalMeter | null): Promise<WalMark> {
  let slot: pg.Client | null = null;
  if (meter) {
    slot = new pg.Client({ connectionString: url });
    try {
      await slot.connect();
      await slot.query('SELECT pg_create_physical_replication_slot($1, true, true)', [
        `bench_wal_${process.pid}_${++slots}`,
      ]);
    } catch {
      await slot.end().catch(() => {});
      slot = null;
    }
  }
  return { lsn: await currentLsn(url), oid: await databaseOid(url), slot };
}

/** WAL since `mark`: server-wide bytes, and the database's own records when they can be decoded. */
export async function walSince(
  meter: WalMeter | null,
  url: string,
  mark: WalMark,
): Promise<{ serverBytes: number; own: OwnWal | null }> {
  try {
    const end = await currentLsn(url);
    const own = meter ? await meter.own(mark.oid, mark.lsn, end).catch(() => null) : null;
    return { serverBytes: lsnDiff(mark.lsn, end), own };
  } finally {
    await mark.slot?.end().catch(() => {});
  }
}
