/**
 * What every scenario gets: the parameters, fresh databases (cloned from a migrated
 * template per library), the server's CPU meter, and the place to record figures.
 */
import { DatabaseFactory, type FunctionStats, type TableStats } from './db.js';
import { LIBRARIES } from './libraries.js';
import type { BenchParams } from './params.js';
import type { LibraryName } from './protocol.js';
import type { StatementStat } from './query-counter.js';
import type { ServerCpu } from './server-cpu.js';

/** Who produced a figure: a library, or the plain-SQL floor. */
export type Who = LibraryName | 'floor';

/** The database-side picture of one worker run, for the profile section. */
export interface ProfileSample {
  scenario: string;
  library: LibraryName;
  rep: number;
  steps: number;
  elapsedMs: number;
  statements: StatementStat[];
  functions: FunctionStats[];
  tables: TableStats[];
}

/** Every figure of every repetition. */
export class Results {
  readonly figures = new Map<string, Map<Who, number[]>>();
  readonly profiles: ProfileSample[] = [];
  readonly failures: string[] = [];

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
    private readonly templates: Record<LibraryName, string>,
    readonly serverCpu: ServerCpu | null,
    readonly log: (line: string) => void,
  ) {}

  /** Makes one migrated template database per library. */
  static async create(
    params: BenchParams,
    factory: DatabaseFactory,
    serverCpu: ServerCpu | null,
    log: (line: string) => void,
  ): Promise<BenchContext> {
    const templates = {} as Record<LibraryName, string>;
    for (const library of Object.values(LIBRARIES)) {
      const name = await factory.create(`tpl_${library.name}`);
      await library.migrate(factory.url(name));
      templates[library.name] = name;
    }
    return new BenchContext(params, factory, templates, serverCpu, log);
  }

  /** Runs `fn` on a fresh, migrated database of `library`, dropped afterwards. */
  async withFreshDatabase<T>(
    library: LibraryName,
    label: string,
    fn: (url: string) => Promise<T>,
  ): Promise<T> {
    const name = await this.factory.create(`${library}_${label}`, this.templates[library]);
    try {
      return await fn(this.factory.url(name));
    } finally {
      await this.factory.drop(name);
    }
  }
}
