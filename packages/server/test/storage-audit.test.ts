/**
 * Storage audits over the running platform (issue #17): the gateway commits to every ciphertext at upload (KZG
 * chunk commitments), the cloud checks and keeps the tag sets, record-create entries commit to them, and an auditor with an auditor token and the pinned
 * ledger keys challenges the cloud over HTTP. Attacks are made the way a cloud operator would: by editing the
 * cloud's database under the running service.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import Fastify from 'fastify';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { curve, IntegrityError, MalformedInputError, por, UnsupportedError } from '@medshare/crypto';
import { openTestDatabases } from '@medshare/db';
import { base32Decode, SessionPseudonyms, totp } from '@medshare/identity';
import { LedgerClient, parseVerifierKey, verifyInclusionBundle, verifyRemoteLogEntries, type TrustPolicy } from '@medshare/ledger';
import {
  auditStorage,
  HttpProblemError,
  roleScopes,
  StorageAuditClient,
  StorageAuditCloud,
  StorageTagger,
  verifiedInventory,
  VERSION_1_REASON,
  type CommittedRecord,
  type UploadResult,
} from '../src/index.ts';
import { uploadBody } from '../src/gateway/cloud-api.ts';
import { checkReceiptCommitments } from '../src/storage-audit/tagger.ts';
import { tagCiphertext } from '../src/storage-audit/tags.ts';
import { ConversionPool } from '../src/cloud/conversion-pool.ts';
import { ADMINS, LAB_POLICY, sampleBundle, sessionFetch, startCast, type Cast } from './harness.ts';

const { db } = (await openTestDatabases())[0]!;
let cast: Cast;
let trust: TrustPolicy;
let ledger: LedgerClient;
let auditor: StorageAuditClient;
let auditorToken: string;
let uploaded: UploadResult;
let inventory: CommittedRecord[];

const sha = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * An on-curve G1 point outside the prime-order subgroup, uncompressed (x ‖ y): the first small x with x³ + 4 a
 * square mod p (y = (x³ + 4)^((p+1)/4), p ≡ 3 mod 4); the cofactor is large, so such a point is almost surely not in G1.
 */
function offGroupPoint(): Uint8Array {
  const p = 0x1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaabn;
  const pow = (b: bigint, e: bigint) => {
    let out = 1n;
    for (b %= p; e > 0n; e >>= 1n, b = (b * b) % p) if (e & 1n) out = (out * b) % p;
    return out;
  };
  for (let x = 1n; ; x++) {
    const y = pow(x ** 3n + 4n, (p + 1n) / 4n);
    if ((y * y) % p !== (x ** 3n + 4n) % p) continue;
    const bytes = new Uint8Array(Buffer.from(x.toString(16).padStart(96, '0') + y.toString(16).padStart(96, '0'), 'hex'));
    curve.g1FromBytesOnCurve(bytes);
    try {
      curve.g1FromBytesUncompressed(bytes);
    } catch {
      return bytes;
    }
  }
}

before(async () => {
  cast = await startCast(db);
  await cast.patient.register();
  await cast.gateway.enrol(sampleBundle().entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id, cast.patient.key.patientId);
  uploaded = await cast.gateway.upload(sampleBundle());
  await cast.platform.ledger.flush();
  ledger = new LedgerClient(new URL('ledger', cast.base).href);
  const keys = await ledger.keys();
  trust = { log: parseVerifierKey(keys.log), witnesses: keys.witnesses.map(parseVerifierKey) };
  auditorToken = (await cast.registerAndLogin('riverside', 'auditor-1', ['role:auditor'])).token;
  auditor = new StorageAuditClient(cast.base, auditorToken);
  inventory = await verifiedInventory(ledger, trust);
});

after(async () => {
  await cast.platform.close();
  await db.close();
});

/** A stored record's id and ciphertext, by its ledger name. */
async function storedRecord(hash: string): Promise<{ recordId: string; ciphertext: Uint8Array }> {
  const row = (await db.query<{ record_id: string }>('SELECT record_id FROM storage_tags WHERE record_hash = $1', [hash])).rows[0]!;
  const r = (await db.query<{ ciphertext: Uint8Array }>('SELECT ciphertext FROM cloud_records WHERE record_id = $1', [row.record_id])).rows[0]!;
  return { recordId: row.record_id, ciphertext: r.ciphertext };
}

/** Runs `attack` on the database, audits, and undoes it. */
async function auditAfter(attack: () => Promise<() => Promise<void>>, options: Parameters<typeof auditStorage>[2] = {}) {
  const undo = await attack();
  try {
    return await auditStorage(auditor, inventory, options);
  } finally {
    await undo();
  }
}

test('every uploaded record is committed in the ledger with its tags, and an honest cloud passes a full audit, recorded in the ledger', async () => {
  assert.equal(inventory.length, uploaded.stored);
  const rows = await db.query<{ record_hash: string; tags: Uint8Array; chunks: number }>('SELECT record_hash, tags, chunks FROM storage_tags');
  assert.equal(rows.rows.length, uploaded.stored);
  for (const record of inventory) {
    const row = rows.rows.find((r) => r.record_hash === record.hash)!;
    assert.equal(record.tags, sha(row.tags), 'the ledger commits to the stored tag set');
    assert.equal(record.blocks, row.chunks);
    assert.equal(record.version, 2);
    assert.equal(por.tagSetShape(row.tags).chunks, row.chunks, 'the stored tag set has one commitment per chunk');
  }
  const result = await auditStorage(auditor, inventory);
  assert.equal(result.ok, true, JSON.stringify(result.failing));
  assert.equal(result.records, uploaded.stored);
  assert.ok(result.samples > 0);
  assert.deepEqual(result.unaudited, []);
  assert.equal(result.ledgerEntries.length, 1);
  await cast.platform.ledger.flush();
  const { event } = verifyInclusionBundle(await ledger.bundle(result.ledgerEntries[0]!), trust);
  assert.equal(event.type.code, 'storage-audit');
  assert.equal(event.outcome, '0');
  assert.equal(event.entity[0]!.what.identifier.value, `sha256:${result.challenge}`);
});

test('a cloud that altered one byte of one stored ciphertext fails the audit, which names that record in the ledger', async () => {
  const victim = inventory[Math.floor(inventory.length / 2)]!;
  const { recordId, ciphertext } = await storedRecord(victim.hash);
  const result = await auditAfter(async () => {
    const altered = new Uint8Array(ciphertext);
    altered[altered.length - 20]! ^= 0x01;
    await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [recordId, altered]);
    return async () => void (await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [recordId, ciphertext]));
  });
  assert.equal(result.ok, false);
  assert.deepEqual(
    result.failing.map((f) => f.hash),
    [victim.hash],
  );
  await cast.platform.ledger.flush();
  const { event } = verifyInclusionBundle(await ledger.bundle(result.ledgerEntries[0]!), trust);
  assert.equal(event.outcome, '8');
  assert.deepEqual(
    event.entity.filter((e) => e.type.code === 'record').map((e) => e.what.identifier.value),
    [victim.hash],
  );
  assert.equal((await auditStorage(auditor, inventory, { report: false })).ok, true, 'the restored record passes again');
});

test("a cloud that swapped two records' ciphertexts or lost one record's tag set is caught, and the audit names exactly those records", async () => {
  const [a, b] = [inventory[0]!, inventory[1]!];
  const ra = await storedRecord(a.hash);
  const rb = await storedRecord(b.hash);
  const swapped = await auditAfter(
    async () => {
      await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [ra.recordId, rb.ciphertext]);
      await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [rb.recordId, ra.ciphertext]);
      return async () => {
        await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [ra.recordId, ra.ciphertext]);
        await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [rb.recordId, rb.ciphertext]);
      };
    },
    { report: false },
  );
  assert.deepEqual(swapped.failing.map((f) => f.hash).sort(), [a.hash, b.hash].sort());
  const victim = inventory[inventory.length - 1]!;
  const lost = await auditAfter(
    async () => {
      const row = (await db.query<{ record_id: string; chunks: number; tags: Uint8Array }>('SELECT * FROM storage_tags WHERE record_hash = $1', [victim.hash]))
        .rows[0]!;
      await db.query('DELETE FROM storage_tags WHERE record_hash = $1', [victim.hash]);
      return async () =>
        void (await db.query('INSERT INTO storage_tags (record_hash, record_id, chunks, tags) VALUES ($1, $2, $3, $4)', [
          victim.hash,
          row.record_id,
          row.chunks,
          row.tags,
        ]));
    },
    { report: false },
  );
  assert.deepEqual(
    lost.failing.map((f) => f.hash),
    [victim.hash],
  );
});

test('a cloud that serves forged commitments (a tag set for altered data, not the one the ledger committed) is an IntegrityError for the auditor', async () => {
  const victim = inventory[0]!;
  const { ciphertext } = await storedRecord(victim.hash);
  const altered = new Uint8Array(ciphertext);
  altered[0]! ^= 1;
  const forged = tagCiphertext(altered);
  const original = (await db.query<{ tags: Uint8Array }>('SELECT tags FROM storage_tags WHERE record_hash = $1', [victim.hash])).rows[0]!.tags;
  await db.query('UPDATE storage_tags SET tags = $2 WHERE record_hash = $1', [victim.hash, forged]);
  try {
    await assert.rejects(
      auditStorage(auditor, inventory, { report: false }),
      (e: unknown) => e instanceof IntegrityError && /does not hash to what the ledger committed/.test(e.message),
    );
  } finally {
    await db.query('UPDATE storage_tags SET tags = $2 WHERE record_hash = $1', [victim.hash, original]);
  }
});

test('records the ledger commits in the Shacham–Waters form (tag-set version 1, with a hospital key) are reported unaudited while every other record is audited', async () => {
  const old: CommittedRecord = { hash: sha(randomBytes(64)), category: 'lab', blocks: 1, tags: sha(randomBytes(48)), version: 1, entry: 0 };
  const result = await auditStorage(auditor, [...inventory, old], { report: false });
  assert.deepEqual(result.unaudited, [{ hash: old.hash, category: 'lab', reason: VERSION_1_REASON }]);
  assert.equal(VERSION_1_REASON, 'unsupported tag-set version 1 (Shacham–Waters)');
  assert.deepEqual(result.failing, [], 'the version-2 records are audited and pass');
  assert.ok(result.samples > 0);
  assert.equal(result.ok, false, 'an audit that left a record unaudited is not a clean audit');
  const only = await auditStorage(auditor, [old], { report: false });
  assert.deepEqual([only.ok, only.samples, only.unaudited.length], [false, 0, 1]);
  // A version-1 tag set still in the cloud's table is refused by the decoders with the reason, never a crash.
  assert.throws(
    () => por.tagSetShape(new Uint8Array([1, 32, 0, 0, 0, 1, ...randomBytes(48)])),
    (e: unknown) => e instanceof UnsupportedError && /version 1 is not supported \(the Shacham–Waters tags/.test(e.message),
  );
});

test("an upload carries each record's tag set and no hospital key (the binding to the hospital is the record-create entry it checks)", async () => {
  const tagger = await StorageTagger.open(db);
  const records = tagger.attach([1, 2, 3].map((n) => ({ recordId: `r-${n}`, category: 'lab', ciphertext: new Uint8Array(1500).fill(n) })));
  const body = JSON.parse(JSON.stringify(uploadBody(records, []))) as Record<string, unknown> & { records: { storage: Record<string, string> }[] };
  assert.equal('storageKey' in body, false);
  assert.deepEqual(
    body.records.map((r) => Object.keys(r.storage)),
    [['tags'], ['tags'], ['tags']],
  );
  assert.equal(records[0]!.storage.tags.length, 7 + 96, 'a 1,500-byte record is one chunk: a 7-byte header and one 96-byte commitment');
  const tables = (await db.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_name = 'storage_hospital_keys'")).rows;
  assert.deepEqual(tables, [], "the hospital's Shacham–Waters key table is dropped by its migration");
  const cloudKeys = (await db.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_name = 'storage_keys'")).rows;
  assert.deepEqual(cloudKeys, [], "the cloud's table of hospital keys is dropped by its migration");
  const columns = (
    await db.query<{ column_name: string }>("SELECT column_name FROM information_schema.columns WHERE table_name = 'storage_tags' ORDER BY column_name")
  ).rows.map((r) => r.column_name);
  assert.deepEqual(columns, ['chunks', 'record_hash', 'record_id', 'tags']);
});

test("the gateway's receipt check: a record-create entry that commits to other tags, another chunk count or a hospital key is an IntegrityError", async () => {
  const record = inventory[0]!;
  const { event } = verifyInclusionBundle(await ledger.bundle(record.entry), trust);
  const { ciphertext } = await storedRecord(record.hash);
  const tags = (await db.query<{ tags: Uint8Array }>('SELECT tags FROM storage_tags WHERE record_hash = $1', [record.hash])).rows[0]!.tags;
  checkReceiptCommitments(event, [{ ciphertext, storage: { tags } }]);
  const otherTags = new Uint8Array(tags);
  otherTags[10]! ^= 1;
  assert.throws(() => checkReceiptCommitments(event, [{ ciphertext, storage: { tags: otherTags } }]), IntegrityError);
  const entity = event.entity.find((e) => e.type.code === 'record' && e.what.identifier.value === record.hash)!;
  const withDetail = (detail: { type: string; valueString: string }[]) => ({
    ...event,
    entity: event.entity.map((e) => (e === entity ? { ...e, detail } : e)),
  });
  const moreChunks = withDetail(entity.detail!.map((d) => (d.type === 'storage-blocks' ? { ...d, valueString: String(Number(d.valueString) + 1) } : d)));
  assert.throws(() => checkReceiptCommitments(moreChunks, [{ ciphertext, storage: { tags } }]), IntegrityError);
  const withKey = withDetail([...entity.detail!, { type: 'storage-key', valueString: sha(randomBytes(8)) }]);
  assert.throws(() => checkReceiptCommitments(withKey, [{ ciphertext, storage: { tags } }]), IntegrityError);
});

test('a cloud that replays an earlier proof, or answers garbage, fails the audit with every sampled record named', async () => {
  // A front for the real cloud: tag sets pass through; the first proof is forwarded and remembered, then replayed.
  let recorded: string | undefined;
  let garbage = false;
  let badAggregateOnly = false;
  const front = Fastify();
  const forward = async (path: string, body?: unknown) =>
    (
      await fetch(new URL(path, cast.base), {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${auditorToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
    ).json();
  front.post('/cloud/storage/tags', { bodyLimit: 16 * 1024 * 1024 }, async (request) => forward('/cloud/storage/tags', request.body));
  front.post('/cloud/storage/audit', { bodyLimit: 16 * 1024 * 1024 }, async (request) => {
    if (badAggregateOnly) {
      const body = request.body as { kind: string };
      if (body.kind === 'aggregate') return { proof: Buffer.from([2, 1, 32, 0]).toString('base64') };
      return forward('/cloud/storage/audit', request.body);
    }
    if (garbage) return { proof: Buffer.from([2, 1, 32, 0]).toString('base64') };
    if (recorded === undefined) recorded = ((await forward('/cloud/storage/audit', request.body)) as { proof: string }).proof;
    return { proof: recorded };
  });
  front.post('/cloud/storage/audit/report', async () => ({ ledgerEntries: [] }));
  const client = new StorageAuditClient(new URL(await front.listen({ host: '127.0.0.1', port: 0 })), auditorToken);
  try {
    assert.equal((await auditStorage(client, inventory)).ok, true, 'the first, forwarded proof is honest');
    const replayed = await auditStorage(client, inventory);
    assert.equal(replayed.ok, false, 'a replayed proof fails a fresh challenge');
    assert.ok(replayed.failing.length > 0);
    garbage = true;
    const broken = await auditStorage(client, inventory);
    assert.equal(broken.ok, false);
    assert.equal(broken.failing.length, inventory.length, 'every challenged record is named (all chunks are sampled here)');
    // A broken aggregate with sound per-record proofs of the same challenge: possession is proven, nobody is named.
    badAggregateOnly = true;
    const perRecord = await auditStorage(client, inventory);
    assert.deepEqual({ ok: perRecord.ok, failing: perRecord.failing }, { ok: true, failing: [] });
  } finally {
    await front.close();
  }
});

test('at upload the cloud refuses commitments that do not match the ciphertext (naming the record), a commitment outside G1 and a version-1 tag set', async () => {
  const cloud = await StorageAuditCloud.open(db, cast.platform.ledger);
  const tagger = await StorageTagger.open(db);
  const ciphertext = new Uint8Array(randomBytes(40_000));
  const good = tagger.tag(ciphertext);
  const altered = new Uint8Array(ciphertext);
  altered[35_000]! ^= 8;
  await assert.rejects(
    cloud.checkUpload([{ recordId: 'r1', ciphertext: altered, storage: good }]),
    (e: unknown) => e instanceof IntegrityError && /tags of record r1 do not match its ciphertext/.test(e.message),
  );
  // One bad record among several of an upload is named.
  const other = new Uint8Array(900).fill(3);
  await assert.rejects(
    cloud.checkUpload([
      { recordId: 'r0', ciphertext: other, storage: tagger.tag(other) },
      { recordId: 'r1', ciphertext: altered, storage: good },
    ]),
    (e: unknown) => e instanceof IntegrityError && /record r1 /.test(e.message),
  );
  // A tag set with one commitment too few for its ciphertext.
  const short = new Uint8Array(good.tags.subarray(0, good.tags.length - 96));
  new DataView(short.buffer).setUint32(3, por.tagSetShape(good.tags).chunks - 1);
  await assert.rejects(cloud.checkUpload([{ recordId: 'r2', ciphertext, storage: { tags: short } }]), IntegrityError);
  // A commitment with a torsion component: on the curve, outside G1 (it could pass a random-weight check with probability 1/3).
  const torsion = new Uint8Array(good.tags);
  torsion.set(offGroupPoint(), 7 + 96);
  await assert.rejects(
    cloud.checkUpload([{ recordId: 'r3', ciphertext, storage: { tags: torsion } }]),
    (e: unknown) => e instanceof MalformedInputError && /commitment 1: not in the prime-order subgroup/.test(e.message),
  );
  await assert.rejects(
    cloud.checkUpload([{ recordId: 'r4', ciphertext, storage: { tags: Uint8Array.from(good.tags, (b, i) => (i === 0 ? 1 : b)) } }]),
    UnsupportedError,
  );
  const checked = await cloud.checkUpload([{ recordId: 'r5', ciphertext, storage: good }]);
  assert.deepEqual(checked.get('r5')!.commitment, { tags: sha(good.tags), blocks: por.chunkCount(40_000) });
  assert.equal(por.chunkCount(40_000), 2);
});

test('one bad tag set among 500 records of an upload is refused and named, by the batch check in this thread and split across a worker pool', async () => {
  const records = Array.from({ length: 500 }, (_, i) => {
    const ciphertext = new Uint8Array(randomBytes(700 + (i % 5) * 40));
    return { recordId: `batch-${i}`, ciphertext, storage: { tags: tagCiphertext(ciphertext) } };
  });
  // Record 337 carries record 12's tags (valid commitments of another ciphertext); 480 one byte off in its data.
  const swapped = records.map((r, i) => (i === 337 ? { ...r, storage: records[12]!.storage } : r));
  const edited = swapped.map((r, i) => (i === 480 ? { ...r, ciphertext: Uint8Array.from(r.ciphertext, (b, j) => (j === 100 ? b ^ 1 : b)) } : r));
  // A commitment on the curve but outside the prime-order subgroup (a torsion component the pairings would not see).
  const offGroup = offGroupPoint();
  const torsion = records.map((r, i) =>
    i === 250 ? { ...r, storage: { tags: Uint8Array.from(r.storage.tags, (b, j) => (j >= 7 && j < 103 ? offGroup[j - 7]! : b)) } } : r,
  );
  const pool = await ConversionPool.start(2);
  try {
    for (const cloud of [await StorageAuditCloud.open(db, cast.platform.ledger), await StorageAuditCloud.open(db, cast.platform.ledger, pool)]) {
      assert.equal((await cloud.checkUpload(records)).size, 500, 'an honest upload passes');
      await assert.rejects(
        cloud.checkUpload(swapped),
        (e: unknown) => e instanceof IntegrityError && /tags of record batch-337 do not match its ciphertext$/.test(e.message),
      );
      await assert.rejects(
        cloud.checkUpload(edited),
        (e: unknown) => e instanceof IntegrityError && /tags of 2 records: batch-337, batch-480 do not match/.test(e.message),
      );
      await assert.rejects(
        cloud.checkUpload(torsion),
        (e: unknown) => e instanceof MalformedInputError && /commitment 0: not in the prime-order subgroup/.test(e.message),
      );
    }
  } finally {
    await pool.close();
  }
});

test('hostile challenges and tag-set requests get problem answers, and only auditors and gateways may challenge or fetch tag sets', async () => {
  const wire = {
    nonce: Buffer.alloc(32, 1).toString('base64'),
    samples: 10,
    files: [{ hash: inventory[0]!.hash, chunks: inventory[0]!.blocks }],
  };
  const status = async (challenge: unknown, token?: string) => {
    const response = await fetch(new URL('/cloud/storage/audit', cast.base), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token ?? auditorToken}` },
      body: JSON.stringify({ challenge, kind: 'aggregate' }),
    });
    assert.match(response.headers.get('content-type') ?? '', /problem\+json|json/);
    return response.status;
  };
  assert.equal(await status(wire), 200);
  assert.equal(await status({ ...wire, samples: por.MAX_SAMPLES + 1 }), 400);
  assert.equal(await status({ ...wire, nonce: 'AAAA' }), 400);
  assert.equal(await status({ ...wire, files: [{ ...wire.files[0], chunks: 0 }] }), 400);
  assert.equal(await status({ ...wire, files: [{ ...wire.files[0], chunks: por.MAX_CHUNKS + 1 }] }), 400);
  assert.equal(await status({ ...wire, files: [{ ...wire.files[0], key: 0 }] }), 400);
  assert.equal(await status({ ...wire, sectors: 32 }), 400, 'the Shacham–Waters challenge fields are refused');
  assert.equal(await status({ ...wire, files: [{ ...wire.files[0], hash: 'sha256:zz' }] }), 400);
  assert.equal(await status({ ...wire, extra: 1 }), 400);
  const doctor = await cast.registerAndLogin('riverside', 'dr-nosy', ['role:doctor']);
  assert.equal(await status(wire, doctor.token), 403);
  assert.equal(await status(wire, 'not-a-token'), 401);
  const tags = async (body: unknown, token = auditorToken) =>
    (
      await fetch(new URL('/cloud/storage/tags', cast.base), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      })
    ).status;
  assert.equal(await tags({ hashes: [inventory[0]!.hash] }), 200);
  assert.equal(await tags({ hashes: [] }), 400);
  assert.equal(await tags({ hashes: ['sha256:zz'] }), 400);
  assert.equal(await tags({ hashes: Array.from({ length: por.MAX_SAMPLES + 1 }, () => inventory[0]!.hash) }), 400);
  assert.equal(await tags({ hashes: [inventory[0]!.hash] }, doctor.token), 403);
  await assert.rejects(new StorageAuditClient(cast.base, doctor.token).report(wire, []), (e: unknown) => e instanceof HttpProblemError && e.status === 403);
});

/** The cloud's tables, as an operator of the cloud (or a thief of its database) holds them: not a hospital's or the authority's. */
async function cloudRowsAsText(): Promise<string> {
  const tables = (
    await db.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
  ).rows
    .map((r) => r.table_name)
    .filter((t) => !/^(identity_|gateway_|storage_hospital_|stats_hospital_|ta_|schema_migrations)/.test(t));
  assert.ok(tables.includes('cloud_access_log') && tables.includes('ledger_entries') && tables.includes('storage_tags'), "the cloud's tables are scanned");
  const dumps: string[] = [];
  for (const table of tables) dumps.push(...(await db.query<{ row: string }>(`SELECT t::text AS row FROM "${table}" t`)).rows.map((r) => r.row));
  return dumps.join('\n');
}

test("conditional anonymity: the cloud's tables and ledger carry no user id, two sessions of one doctor are unlinkable, and only her hospital traces them", async () => {
  const hospital = 'riverside';
  const password = 'a long enough passphrase';
  const attributes = ['role:doctor', 'dept:cardiology'];
  const enrolment = await cast.client.registerUser(hospital, ADMINS[hospital]!, {
    username: 'dr-anonymous',
    password,
    attributes,
    scopes: roleScopes(attributes),
  });
  const patient = cast.patient.key.patientId;
  await cast.patient.delegate('lab', LAB_POLICY, await cast.client.abePublicKey());
  // Two logins (the second with the next time step's code: a TOTP code works once).
  const first = await cast.client.loginWithCode(hospital, 'dr-anonymous', password, () => totp(base32Decode(enrolment.totpSecret), Date.now() / 1000));
  const second = await cast.client.loginWithCode(hospital, 'dr-anonymous', password, () => totp(base32Decode(enrolment.totpSecret), Date.now() / 1000 + 30));
  for (const session of [first, second]) {
    const read = await sessionFetch(session, new URL(`/cloud/patients/${patient}/read`, cast.base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ category: 'lab' }),
    });
    assert.equal(read.status, 200, await read.text());
  }
  await cast.platform.ledger.flush();
  // What the cloud sees in each token: no claim in common that names her, beyond what her hospital vouches for.
  const claims = [first, second].map((s) => JSON.parse(Buffer.from(s.token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>);
  for (const name of ['sub', 'sid', 'jti']) assert.notEqual(claims[0]![name], claims[1]![name], `${name} differs between her sessions`);
  assert.notDeepEqual(claims[0]!['cnf'], claims[1]!['cnf'], 'each login proves a fresh device key');
  for (const c of claims)
    assert.deepEqual(
      (c['attrs'] as string[]).filter((a) => a.startsWith('uid:')),
      [`uid:${(c['sub'] as string).slice('psn:'.length)}`],
    );
  // The cloud's database, read as its operator would: no user id or username of anyone, in any row.
  const dump = await cloudRowsAsText();
  const users = (await db.query<{ id: string; username: string }>('SELECT id, username FROM identity_users')).rows;
  assert.ok(users.length >= 6, "the cast's users are in the hospitals' tables");
  for (const u of users) {
    for (const form of [u.id, Buffer.from(u.id).toString('hex'), Buffer.from(u.id).toString('base64')])
      assert.equal(dump.includes(form), false, `the cloud holds the id of ${u.username}`);
    assert.doesNotMatch(
      dump,
      new RegExp(`(?<![A-Za-z0-9_-])${u.username.replace(/[.-]/g, '\\$&')}(?![A-Za-z0-9_-])`),
      `the cloud holds the username ${u.username}`,
    );
  }
  // Her two reads are in the ledger under two pseudonyms, which her hospital's administrator traces to her.
  const { entries } = await verifyRemoteLogEntries(ledger, trust);
  const agents = entries.flatMap((e) => e.agent.map((a) => a.who.identifier.value));
  const subjects = claims.map((c) => c['sub'] as string);
  for (const subject of subjects) assert.ok(agents.includes(subject), 'the ledger names the session pseudonym');
  const trace = (hospitalName: string, pseudonym: string, admin = ADMINS[hospitalName]!) =>
    fetch(cast.urlFor(`/identity/${hospitalName}/admin/trace`), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ pseudonym }),
    });
  for (const subject of subjects) {
    const traced = await trace(hospital, subject);
    assert.equal(traced.status, 200);
    const who = (await traced.json()) as { username: string; userId: string };
    assert.deepEqual([who.username, who.userId], ['dr-anonymous', enrolment.userId]);
  }
  // Nobody else: another hospital's administrator, this hospital's route without its credential, and any other key.
  const elsewhere = await trace('st-marys', subjects[0]!);
  assert.equal(elsewhere.status, 400);
  assert.match(((await elsewhere.json()) as { detail: string }).detail, /not a session pseudonym of this hospital/);
  assert.equal((await trace(hospital, subjects[0]!, ADMINS['st-marys'])).status, 401, "another hospital's administrator credential");
  assert.throws(() => new SessionPseudonyms(randomBytes(32), claims[0]!['iss'] as string).trace(subjects[0]!), IntegrityError, 'another tracing key');
  // A patient's pseudonym is her account's: the cloud binds her record to it, so it is the same in every session.
  const patientEnrolment = await cast.client.registerUser('st-marys', ADMINS['st-marys']!, {
    username: 'pat-anonymous',
    password,
    attributes: ['role:patient'],
    scopes: roleScopes(['role:patient']),
  });
  // One login after the other, in step order: a code is refused once a later step's was accepted, so two
  // concurrent logins with adjacent codes fail whenever the second one's arrives first (login.test.ts).
  const patientSubjects: string[] = [];
  for (const ahead of [0, 30]) {
    const session = await cast.client.loginWithCode('st-marys', 'pat-anonymous', password, () =>
      totp(base32Decode(patientEnrolment.totpSecret), Date.now() / 1000 + ahead),
    );
    patientSubjects.push(JSON.parse(Buffer.from(session.token.split('.')[1]!, 'base64url').toString()).sub as string);
  }
  assert.equal(patientSubjects[0], patientSubjects[1]);
  assert.notEqual(patientSubjects[0], patientEnrolment.userId);
  assert.equal(((await (await trace('st-marys', patientSubjects[0]!)).json()) as { userId: string }).userId, patientEnrolment.userId);
});

/** The real `medshare` binary with stdin, for the CLI's own behaviour (output, exit code, one-line errors). */
function medshare(args: string[], stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = fileURLToPath(new URL('../../cli/bin/medshare.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

test('medshare audit storage --url: names a damaged record, exits 4 with a one-line error; a bad --url is a usage error', async () => {
  const keys = await ledger.keys();
  const pinned = ['--url', cast.base.href, '--log-key', keys.log, ...keys.witnesses.flatMap((k) => ['--witness-key', k])];
  const victim = inventory[2]!;
  const { recordId, ciphertext } = await storedRecord(victim.hash);
  const altered = new Uint8Array(ciphertext);
  altered[10]! ^= 0x80;
  await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [recordId, altered]);
  try {
    const failed = await medshare(['audit', 'storage', ...pinned, '--no-report'], `${auditorToken}\n`);
    assert.equal(failed.code, 4, failed.stderr);
    assert.match(failed.stdout, new RegExp(`^FAILED ${victim.hash} \\(${victim.category}\\)$`, 'm'));
    assert.match(failed.stdout, /^FAILED: \d+ record\(s\), \d+ chunk\(s\) sampled, 1 failing$/m);
    const lastLine = failed.stderr.trim().split('\n').at(-1)!;
    assert.match(lastLine, /storage audit failed: 1 record/);
    assert.doesNotMatch(failed.stderr, /\bat .*\.ts:\d+/, 'no stack trace');
  } finally {
    await db.query('UPDATE cloud_records SET ciphertext = $2 WHERE record_id = $1', [recordId, ciphertext]);
  }
  const bad = await medshare(['audit', 'storage', '--url', 'not a url'], `${auditorToken}\n`);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--url: not a URL/);
});

/** Uploads an Observation of the sample patient with these notes; returns its record, the one new in the ledger's inventory. */
async function uploadLargeObservation(id: string, notes: string[]): Promise<CommittedRecord> {
  const fhirId = sampleBundle().entry.find((e) => e.resource.resourceType === 'Patient')!.resource.id;
  const known = new Set((await verifiedInventory(ledger, trust)).map((r) => r.hash));
  const resource = {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { text: 'large' },
    subject: { reference: `Patient/${fhirId}` },
    note: notes.map((text) => ({ text })),
  };
  await cast.gateway.upload({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource }] });
  await cast.platform.ledger.flush();
  return (await verifiedInventory(ledger, trust)).find((r) => !known.has(r.hash))!;
}

test("a large record kept in chunk rows is proven from its whole ciphertext; a cloud that lost a chunk row's bytes, or one 31-byte sector, fails the audit for that record", async () => {
  const text = randomBytes(900_000).toString('base64').slice(0, 1_100_000);
  const large = await uploadLargeObservation('large-audited', [text.slice(0, 1_000_000), text.slice(1_000_000)]);
  const { recordId } = await storedRecord(large.hash);
  const [first] = (await db.query<{ bytes: Uint8Array }>('SELECT bytes FROM cloud_record_chunks WHERE record_id = $1 AND seq = 0', [recordId])).rows;
  assert.ok(first !== undefined && first.bytes.length === 1024 * 1024, 'the record is stored in chunk rows');
  assert.equal((await auditStorage(auditor, [large], { report: false })).ok, true, 'an honest cloud passes');
  await db.query('UPDATE cloud_record_chunks SET bytes = $2 WHERE record_id = $1 AND seq = 0', [recordId, new Uint8Array(randomBytes(first.bytes.length))]);
  try {
    const result = await auditStorage(auditor, [large], { report: false });
    assert.equal(result.ok, false);
    assert.deepEqual(
      result.failing.map((f) => f.hash),
      [large.hash],
    );
  } finally {
    await db.query('UPDATE cloud_record_chunks SET bytes = $2 WHERE record_id = $1 AND seq = 0', [recordId, first.bytes]);
  }
  // One sector (31 bytes) zeroed in the middle of the record: its chunk's opening fails (every chunk is sampled here).
  const sector = new Uint8Array(first.bytes);
  sector.fill(0, 500_000, 500_031);
  await db.query('UPDATE cloud_record_chunks SET bytes = $2 WHERE record_id = $1 AND seq = 0', [recordId, sector]);
  try {
    const result = await auditStorage(auditor, [large], { report: false });
    assert.ok(result.samples >= large.blocks, 'every chunk of the record is challenged');
    assert.deepEqual(
      result.failing.map((f) => f.hash),
      [large.hash],
    );
  } finally {
    await db.query('UPDATE cloud_record_chunks SET bytes = $2 WHERE record_id = $1 AND seq = 0', [recordId, first.bytes]);
  }
});

test('a challenge that makes the cloud read more than MAX_PROOF_SECTORS sectors is a 413 problem, and the service keeps proving', async () => {
  // A record of about 300 KB (ten chunks of 1,024 sectors): a challenge can sample at most 40,000 chunks
  // (MAX_SAMPLES, all chunks when samples ≥ half of them), so the limit is reached by full chunks only.
  const big = await uploadLargeObservation('too-costly-audit', [randomBytes(225_000).toString('base64')]);
  const { ciphertext } = await storedRecord(big.hash);
  const tags = (await db.query<{ tags: Uint8Array }>('SELECT tags FROM storage_tags WHERE record_hash = $1', [big.hash])).rows[0]!.tags;
  const { chunkSectors, chunks } = por.tagSetShape(tags);
  assert.equal(chunks, big.blocks);
  const chunkBytes = chunkSectors * por.SECTOR_BYTES;
  let perListing = 0;
  for (let j = 0; j < chunks; j++) perListing += Math.ceil(Math.min(chunkBytes, ciphertext.length - j * chunkBytes) / por.SECTOR_BYTES);
  // The route takes the same record listed many times (each listing is a record of the challenge, read from the
  // one stored ciphertext): just enough listings, every chunk sampled, to pass the limit.
  const listings = Math.floor(por.MAX_PROOF_SECTORS / perListing) + 1;
  const sectors = listings * perListing;
  assert.ok(sectors > por.MAX_PROOF_SECTORS && sectors - perListing <= por.MAX_PROOF_SECTORS);
  const total = listings * chunks;
  const costly = {
    nonce: randomBytes(32).toString('base64'),
    samples: Math.ceil(total / 2),
    files: Array.from({ length: listings }, () => ({ hash: big.hash, chunks })),
  };
  assert.ok(costly.samples <= por.MAX_SAMPLES && costly.files.length <= por.MAX_CHALLENGE_FILES, 'a challenge the schema accepts');
  const leaks = [
    big.hash.slice('sha256:'.length),
    Buffer.from(ciphertext.subarray(0, 24)).toString('base64'),
    Buffer.from(ciphertext.subarray(0, 24)).toString('hex'),
  ];
  for (const kind of ['aggregate', 'per-file']) {
    const response = await fetch(new URL('/cloud/storage/audit', cast.base), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${auditorToken}` },
      body: JSON.stringify({ challenge: costly, kind }),
    });
    assert.equal(response.status, 413, kind);
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const text = await response.text();
    const problem = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(problem).sort(), ['detail', 'status', 'title', 'type']);
    assert.deepEqual([problem['type'], problem['status']], ['urn:medshare:problem:limit', 413]);
    assert.equal(problem['detail'], `proof of storage: the challenge samples ${sectors} sectors, at most ${por.MAX_PROOF_SECTORS}`);
    for (const secret of leaks) assert.equal(text.includes(secret), false, 'no record name or ciphertext bytes in the answer');
  }
  // Right afterwards an ordinary audit, the large record included, is proven and verifies.
  const result = await auditStorage(auditor, [...inventory, big], { report: false });
  assert.equal(result.ok, true, JSON.stringify(result.failing));
  assert.deepEqual(result.unaudited, []);
  assert.ok(result.samples > 0);
});
