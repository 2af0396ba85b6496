/**
 * What every scenario gets: the parameters, fresh databases (cloned from a migrated
 * template per library), the worker children's Node binary, the server's CPU meter, and
 * the place to record figures.
 */
import { DatabaseFactory, type FunctionStats, type TableStats } from './db.js';
import { LIBRARIES } from './libraries.js';
import type { NodeBinary } from './node-binary.js';
import type { BenchParams } from './params.js';
import type { StatementStat } from './query-counter.js';
import type { ServerCpu } from './server-cpu.js';
import type { LibraryName, Variant } from './variants.js';
import type { WalKind, WalMeter } from './wal.js';

/** Who produced a figure: a variant id (`graphile:best`), or `floor` for the plain-SQL floor. */
export type Who = string;

/** The database-side picture of one worker run, for the profile section. */
export interface ProfileSample {
  scenario: string;
  variant: string;
  rep: number;
  steps: number;
  elapsedMs: number;
  statements: StatementStat[];
  functions: FunctionStats[];
  tables: TableStats[];
  /** The database's own WAL by record kind (empty when it could not be decoded). */
  walKinds: WalKind[];
}

/** Every figure of every repetition. */
export class Results {
  readonly figures = new Map<string, Map<Who, number[]>>();
  readonly profiles: ProfileSample[] = [];
  readonly failures: string[] = [];
  /** Runs that hit the drain cap, as `figure/variant`. */
  readonly capped = new Set<string>();
  /** `figure/variant` whose WAL was decoded once (later repetitions skip the decoding). */
  readonly walDecoded = new Set<string>();

  record(figure: string, who: Who, value: number): void {
    let byWho = this.figures.get(figure);
    if (!byWho) this.figures.set(figure, (byWho = new Map()));
    const list = byWho.get(who) ?? [];
    list.push(value);
    byWho.set(who, list);
  }

  values(figure: string, who: Who): number[] {
    return this.figures.get(figure)?.get(who) ?? [];
  }
}

/** Shared state of a benchmark run. */
export class BenchContext {
  readonly results = new Results();

  private constructor(
    readonly params: BenchParams,
    readonly factory: DatabaseFactory,
    private readonly templates: Map<LibraryName, string>,
    readonly node: NodeBinary,
    readonly serverCpu: ServerCpu | null,
    readonly wal: WalMeter | null,
    readonly log: (line: string) => void,
  ) {}

  /** Makes one migrated template database per library that `variants` use. */
  static async create(
    params: BenchParams,
    factory: DatabaseFactory,
    variants: readonly Variant[],
    node: NodeBinary,
    serverCpu: ServerCpu | null,
    wal: WalMeter | null,
    log: (line: string) => void,
  ): Promise<BenchContext> {
    const templates = new Map<LibraryName, string>();
    for (const library of new Set(variants.map((v) => v.library))) {
      const name = await factory.create(`tpl_${library}`);
      await LIBRARIES[library].migrate(factory.url(name));
      templates.set(library, name);
    }
    return new BenchContext(params, factory, templates, node, serverCpu, wal, log);
  }

  /** Runs `fn` on a fresh, migrated database of `library` (configured for `variant`), dropped afterwards. */
  async withFreshDatabase<T>(
    library: LibraryName,
    label: string,
    fn: (url: string) => Promise<T>,
    variant?: Variant,
  ): Promise<T> {
    const template = this.templates.get(library);
    if (!template) throw new Error(`no template database for ${library}`);
    const name = await this.factory.create(`${library}_${label}`, template);
    try {
      if (variant) await LIBRARIES[library].configure?.(this.factory.url(name), variant);
      return await fn(this.factory.url(name));
    } finally {
      await this.factory.drop(name);
    }
  }
}
