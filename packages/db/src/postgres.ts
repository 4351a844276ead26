/** The server engine: PostgreSQL through a `pg` connection pool. */
import pg from 'pg';
import type { Database, Queryable, QueryResult } from './database.ts';

// Return int8 (bigint, count(*)) as JS numbers like PGlite does; log sizes stay far below 2^53.
const INT8_OID = 20;
pg.types.setTypeParser(INT8_OID, (text) => Number(text));

/** Opens a pool on `url`; with `schema`, that schema is created and put first on every connection's search_path. */
export async function openPostgres(url: string, schema?: string): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    ...(schema === undefined ? {} : { options: `-c search_path=${schema},public` }),
  });
  if (schema !== undefined) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  const query = async <Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<Row>> => {
    const result = await pool.query(sql, params as unknown[]);
    return { rows: result.rows as Row[] };
  };
  return {
    engine: 'postgres',
    query,
    async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          query: async <Row>(sql: string, params: readonly unknown[] = []) => ({
            rows: (await client.query(sql, params as unknown[])).rows as Row[],
          }),
        };
        const value = await work(tx);
        await client.query('COMMIT');
        return value;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
