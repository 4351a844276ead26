import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { IntegrityError, MalformedInputError } from '@medshare/crypto';
import { insertMany, migrate, openDatabase, openTestDatabases, schemaVersion, type Migration, type TestDatabase } from '../src/index.ts';
import { byteaCodec } from '../src/pglite.ts';

const databases: TestDatabase[] = await openTestDatabases();
after(async () => {
  for (const { db } of databases) await db.close();
});

const NOTES: Migration[] = [
  { version: 1, description: 'notes table', statements: ['CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL)'] },
  { version: 2, description: 'notes tag', statements: ["ALTER TABLE notes ADD COLUMN tag text NOT NULL DEFAULT ''"] },
];

for (const { label, db } of databases) {
  describe(`database on ${label}`, () => {
    before(async () => {
      await migrate(db, 'notes', NOTES);
    });

    test('parameters, bytea and bigint round-trip the same on every engine', async () => {
      const result = await db.query<{ n: number; b: Uint8Array; t: string }>('SELECT $1::bigint AS n, $2::bytea AS b, $3::text AS t', [
        9007199254740991n.toString(),
        Buffer.from([0, 1, 255]),
        "it's",
      ]);
      const row = result.rows[0]!;
      assert.equal(row.n, Number.MAX_SAFE_INTEGER);
      assert.deepEqual([...row.b], [0, 1, 255]);
      assert.equal(row.t, "it's");
    });

    test('insertMany stores every row exactly across statement chunks, returns what RETURNING gives, and refuses ragged rows', async () => {
      await db.query('CREATE TABLE IF NOT EXISTS many (id integer PRIMARY KEY, b bytea NOT NULL, t text)');
      const rows = Array.from({ length: 1_201 }, (_, i) => [i, Buffer.from([i & 255, i >> 8]), i % 7 === 0 ? null : `row ${i}`]);
      const returned = await insertMany<{ id: number }>(db, 'many (id, b, t)', rows, 'ON CONFLICT (id) DO NOTHING RETURNING id');
      assert.deepEqual(
        returned.map((r) => r.id),
        rows.map((r) => r[0]),
      );
      const stored = (await db.query<{ id: number; b: Uint8Array; t: string | null }>('SELECT id, b, t FROM many ORDER BY id')).rows;
      assert.deepEqual(
        stored.map((r) => [r.id, Buffer.from(r.b), r.t]),
        rows,
      );
      // Rows already there (and one twice in the same statement) are skipped, not returned.
      assert.deepEqual(
        await insertMany(
          db,
          'many (id, b, t)',
          [
            [5, Buffer.from([1]), 'x'],
            [2_000, Buffer.from([2]), 'y'],
            [2_000, Buffer.from([3]), 'z'],
          ],
          'ON CONFLICT (id) DO NOTHING RETURNING id',
        ),
        [{ id: 2_000 }],
      );
      await assert.rejects(
        insertMany(db, 'many (id, b, t)', [
          [3_000, Buffer.from([1]), 'x'],
          [3_001, Buffer.from([1])],
        ]),
        RangeError,
      );
      await db.query('DROP TABLE many');
    });

    test('bytea of any length round-trips exactly, each value in a buffer of its own', async () => {
      await db.query('CREATE TABLE IF NOT EXISTS blobs (id integer PRIMARY KEY, b bytea NOT NULL)');
      let id = 0;
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 9000 }), async (bytes) => {
          await db.query('INSERT INTO blobs (id, b) VALUES ($1, $2)', [++id, bytes]);
          const row = (await db.query<{ b: Uint8Array }>('SELECT b FROM blobs WHERE id = $1', [id])).rows[0]!;
          assert.deepEqual(new Uint8Array(row.b), bytes);
        }),
        { numRuns: 40 },
      );
      const large = new Uint8Array(randomBytes(3 * 1024 * 1024 + 1));
      await db.query('INSERT INTO blobs (id, b) VALUES ($1, $2)', [++id, large]);
      assert.ok(Buffer.from((await db.query<{ b: Uint8Array }>('SELECT b FROM blobs WHERE id = $1', [id])).rows[0]!.b).equals(large));
    });

    test('migrations are applied once, in order, and recorded per component', async () => {
      assert.equal(await schemaVersion(db, 'notes'), 2);
      assert.deepEqual(await migrate(db, 'notes', NOTES), []);
      assert.deepEqual(
        await migrate(
          db,
          'other',
          [NOTES[0]!].map((m) => ({ ...m, statements: ['CREATE TABLE other_t (x int)'] })),
        ),
        [1],
      );
      assert.equal(await schemaVersion(db, 'other'), 1);
      await db.query("INSERT INTO notes (id, body, tag) VALUES (1, 'a', 'x')");
      assert.equal((await db.query<{ c: number }>('SELECT count(*)::int AS c FROM notes')).rows[0]!.c, 1);
    });

    test('a failing migration is rolled back entirely, including its bookkeeping', async () => {
      const broken: Migration[] = [{ version: 1, description: 'half', statements: ['CREATE TABLE half_done (x int)', 'SELECT no_such_function()'] }];
      await assert.rejects(migrate(db, 'broken', broken));
      assert.equal(await schemaVersion(db, 'broken'), 0);
      const exists = await db.query<{ r: string | null }>("SELECT to_regclass('half_done')::text AS r");
      assert.equal(exists.rows[0]!.r, null);
    });

    test('an applied migration that was edited afterwards is refused', async () => {
      const edited = NOTES.map((m) => (m.version === 2 ? { ...m, statements: ['SELECT 1'] } : m));
      await assert.rejects(migrate(db, 'notes', edited), IntegrityError);
    });

    test('migrations out of order and bad component names are refused', async () => {
      await assert.rejects(migrate(db, 'notes', [NOTES[1]!]), MalformedInputError);
      await assert.rejects(migrate(db, 'Bad Name; DROP', NOTES), MalformedInputError);
    });

    test('concurrent migrators apply each migration exactly once', async () => {
      const racing: Migration[] = [
        { version: 1, description: 'a', statements: ['CREATE TABLE race_a (x int)'] },
        { version: 2, description: 'b', statements: ['CREATE TABLE race_b (x int)'] },
      ];
      const results = await Promise.all([migrate(db, 'race', racing), migrate(db, 'race', racing), migrate(db, 'race', racing)]);
      assert.deepEqual(results.flat().sort(), [1, 2]);
      assert.equal(await schemaVersion(db, 'race'), 2);
    });

    test('a prepared statement runs again with other parameters, in and out of a transaction', async () => {
      const sql = 'SELECT $1::int + 1 AS n';
      for (const i of [1, 2, 3]) assert.equal((await db.query<{ n: number }>(sql, [i], { prepared: true })).rows[0]!.n, i + 1);
      await db.transaction(async (tx) => {
        assert.equal((await tx.query<{ n: number }>(sql, [41], { prepared: true })).rows[0]!.n, 42);
        if (db.engine === 'postgres') {
          const prepared = await tx.query<{ c: number }>('SELECT count(*)::int AS c FROM pg_prepared_statements WHERE statement = $1', [sql]);
          assert.equal(prepared.rows[0]!.c, 1, 'prepared once on this connection');
        }
      });
    });

    test('a transaction commits on success and rolls back on error', async () => {
      await db.transaction(async (tx) => {
        await tx.query("INSERT INTO notes (id, body) VALUES (10, 'kept')");
      });
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query("INSERT INTO notes (id, body) VALUES (11, 'dropped')");
          throw new Error('abort');
        }),
        /abort/,
      );
      const ids = (await db.query<{ id: number }>('SELECT id FROM notes WHERE id >= 10 ORDER BY id')).rows.map((r) => r.id);
      assert.deepEqual(ids, [10]);
    });
  });
}

test('a PGlite data directory persists across openings', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medshare-db-'));
  try {
    const first = await openDatabase({ dataDir: dir });
    await migrate(first, 'notes', NOTES);
    await first.query("INSERT INTO notes (id, body) VALUES (1, 'persisted')");
    await first.close();
    const second = await openDatabase({ dataDir: dir });
    assert.equal(await schemaVersion(second, 'notes'), 2);
    assert.equal((await second.query<{ body: string }>('SELECT body FROM notes')).rows[0]!.body, 'persisted');
    await second.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a schema name that is not an identifier is refused before connecting', async () => {
  await assert.rejects(openDatabase({ url: 'postgres://127.0.0.1:1/x', schema: 'x; DROP' }), MalformedInputError);
});

test("the PGlite bytea codec gives exactly PGlite's own text and bytes, and refuses what PGlite's refuses", () => {
  // PGlite 0.3's own codec (types.ts), as the reference.
  const reference = {
    serialize: (e: Uint8Array) =>
      '\\x' +
      Array.from(e)
        .map((t) => t.toString(16).padStart(2, '0'))
        .join(''),
    parse: (e: string) => Uint8Array.from({ length: (e.length - 2) / 2 }, (_, r) => parseInt(e.substring(2 + r * 2, 2 + (r + 1) * 2), 16)),
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat({ max: 16 }), (bytes, offset) => {
      const view = new Uint8Array(offset + bytes.length);
      view.set(bytes, offset);
      const sub = view.subarray(offset);
      assert.equal(byteaCodec.serialize(sub), reference.serialize(sub));
      const text = reference.serialize(bytes);
      const parsed = byteaCodec.parse(text);
      assert.deepEqual(parsed, reference.parse(text));
      assert.equal(parsed.buffer.byteLength, parsed.length, 'not a view into a shared slab');
    }),
  );
  assert.throws(() => byteaCodec.serialize('00ff'), TypeError);
  assert.throws(() => byteaCodec.serialize([0, 1]), TypeError);
});
