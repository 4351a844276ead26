/**
 * Searchable encryption benchmark (Mitra with per-writer sub-indexes, docs/crypto.md §12): search cost against the
 * number of a patient's records (10 … 100,000), update cost per keyword, the 10,000-record / 50-match LOINC search,
 * and index size per record — CPU time, medians, alternated with HMAC-SHA256 and a pairing in the same run.
 *
 *   node --import tsx bench/sse.ts            (SSE_BENCH_DB_MAX=100000 also loads 100,000 records into PGlite)
 */
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { abe, curve, pre, sse } from '@medshare/crypto';
import { migrate, openDatabase } from '@medshare/db';
import { SearchStore } from '../packages/server/src/cloud/search-store.ts';
import { CLOUD_MIGRATIONS } from '../packages/server/src/migrations.ts';
import { keywordsOf } from '../packages/server/src/search/keywords.ts';
import { alternate, cpuAlternating, ms, ratio } from './lib/measure.ts';
import { printTable } from './lib/report.ts';

await abe.init();
const SIZES = [10, 1_000, 10_000, 100_000];
const DB_MAX = Number(process.env.SSE_BENCH_DB_MAX ?? 10_000);
const TARGET = 'http://loinc.org|2093-3';
const MATCHES = 50;
const HMAC_BATCH = 200;

// Reference primitives: HMAC-SHA256 of 32 bytes (timed per batch of 200, divided) and one pairing.
const hmacKey = randomBytes(32);
const hmacInput = randomBytes(32);
const hmacBatch = () => {
  for (let i = 0; i < HMAC_BATCH; i++) createHmac('sha256', hmacKey).update(hmacInput).digest();
};
const p = curve.g1Mul(curve.g1Generator(), curve.randomFr());
const q = curve.g2Mul(curve.g2Generator(), curve.randomFr());
const pairing = () => curve.pairing(p, q);

/** A patient's lab record: one of 200 LOINC codes (TARGET on exactly `matches` of them), a status, a date, a short note. */
function record(i: number, n: number, matches: number) {
  const code = i < matches ? '2093-3' : `${10_000 + (i % 200)}-${i % 10}`;
  const day = new Date(Date.UTC(2015, 0, 1) + (i % 3000) * 86_400_000).toISOString().slice(0, 10);
  return {
    resourceType: 'Observation',
    id: `obs-${n}-${i}`,
    status: i % 7 === 0 ? 'amended' : 'final',
    code: { coding: [{ system: 'http://loinc.org', code }] },
    effectiveDateTime: `${day}T08:00:00Z`,
    note: [{ text: i % 5 === 0 ? 'fasting sample' : 'routine' }],
  };
}

/** Builds a one-writer sub-index of n records in memory (the cloud's label → value map). */
function build(n: number) {
  const key = sse.generateIndexKey();
  let state = sse.EMPTY_STATE;
  const rows = new Map<string, Uint8Array>();
  let entries = 0;
  const matches = Math.min(n, MATCHES);
  for (let start = 0; start < n; start += 1000) {
    const updates = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) {
      const r = record(i, n, matches);
      for (const keyword of keywordsOf(r as never)) updates.push({ keyword, recordId: `rec-${i}` });
    }
    const out = sse.update(key, state, updates);
    state = out.state;
    for (const row of out.rows) rows.set(Buffer.from(row.label).toString('latin1'), row.value);
    entries += out.rows.length;
  }
  return { key, state, rows, entries, matches, sealed: sse.sealState(key, 'bench', state) };
}

const hmacOf = (t: Record<string, number>, name: string) => t[name]! / (t.hmac! / HMAC_BATCH);
/** Sub-millisecond operations are timed `REPS` at a time (CPU-time clocks are coarse), then divided. */
const REPS = 20;
const reps = (fn: () => unknown) => () => {
  for (let i = 0; i < REPS; i++) fn();
};
const perRep = (t: Record<string, number>, names: string[]) => {
  for (const n of names) t[n] = t[n]! / REPS;
  return t;
};

// ---- search cost against the number of records ------------------------------------------------------------
const searchRows: Array<Array<string | number>> = [];
const sizeRows: Array<Array<string | number>> = [];
let largest: ReturnType<typeof build> | undefined;
for (const n of SIZES) {
  const index = build(n);
  const kw = `code:${TARGET}`;
  const query = sse.query(index.key, index.state, kw);
  const values = query.labels.map((l) => index.rows.get(Buffer.from(l).toString('latin1')));
  const t = perRep(
    cpuAlternating(
      {
        hmac: hmacBatch,
        pairing,
        token: reps(() => sse.query(index.key, index.state, kw)),
        server: reps(() => query.labels.map((l) => index.rows.get(Buffer.from(l).toString('latin1')))),
        resolve: reps(() => query.resolve(values)),
        openState: () => sse.openState(index.key, 'bench', index.sealed),
      },
      31,
    ),
    ['token', 'server', 'resolve'],
  );
  const found = query.resolve(values).recordIds.length;
  const reader = t.token! + t.resolve!;
  searchRows.push([
    n.toLocaleString('en'),
    found,
    ms(t.token!),
    ms(t.server!),
    ms(t.resolve!),
    ratio(hmacOf(t, 'token') + hmacOf(t, 'resolve')),
    ratio(hmacOf(t, 'server')),
    ms(t.openState!),
    ratio(hmacOf(t, 'openState')),
    ratio(reader / t.pairing!),
  ]);
  sizeRows.push([
    n.toLocaleString('en'),
    index.entries.toLocaleString('en'),
    ratio(index.entries / n),
    ms((index.entries * (sse.LABEL_BYTES + sse.VALUE_BYTES)) / n),
    index.state.counts.size.toLocaleString('en'),
    (index.sealed.length / 1024).toFixed(1),
  ]);
  if (n === 10_000) largest = index;
}
printTable(
  `Search for one LOINC code (${MATCHES} matches, or all records when fewer): one writer's sub-index in memory`,
  [
    'records',
    'found',
    'reader token ms',
    'cloud lookup ms',
    'reader resolve ms',
    'reader HMAC-eq',
    'cloud HMAC-eq',
    'open state ms',
    'open state HMAC-eq',
    'reader pairings',
  ],
  searchRows,
);
printTable(
  'Index size',
  ['records', 'entries', 'entries per record', 'row bytes per record (label 16 + value 48)', 'distinct keywords', 'sealed state KiB'],
  sizeRows,
);

// ---- update cost per keyword ------------------------------------------------------------------------------
{
  const key = sse.generateIndexKey();
  const state = build(1000).state;
  const updates = Array.from({ length: 1000 }, (_, i) => keywordsOf(record(i, 0, 0) as never).map((keyword) => ({ keyword, recordId: `new-${i}` })))
    .flat()
    .slice(0, 1000);
  const distinct = new Set(updates.map((u) => u.keyword)).size;
  const t = cpuAlternating({ hmac: hmacBatch, update: () => sse.update(key, state, updates), seal: () => sse.sealState(key, 'bench', state) }, 31);
  printTable(
    'Index update (writer side): 1,000 entries in one batch',
    ['operation', 'ms', 'per entry µs', 'HMAC-eq per entry'],
    [
      [
        `update, 1,000 entries (${distinct} distinct keywords)`,
        ms(t.update!),
        ((t.update! * 1000) / updates.length).toFixed(2),
        ratio(hmacOf(t, 'update') / updates.length),
      ],
      [`seal the state (${state.counts.size.toLocaleString('en')} keywords)`, ms(t.seal!), '', ratio(hmacOf(t, 'seal'))],
    ],
  );
}

// ---- the 10,000-record, 50-match search end to end (reader and cloud CPU, conversions counted apart) --------
{
  const index = largest!;
  const ta = abe.setup();
  const patient = pre.generatePatientKey('psn:bench-patient-0000');
  const rk = pre.precompute(pre.delegate(patient, 'lab', ta.publicKey, 'role:doctor'));
  const capsule = pre.encrypt(pre.publicKeys(patient), 'lab', 'sse-key', index.key);
  const reader = pre.createReader(abe.keygen(ta.masterKey, 'role:doctor'));
  reader.decrypt(pre.convert(rk, capsule)); // the delegation's FAME is cached, as in a session
  const kw = `code:${TARGET}`;
  const t = cpuAlternating(
    {
      hmac: hmacBatch,
      pairing,
      convertKey: () => pre.convert(rk, capsule),
      openKey: () => reader.decrypt(pre.convert(rk, capsule)),
      search: () => {
        const state = sse.openState(index.key, 'bench', index.sealed);
        const query = sse.query(index.key, state, kw);
        return query.resolve(query.labels.map((l) => index.rows.get(Buffer.from(l).toString('latin1'))));
      },
      searchNoState: reps(() => {
        const query = sse.query(index.key, index.state, kw);
        return query.resolve(query.labels.map((l) => index.rows.get(Buffer.from(l).toString('latin1'))));
      }),
    },
    31,
  );
  perRep(t, ['searchNoState']);
  printTable(
    `10,000 records, one LOINC code, ${MATCHES} matches: one sub-index, CPU time of reader + cloud`,
    ['part', 'ms', 'HMAC-eq', 'pairings'],
    [
      ['token + lookup + resolve (state already open)', ms(t.searchNoState!), ratio(hmacOf(t, 'searchNoState')), ratio(t.searchNoState! / t.pairing!)],
      ['the same, opening the sealed state first', ms(t.search!), ratio(hmacOf(t, 'search')), ratio(t.search! / t.pairing!)],
      ['conversion of the index key (cloud, precomputed rk)', ms(t.convertKey!), ratio(hmacOf(t, 'convertKey')), ratio(t.convertKey! / t.pairing!)],
      ['conversion + decryption of the index key (reader, FAME cached)', ms(t.openKey!), ratio(hmacOf(t, 'openKey')), ratio(t.openKey! / t.pairing!)],
      ['reference: HMAC-SHA256 (32 B)', (t.hmac! / HMAC_BATCH).toFixed(4), '1.00', ratio(t.hmac! / HMAC_BATCH / t.pairing!)],
      ['reference: pairing', ms(t.pairing!), ratio(hmacOf(t, 'pairing')), '1.00'],
    ],
  );
}

// ---- per index entry, at 10,000 and 100,000 entries: search, add, and a version update (adds + deletes) ----------
{
  const aesKey = randomBytes(32);
  const aesInput = randomBytes(sse.LABEL_BYTES + sse.VALUE_BYTES);
  /** AES-256-GCM of one 64-byte row's worth of data (fresh nonce, tag): the other reference primitive. */
  const aes = () => {
    const c = createCipheriv('aes-256-gcm', aesKey, randomBytes(12));
    c.update(aesInput);
    c.final();
    return c.getAuthTag();
  };
  const entryRows: Array<Array<string | number>> = [];
  for (const entries of [10_000, 100_000]) {
    // Records of ~9 keywords each until the index holds `entries` entries; TARGET on 50 of them.
    let n = 0;
    const key = sse.generateIndexKey();
    let state = sse.EMPTY_STATE;
    const rows = new Map<string, Uint8Array>();
    let total = 0;
    while (total < entries) {
      const updates = [];
      for (let i = n; i < n + 500 && total + updates.length < entries; i++)
        for (const keyword of keywordsOf(record(i, entries, MATCHES) as never)) updates.push({ keyword, recordId: `rec-${i}` });
      n += 500;
      const out = sse.update(key, state, updates);
      state = out.state;
      for (const row of out.rows) rows.set(Buffer.from(row.label).toString('latin1'), row.value);
      total += out.rows.length;
    }
    const lookup = (labels: readonly Uint8Array[]) => labels.map((l) => rows.get(Buffer.from(l).toString('latin1')));
    const search = (kw: string) => {
      const q = sse.query(key, state, kw);
      return q.resolve(lookup(q.labels));
    };
    const kwFew = `code:${TARGET}`;
    const kwMany = 'status:final';
    const many = state.counts.get(kwMany)!;
    // A new version of one record: its 9 keywords added, its predecessor's 9 deleted (what the gateway writes).
    const version = keywordsOf(record(1, 0, 0) as never);
    const versionUpdate = [
      ...version.map((keyword) => ({ keyword, recordId: 'rec-v2' })),
      ...version.map((keyword) => ({ keyword, recordId: 'rec-v1', operation: 'delete' as const })),
    ];
    const addBatch = Array.from({ length: 100 }, (_, i) =>
      keywordsOf(record(n + i, 0, 0) as never).map((keyword) => ({ keyword, recordId: `new-${i}` })),
    ).flat();
    const t = alternate(
      'hmac',
      {
        hmac: () => createHmac('sha256', hmacKey).update(hmacInput).digest(),
        aes,
        searchFew: () => search(kwFew),
        searchMany: () => search(kwMany),
        add: () => sse.update(key, state, addBatch),
        version: () => sse.update(key, state, versionUpdate),
      },
      { rounds: 15 },
    );
    const perEntry = (name: string, count: number) => [
      ((t[name]!.ms * 1000) / count).toFixed(2),
      ratio(t[name]!.ratio / count),
      ratio(t[name]!.ratio / t.aes!.ratio / count),
    ];
    entryRows.push(
      [total.toLocaleString('en'), `search, ${MATCHES} entries of one code`, ...perEntry('searchFew', MATCHES)],
      [total.toLocaleString('en'), `search, ${many.toLocaleString('en')} entries of status:final`, ...perEntry('searchMany', many)],
      [total.toLocaleString('en'), `add, ${addBatch.length} entries (100 records)`, ...perEntry('add', addBatch.length)],
      [total.toLocaleString('en'), `new version: ${version.length} adds + ${version.length} deletes`, ...perEntry('version', versionUpdate.length)],
    );
  }
  printTable(
    'Per index entry (reader token + cloud lookup + resolve for a search; writer PRFs for an update), one sub-index in memory',
    ['index entries', 'operation', 'µs per entry', 'HMAC-SHA256 (32 B) per entry', 'AES-256-GCM (64 B) per entry'],
    entryRows,
  );
}

// ---- the cloud's lookups in PGlite (label = ANY(...) on the primary key) ----------------------------------------
{
  const db = await openDatabase();
  await migrate(db, 'cloud', CLOUD_MIGRATIONS);
  const store = new SearchStore(db);
  const dbRows: Array<Array<string | number>> = [];
  let loaded = 0;
  for (const n of SIZES.filter((s) => s <= DB_MAX)) {
    const index = build(n);
    const patient = `psn:bench-${n}`;
    const all = [...index.rows];
    for (let i = 0; i < all.length; i += 2000) {
      const chunk = all.slice(i, i + 2000);
      const params: unknown[] = [];
      const tuples = chunk.map(([label, value], j) => {
        params.push(Buffer.from(label, 'latin1'), patient, 'lab', value);
        return `($${4 * j + 1}, $${4 * j + 2}, $${4 * j + 3}, $${4 * j + 4})`;
      });
      await db.query(`INSERT INTO cloud_index_rows (label, patient, category, value) VALUES ${tuples.join(', ')}`, params);
    }
    loaded += all.length;
    const labels = sse.query(index.key, index.state, `code:${TARGET}`).labels;
    const samples: number[] = [];
    for (let r = 0; r < 31; r++) {
      const start = process.cpuUsage();
      const found = await store.lookup(patient, 'lab', labels);
      const used = process.cpuUsage(start);
      if (found.some((v) => v === undefined)) throw new Error('a row is missing');
      samples.push((used.user + used.system) / 1000);
    }
    samples.sort((a, b) => a - b);
    const size = (await db.query<{ bytes: string }>("SELECT pg_total_relation_size('cloud_index_rows') AS bytes")).rows[0]!.bytes;
    dbRows.push([n.toLocaleString('en'), labels.length, loaded.toLocaleString('en'), ms(samples[15]!), (Number(size) / loaded).toFixed(0)]);
  }
  await db.close();
  printTable(
    "The cloud's lookup in PGlite (this process's CPU, PGlite runs in it), rows of all sizes in one table",
    ['patient records', 'labels (= matches)', 'rows in the table', 'lookup ms', 'table + index bytes per row'],
    dbRows,
  );
}
