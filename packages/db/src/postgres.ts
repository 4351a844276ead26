/** The server engine: PostgreSQL through a `pg` connection pool. */
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Database, Queryable, QueryOptions, QueryResult } from './database.ts';

// Return int8 (bigint, count(*)) as JS numbers like PGlite does; log sizes stay far below 2^53.
const INT8_OID = 20;
pg.types.setTypeParser(INT8_OID, (text) => Number(text));

const statementNames = new Map<string, string>();

/** pg's query config; a prepared statement is named by a digest of its text (pg prepares a name once per connection). */
function statement(sql: string, params: readonly unknown[], options: QueryOptions | undefined): pg.QueryConfig {
  if (!options?.prepared) return { text: sql, values: params as unknown[] };
  let name = statementNames.get(sql);
  if (name === undefined) {
    name = `medshare_${createHash('sha256').update(sql).digest('hex').slice(0, 32)}`;
    statementNames.set(sql, name);
  }
  return { name, text: sql, values: params as unknown[] };
}

/** Opens a pool on `url`; with `schema`, that schema is created and put first on every connection's search_path. */
export async function openPostgres(url: string, schema?: string): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    ...(schema === undefined ? {} : { options: `-c search_path=${schema},public` }),
  });
  if (schema !== undefined) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  const query = async <Row>(sql: string, params: readonly unknown[] = [], options?: QueryOptions): Promise<QueryResult<Row>> => {
    const result = await pool.query(statement(sql, params, options));
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
          query: async <Row>(sql: string, params: readonly unknown[] = [], options?: QueryOptions) => ({
            rows: (await client.query(statement(sql, params, options))).rows as Row[],
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
