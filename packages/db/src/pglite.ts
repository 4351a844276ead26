/** The embedded engine: PGlite (https://pglite.dev), one in-process Postgres, in memory or in a directory. */
import { PGlite } from '@electric-sql/pglite';
import type { Database, Queryable, QueryResult } from './database.ts';

/** PostgreSQL's type oid of bytea. */
const BYTEA = 17;

/**
 * bytea in PostgreSQL's hex text form (`\x0a1b…`), coded by Node's native hex codec: PGlite's own codec builds a
 * string per byte and parses one per byte pair, which made a 16 MiB record cost seconds to store and to read.
 * Same text, same bytes (packages/db/test/database.test.ts compares them).
 */
export const byteaCodec = {
  /** bytea hex text → bytes, in an ArrayBuffer of their own (a small Buffer would share Node's pool slab). */
  parse(text: string): Uint8Array {
    const bytes = Buffer.from(text.slice(2), 'hex');
    return bytes.byteOffset === 0 && bytes.length === bytes.buffer.byteLength ? new Uint8Array(bytes.buffer) : new Uint8Array(bytes);
  },
  /** Bytes → bytea hex text; TypeError for anything but a Uint8Array (as PGlite's own codec refuses it). */
  serialize(value: unknown): string {
    if (!(value instanceof Uint8Array)) throw new TypeError('Invalid input for bytea type');
    return `\\x${Buffer.from(value.buffer, value.byteOffset, value.length).toString('hex')}`;
  },
};

/** Opens PGlite; a `dataDir` persists across runs, otherwise the database lives in memory. */
export async function openPglite(dataDir?: string): Promise<Database> {
  const codecs = { parsers: { [BYTEA]: byteaCodec.parse }, serializers: { [BYTEA]: byteaCodec.serialize } };
  const pg = dataDir === undefined ? new PGlite(codecs) : new PGlite(dataDir, codecs);
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
