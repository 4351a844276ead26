/**
 * The server engine: PostgreSQL through a `pg` connection pool. The pool outlives the server: a connection the server
 * ends (restart, failover, idle kill) is dropped from the pool instead of crashing the process (`error` listeners on
 * the pool and on every checked-out client), a query that cannot reach the server fails within seconds with
 * UnavailableError (the services answer 503 with Retry-After), and the next query opens a fresh connection, so the
 * service resumes by itself when PostgreSQL is back.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { UnavailableError } from '@medshare/crypto';
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

/** SQLSTATE classes and codes that mean "the server is not there", not "the statement is wrong". */
const UNAVAILABLE_SQLSTATE = /^(08|57P0[1-3]|53300)/;
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);
/** How long a query waits for a connection before it fails (a down server must not hang requests). */
const CONNECT_TIMEOUT_MS = 3_000;

/** Whether a pg error says the server is unreachable or went away (rather than that a statement failed). */
export function isConnectionError(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.has(code))) return true;
  return (
    typeof message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(message)
  );
}

/** A connection failure as the taxonomy's UnavailableError; anything else unchanged. */
function unavailable(error: unknown): unknown {
  return isConnectionError(error) ? new UnavailableError('the database is unavailable; retry shortly', 2) : error;
}

/** Opens a pool on `url`; with `schema`, that schema is created and put first on every connection's search_path. */
export async function openPostgres(url: string, schema?: string): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    ...(schema === undefined ? {} : { options: `-c search_path=${schema},public` }),
  });
  // An idle connection the server ended: pg removes it from the pool; without a listener the process would die.
  pool.on('error', () => undefined);
  if (schema !== undefined)
    await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`).catch((error: unknown) => {
      throw unavailable(error);
    });
  const query = async <Row>(sql: string, params: readonly unknown[] = [], options?: QueryOptions): Promise<QueryResult<Row>> => {
    try {
      const result = await pool.query(statement(sql, params, options));
      return { rows: result.rows as Row[] };
    } catch (error) {
      throw unavailable(error);
    }
  };
  return {
    engine: 'postgres',
    query,
    async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect().catch((error: unknown) => {
        throw unavailable(error);
      });
      // A checked-out client whose connection ends emits 'error' on itself, not on the pool.
      let broken: Error | undefined;
      const onError = (error: Error) => (broken = error);
      client.on('error', onError);
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
        if (isConnectionError(error)) broken ??= error as Error;
        // Nothing was acknowledged: a failed COMMIT or a lost connection leaves the transaction rolled back or unknown,
        // and the caller hears UnavailableError (uploads are idempotent, so a retry is safe).
        if (broken === undefined) await client.query('ROLLBACK').catch(() => undefined);
        throw unavailable(error);
      } finally {
        client.off('error', onError);
        // A broken connection is destroyed rather than returned to the pool.
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}
