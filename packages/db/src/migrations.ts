/**
 * Versioned schema migrations per component. `schema_migrations(component, version)` records what has been
 * applied; each pending migration runs in its own transaction together with its bookkeeping row, so a
 * migration is applied entirely or not at all. Concurrent starters serialise on a transaction-level advisory
 * lock, so two processes never apply the same migration twice.
 */
import { createHash } from 'node:crypto';
import { IntegrityError, MalformedInputError } from '@medshare/crypto';
import type { Database } from './database.ts';

/** One schema change of one component; versions start at 1 and increase by 1. */
export interface Migration {
  version: number;
  description: string;
  /** SQL statements, run in order inside one transaction. */
  statements: readonly string[];
}

const COMPONENT_NAME = /^[a-z][a-z0-9_-]{0,62}$/;

/** Applies every migration of `component` newer than the recorded version; returns the versions applied. */
export async function migrate(db: Database, component: string, migrations: readonly Migration[]): Promise<number[]> {
  if (!COMPONENT_NAME.test(component)) throw new MalformedInputError('component name must be a lower-case identifier');
  migrations.forEach((migration, position) => {
    if (migration.version !== position + 1) {
      throw new MalformedInputError(`migration versions of ${component} must be 1, 2, 3, ... in order`);
    }
  });
  // CREATE TABLE IF NOT EXISTS is not safe against a concurrent twin on PostgreSQL (a unique violation in the
  // catalog), so the bookkeeping table is created under a lock too.
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext('schema_migrations'))");
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      component text NOT NULL,
      version integer NOT NULL,
      description text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (component, version))`);
  });
  const applied: number[] = [];
  for (const migration of migrations) {
    const checksum = createHash('sha256').update(migration.statements.join('\n;\n')).digest('hex');
    const done = await db.transaction(async (tx) => {
      // Serialise concurrent migrators of this component (lock released at commit or rollback).
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`schema_migrations:${component}`]);
      const existing = await tx.query<{ checksum: string }>('SELECT checksum FROM schema_migrations WHERE component = $1 AND version = $2', [
        component,
        migration.version,
      ]);
      const recorded = existing.rows[0];
      if (recorded !== undefined) {
        if (recorded.checksum !== checksum) {
          throw new IntegrityError(`migration ${component} v${migration.version} was changed after it was applied`);
        }
        return false;
      }
      for (const statement of migration.statements) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (component, version, description, checksum) VALUES ($1, $2, $3, $4)', [
        component,
        migration.version,
        migration.description,
        checksum,
      ]);
      return true;
    });
    if (done) applied.push(migration.version);
  }
  return applied;
}

/** The highest applied version of `component`, 0 when none. */
export async function schemaVersion(db: Database, component: string): Promise<number> {
  const result = await db.query<{ version: number | null }>('SELECT max(version) AS version FROM schema_migrations WHERE component = $1', [component]);
  return result.rows[0]?.version ?? 0;
}
