/**
 * One small database interface over two engines: embedded PGlite (Postgres compiled to WASM, in memory or in a
 * data directory) for a demo, a test or a small clinic, and a PostgreSQL server through `pg` when services scale
 * out. Both speak the same SQL dialect and `$1` parameters, so every component writes its SQL once.
 */
import { MalformedInputError } from '@medshare/crypto';

/** Result of one statement: the returned rows, typed by the caller. */
export interface QueryResult<Row> {
  rows: Row[];
}

/** How a statement is run. */
export interface QueryOptions {
  /**
   * PostgreSQL: prepare the statement once per connection and reuse its plan (for a fixed statement on a hot
   * path; never for SQL whose text varies, each text would stay prepared). PGlite ignores it.
   */
  prepared?: boolean;
}

/** Anything that runs parameterised SQL: the database itself or an open transaction. */
export interface Queryable {
  /** Runs one statement with `$1..$n` parameters. */
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<Row>>;
}

/** A database handle shared by the platform's components. */
export interface Database extends Queryable {
  /** Which engine is behind this handle. */
  readonly engine: 'pglite' | 'postgres';
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Releases the engine: closes PGlite or ends the connection pool. */
  close(): Promise<void>;
}

/** Where the data lives: a PostgreSQL URL, a PGlite data directory, or (neither) PGlite in memory. */
export interface OpenDatabaseOptions {
  /** `postgres://...`; when given, PostgreSQL is used and `dataDir` is ignored. */
  url?: string;
  /** PGlite data directory; in memory when absent. */
  dataDir?: string;
  /** PostgreSQL only: a schema put first on every connection's search_path (created if missing). */
  schema?: string;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Opens PGlite (no url) or PostgreSQL (url) behind the `Database` interface. */
export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<Database> {
  if (options.schema !== undefined && !SCHEMA_NAME.test(options.schema)) {
    throw new MalformedInputError('schema must be a lower-case SQL identifier of at most 63 characters');
  }
  if (options.url !== undefined) {
    const { openPostgres } = await import('./postgres.ts');
    return openPostgres(options.url, options.schema);
  }
  const { openPglite } = await import('./pglite.ts');
  return openPglite(options.dataDir);
}
