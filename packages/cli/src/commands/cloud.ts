/**
 * `medshare cloud repeated-attributes`: the operator's review of the cloud database for the delegations and
 * emergency capsules whose policy names an attribute more than once (after expanding comparisons). Their format-1
 * objects were unsafe (docs/crypto.md §2): patients delegate again, hospitals upload with a new capsule. One JSON
 * object per line: kind, id, patient, category, source, policy, repeated, format, reissue, createdAt.
 * The database is `--data DIR` (PGlite), else DATABASE_URL (PostgreSQL), else ./.medshare/data. Nothing is changed.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { openDatabase } from '@medshare/db';
import { CloudStore, repeatedAttributePolicies } from '@medshare/server';
import { UsageError } from '../errors.ts';

const DEFAULT_DATA_DIR = '.medshare/data';
const PSEUDONYM = /^psn:[A-Za-z0-9_-]{16,86}$/;

export function registerCloud(program: Command): void {
  const group = program.command('cloud').description("review the cloud's stored delegations and capsules");
  group
    .command('repeated-attributes')
    .description('list the delegations and emergency capsules whose policy repeats an attribute, to re-issue them (JSON lines)')
    .option('--data <dir>', 'PGlite data directory (default: DATABASE_URL, else .medshare/data)')
    .option('--patient <pseudonym>', 'only this patient')
    .action(async (o: { data?: string; patient?: string }) => {
      if (o.patient !== undefined && !PSEUDONYM.test(o.patient)) throw new UsageError('--patient must be a pseudonym psn:<16-86 base64url>');
      const url = process.env['DATABASE_URL'];
      const dataDir = o.data ?? DEFAULT_DATA_DIR;
      if ((o.data !== undefined || !url) && !existsSync(dataDir)) throw new UsageError(`${dataDir}: no such data directory`);
      const db = await openDatabase(o.data === undefined && url ? { url } : { dataDir });
      try {
        for (const row of await repeatedAttributePolicies(new CloudStore(db), o.patient)) process.stdout.write(`${JSON.stringify(row)}\n`);
      } finally {
        await db.close();
      }
    });
}
