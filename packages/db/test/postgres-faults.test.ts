/**
 * The PostgreSQL engine when the server goes away: a server that cannot be reached is UnavailableError within
 * seconds (never a hang, never a crash); connections the server ends — idle ones in the pool, and one checked out
 * in the middle of a transaction — neither crash the process nor poison the pool: the transaction fails with
 * UnavailableError having written nothing, and the next query works on a fresh connection. The second part needs
 * a server (DATABASE_URL); it ends only this test's own connections (by application_name), never other clients'.
 */
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MedShareError } from '@medshare/crypto';
import { openDatabase } from '../src/index.ts';

const isUnavailable = (error: unknown) => error instanceof MedShareError && error.code === 'UNAVAILABLE';

test('a server that refuses connections is UnavailableError, promptly', async () => {
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = server.address() as { port: number };
      server.close(() => resolve(free));
    });
  });
  const started = Date.now();
  await assert.rejects(openDatabase({ url: `postgres://nobody:nothing@127.0.0.1:${port}/none`, schema: 'x' }), isUnavailable);
  assert.ok(Date.now() - started < 10_000);
});

test('a server that accepts the connection but never answers is UnavailableError within the connect timeout', async () => {
  const silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as { port: number };
  try {
    const db = await openDatabase({ url: `postgres://nobody:nothing@127.0.0.1:${port}/none` });
    const started = Date.now();
    await assert.rejects(db.query('SELECT 1'), isUnavailable);
    await assert.rejects(
      db.transaction(async (tx) => tx.query('SELECT 1')),
      isUnavailable,
    );
    assert.ok(Date.now() - started < 20_000, 'no hang');
    await db.close();
  } finally {
    silent.close();
    silent.unref();
  }
});

const url = process.env['DATABASE_URL'];
test(
  'connections ended by the server: no crash, the transaction writes nothing, the next query works',
  { skip: !url && 'DATABASE_URL is not set' },
  async () => {
    const name = `medshare_fault_${randomBytes(4).toString('hex')}`;
    const separator = url!.includes('?') ? '&' : '?';
    const db = await openDatabase({ url: `${url}${separator}application_name=${name}`, schema: name });
    const admin = await openDatabase({ url: url! });
    const terminate = () => admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
    try {
      await db.query('CREATE TABLE items (id integer PRIMARY KEY)');
      // Idle pooled connections killed: the pool's 'error' listener keeps the process alive; the next query reconnects.
      await Promise.all([db.query('SELECT 1'), db.query('SELECT 2')]);
      await terminate();
      await new Promise((resolve) => setTimeout(resolve, 200));
      // A query that raced the disconnect notice may still meet a dead connection: UnavailableError, then it works.
      const first = await db.query('INSERT INTO items (id) VALUES (1)').then(
        () => 'ok',
        (error: unknown) => (isUnavailable(error) ? 'unavailable' : error),
      );
      if (first === 'unavailable') await db.query('INSERT INTO items (id) VALUES (1)');
      else assert.equal(first, 'ok');
      // A checked-out connection killed in the middle of a transaction.
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO items (id) VALUES (2)');
          await terminate();
          await new Promise((resolve) => setTimeout(resolve, 200));
          await tx.query('INSERT INTO items (id) VALUES (3)');
        }),
        isUnavailable,
      );
      const rows = (await db.query<{ id: number }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id);
      assert.deepEqual(rows, [1], 'nothing of the broken transaction, everything acknowledged before it');
    } finally {
      await db.query(`DROP SCHEMA ${name} CASCADE`).catch(() => undefined);
      await db.close();
      await admin.close();
    }
  },
);
