/**
 * Test support shared by every package: the engines a test file should run against. PGlite always (one
 * instance per file: it takes ~2.5 s and ~0.8 GB to start); PostgreSQL too when DATABASE_URL is set, in a
 * fresh schema per file because test files run in parallel processes. Closing drops that schema.
 */
import { randomBytes } from 'node:crypto';
import { openDatabase, type Database } from './database.ts';

/** A database opened for one test file, with a label for test names. */
export interface TestDatabase {
  label: 'pglite' | 'postgres';
  db: Database;
}

/** Opens PGlite in memory and, when DATABASE_URL is set, an isolated PostgreSQL schema. */
export async function openTestDatabases(): Promise<TestDatabase[]> {
  const opened: TestDatabase[] = [{ label: 'pglite', db: await openDatabase() }];
  const url = process.env['DATABASE_URL'];
  if (url !== undefined && url !== '') {
    // A value that is not a URL would be read by pg as a relative path on a host named "base".
    if (!/^postgres(ql)?:\/\//.test(url)) throw new Error('DATABASE_URL must start with postgres:// or postgresql://');
    const schema = `test_${process.pid}_${randomBytes(4).toString('hex')}`;
    const db = await openDatabase({ url, schema });
    const close = db.close;
    const dropping: Database = {
      ...db,
      close: async () => {
        await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await close();
      },
    };
    opened.push({ label: 'postgres', db: dropping });
  }
  return opened;
}
