/**
 * Multi-row INSERTs: one statement per chunk of rows instead of one per row (a round trip, a parse and a plan
 * each), which is most of what a per-row INSERT costs on both engines for rows of a few KiB.
 */
import type { Queryable } from './database.ts';

/** Rows per statement: PostgreSQL allows 65,535 parameters, and shorter statements keep PGlite's parser fast. */
const ROWS_PER_STATEMENT = 500;

/**
 * `INSERT INTO ${into} VALUES (…), (…) ${suffix}` over `rows` (each the same number of values, in `into`'s column
 * order), in chunks; returns what the statements' RETURNING clause gave, in chunk order. `into` and `suffix` are
 * SQL written by the caller, never input.
 */
export async function insertMany<Row = Record<string, unknown>>(
  db: Queryable,
  into: string,
  rows: readonly (readonly unknown[])[],
  suffix = '',
): Promise<Row[]> {
  const out: Row[] = [];
  const width = rows[0]?.length ?? 0;
  for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT) {
    const chunk = rows.slice(start, start + ROWS_PER_STATEMENT);
    const params: unknown[] = [];
    const tuples = chunk.map((row) => {
      if (row.length !== width) throw new RangeError('insertMany: every row needs the same number of values');
      params.push(...row);
      return `(${row.map((_, j) => `$${params.length - width + j + 1}`).join(', ')})`;
    });
    out.push(...(await db.query<Row>(`INSERT INTO ${into} VALUES ${tuples.join(', ')} ${suffix}`, params)).rows);
  }
  return out;
}
