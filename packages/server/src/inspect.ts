/**
 * Everything the cloud holds, as bytes: every row of every cloud and ledger table (ciphertexts, metadata,
 * re-encryption keys, access log, audit entries). The demo and the tests search it for plaintext, making the
 * claim "the cloud never holds a plaintext record" checkable rather than asserted.
 */
import type { Database } from '@medshare/db';

const CLOUD_TABLE = /^(cloud|ledger)_[a-z0-9_]+$/;

/** The raw content of the cloud's and the ledger's tables, values separated by NUL bytes. */
export async function cloudContents(db: Database): Promise<Buffer> {
  const tables = await db.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
  );
  const parts: Buffer[] = [];
  for (const { table_name: table } of tables.rows) {
    if (!CLOUD_TABLE.test(table)) continue;
    const rows = await db.query<Record<string, unknown>>(`SELECT * FROM ${table}`);
    for (const row of rows.rows) {
      for (const value of Object.values(row)) {
        parts.push(value instanceof Uint8Array ? Buffer.from(value) : Buffer.from(value instanceof Date ? value.toISOString() : String(value), 'utf8'), Buffer.from([0]));
      }
    }
  }
  return Buffer.concat(parts);
}
