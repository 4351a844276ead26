/** The embedded engine: PGlite (https://pglite.dev), one in-process Postgres, in memory or in a directory. */
import { PGlite } from '@electric-sql/pglite';
import type { Database, Queryable, QueryResult } from './database.ts';

/** Opens PGlite; a `dataDir` persists across runs, otherwise the database lives in memory. */
export async function openPglite(dataDir?: string): Promise<Database> {
  const pg = dataDir === undefined ? new PGlite() : new PGlite(dataDir);
  await pg.waitReady;
  const run = (target: Pick<PGlite, 'query'>) =>
    async function query<Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<Row>> {
      const result = await target.query<Row>(sql, params as unknown[]);
      return { rows: result.rows };
    };
  return {
    engine: 'pglite',
    query: run(pg),
    transaction: <T>(work: (tx: Queryable) => Promise<T>) => pg.transaction((tx) => work({ query: run(tx) })),
    close: () => pg.close(),
  };
}
