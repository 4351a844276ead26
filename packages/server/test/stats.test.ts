import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AccessDeniedError, ConflictError, IntegrityError, LimitExceededError, MalformedInputError, threshold } from '@medshare/crypto';
import { openDatabase, randomKeyEncryptionKey, type Database } from '@medshare/db';
import type { AuditLog } from '@medshare/ledger';
import { ADMINS, startCast, type Cast } from './harness.ts';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { StatsAgent } from '../src/stats/agent.ts';
import { bodies, decodeBoard, decodeBody, openShare, parseCeremony } from '../src/stats/dkg-wire.ts';
import { StatsClient } from '../src/stats/client.ts';
import { evaluateQuery, type StatsResource } from '../src/stats/evaluate.ts';
import { formConsortium, signPayload } from '../src/stats/consortium.ts';
import { cellBits, contributionContext, StatsHospital, type ProvenContribution } from '../src/stats/hospital.ts';
import { StatsAggregator } from '../src/stats/aggregator.ts';
import { DEFAULT_ALLOW_LIST, parseQuery, type StatsQuery } from '../src/stats/query.ts';
import { bernoulliExp, discreteLaplace, epsilonFraction, laplaceAlpha, noiseSample, noiseVariance } from '../src/stats/noise.ts';
import { curve } from '@medshare/crypto';

const DIABETES = 'http://snomed.info/sct|44054006';
const HBA1C = 'http://loinc.org|4548-4';
const HOSPITALS = ['st-marys', 'riverside', 'lakeside'];

/** Ground truth of one synthetic patient, and the FHIR resources a hospital holds for it. */
interface Person {
  id: string;
  birthDate: string;
  gender: 'female' | 'male';
  diabetic: boolean;
  hba1c: { date: string; value: number }[];
}

function resourcesOf(p: Person): StatsResource[] {
  const out: StatsResource[] = [{ resourceType: 'Patient', id: p.id, birthDate: p.birthDate, gender: p.gender }];
  const subject = { reference: `urn:uuid:${p.id}` };
  if (p.diabetic)
    out.push({ resourceType: 'Condition', subject, code: { coding: [{ system: 'http://snomed.info/sct', code: '44054006' }] }, onsetDateTime: '2015-03-01' });
  for (const o of p.hba1c)
    out.push({
      resourceType: 'Observation',
      subject,
      code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
      effectiveDateTime: `${o.date}T10:00:00Z`,
      valueQuantity: { value: o.value },
    });
  return out;
}

const person = fc.record({
  id: fc.uuid(),
  birthDate: fc.date({ min: new Date('1930-01-01'), max: new Date('2010-12-31'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)),
  gender: fc.constantFrom('female' as const, 'male' as const),
  diabetic: fc.boolean(),
  hba1c: fc.array(
    fc.record({
      date: fc.date({ min: new Date('2018-01-01'), max: new Date('2025-12-31'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10)),
      value: fc.integer({ min: 40, max: 120 }).map((v) => v / 10),
    }),
    { maxLength: 3 },
  ),
});

const QUERY = {
  querySet: 'diabetes-2026',
  asOf: '2026-01-01',
  where: [
    { resourceType: 'Condition', codes: [DIABETES] },
    { resourceType: 'Observation', codes: [HBA1C], value: { min: 7 }, date: { from: '2020-01-01', to: '2025-12-31' } },
  ],
  age: { min: 45 },
  groupBy: ['ageBand', 'gender'],
  epsilon: 0.5,
};

/** The oracle, from the ground truth: patients over 45 with diabetes and an HbA1c ≥ 7 in 2020-2025, by age band and gender. */
function oracle(people: Person[]): Map<string, number> {
  const bands = [
    [0, 17],
    [18, 44],
    [45, 64],
    [65, 74],
    [75, 84],
    [85, 200],
  ];
  const out = new Map<string, number>();
  for (const p of people) {
    const [y, m, d] = p.birthDate.split('-').map(Number) as [number, number, number];
    const age = 2026 - y - (m > 1 || (m === 1 && d > 1) ? 1 : 0);
    if (age < 45 || !p.diabetic || !p.hba1c.some((o) => o.value >= 7 && o.date >= '2020-01-01' && o.date <= '2025-12-31')) continue;
    const band = bands.findIndex(([lo, hi]) => age >= lo! && age <= hi!);
    const key = `${band}/${p.gender}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

let db: Database;
let ledger: AuditLog;
let cast: Cast;
/** The two platform hospitals' own records: each agent reads only its half. */
const HTTP_PEOPLE = fc.sample(person, { numRuns: 60, seed: 3 });
// One PGlite and one platform (whose ledger every test appends to) for the whole file. Its two hospitals run
// statistics agents that generate the consortium's key among themselves (2 of 2) over the cloud's board.
before(async () => {
  await curve.initCurve();
  db = await openDatabase();
  const agent = (people: Person[], approve: 'auto' | 'manual') => ({
    data: async () => people.flatMap(resourcesOf),
    budgets: [['http-set', 1]] as const,
    approve,
    pollMs: 50,
  });
  cast = await startCast(db, {
    stats: { threshold: 2 },
    statsAgents: { 'st-marys': agent(HTTP_PEOPLE.slice(0, 30), 'auto'), riverside: agent(HTTP_PEOPLE.slice(30), 'manual') },
  });
  ledger = cast.platform.ledger;
});
after(async () => {
  await cast.platform.close();
  await db.close();
});

test('query language: shape errors, allow-list refusals and limits are typed and clear', () => {
  assert.equal(parseQuery(QUERY).groupBy.length, 2);
  assert.throws(
    () => parseQuery({ ...QUERY, select: '*' }),
    (e: unknown) => e instanceof MalformedInputError && /unknown field 'select'/.test(e.message),
  );
  assert.throws(
    () => parseQuery({ ...QUERY, where: [{ resourceType: 'Condition', codes: ['http://hl7.org/fhir/sid/icd-10|E11'] }] }),
    (e: unknown) => e instanceof AccessDeniedError && /icd-10 is not allowed/.test(e.message),
  );
  assert.throws(() => parseQuery({ ...QUERY, where: [{ resourceType: 'DocumentReference', codes: [HBA1C] }] }), MalformedInputError);
  assert.throws(
    () => parseQuery(QUERY, { ...DEFAULT_ALLOW_LIST, resources: { Observation: { 'http://loinc.org': ['2339-0'] } } }),
    /Condition is not on the allow-list/,
  );
  assert.throws(
    () => parseQuery({ ...QUERY, epsilon: 5 }),
    (e: unknown) => e instanceof AccessDeniedError && /epsilon 5 is outside/.test(e.message),
  );
  assert.throws(() => parseQuery({ ...QUERY, epsilon: 0.1234567 }), /epsilon has at most 6 decimals/);
  assert.throws(() => parseQuery({ ...QUERY, groupBy: ['ageBand', 'gender', 'year'] }), LimitExceededError);
  assert.throws(
    () => parseQuery({ ...QUERY, groupBy: ['year'], where: [{ resourceType: 'Condition', codes: [DIABETES] }] }),
    /needs a criterion with a date range/,
  );
  assert.throws(() => parseQuery({ ...QUERY, where: new Array(5).fill(QUERY.where[0]) }), LimitExceededError);
  assert.throws(
    () => parseQuery({ ...QUERY, measure: { kind: 'sum', code: 'http://loinc.org|8302-2', min: 0, max: 250, scale: 1 } }),
    /summing .* is not allowed/,
  );
  assert.throws(() => parseQuery({ ...QUERY, asOf: '2026-02-30x' }), /asOf must be a date/);
  assert.throws(() => parseQuery('SELECT * FROM patients'), MalformedInputError);
});

test('the evaluator equals the ground-truth oracle on random patients (fast-check)', () => {
  const query = parseQuery(QUERY);
  fc.assert(
    fc.property(fc.array(person, { maxLength: 40 }), (people) => {
      const cells = evaluateQuery(query, people.flatMap(resourcesOf));
      const expected = oracle(people);
      cells.forEach((v, k) => assert.equal(v, expected.get(`${Math.floor(k / 4)}/${['female', 'male', 'other', 'unknown'][k % 4]}`) ?? 0, `cell ${k}`));
    }),
    { numRuns: 60 },
  );
});

test('encrypted totals over hospitals equal the plaintext evaluation of the pooled data, before noise (fast-check)', () => {
  const query = parseQuery({ ...QUERY, groupBy: ['ageBand'], measure: { kind: 'sum', code: HBA1C, min: 4, max: 14, scale: 10 } });
  const dkg = threshold.runDkg({ n: 3, t: 2 });
  fc.assert(
    fc.property(fc.array(fc.tuple(person, fc.integer({ min: 0, max: 2 })), { maxLength: 30 }), (assigned) => {
      const at = (h: number) => assigned.filter(([, k]) => k === h).flatMap(([p]) => resourcesOf(p));
      const cts = [0, 1, 2].map((h) => threshold.encrypt(dkg.publicKey, evaluateQuery(query, at(h))));
      const total = threshold.addCiphertexts(cts[0]!, cts[1]!, cts[2]!);
      const partials = [1, 3].map((j) => threshold.partialDecrypt(dkg.shares[j - 1]!, dkg.publicKey.verificationKeys[j - 1]!, total));
      const values = threshold.combine(dkg.publicKey, total, partials).values.map(Number);
      assert.deepEqual(
        values,
        evaluateQuery(
          query,
          assigned.flatMap(([p]) => resourcesOf(p)),
        ),
      );
    }),
    { numRuns: 5 },
  );
});

/** The chi-square statistic of `samples` against the discrete Laplace pmf of α, |k| ≤ K binned, tails lumped. */
function chiSquare(samples: number[], alpha: number, K: number): { statistic: number; df: number } {
  const pmf = (k: number) => ((1 - alpha) / (1 + alpha)) * alpha ** Math.abs(k);
  const tail = (2 * alpha ** (K + 1)) / (1 + alpha); // P(|Z| > K)
  const observed = new Map<number, number>();
  for (const x of samples) observed.set(Math.abs(x) > K ? Infinity : x, (observed.get(Math.abs(x) > K ? Infinity : x) ?? 0) + 1);
  let statistic = 0;
  for (let k = -K; k <= K; k++) statistic += ((observed.get(k) ?? 0) - samples.length * pmf(k)) ** 2 / (samples.length * pmf(k));
  statistic += ((observed.get(Infinity) ?? 0) - samples.length * tail) ** 2 / (samples.length * tail);
  return { statistic, df: 2 * K + 1 };
}

/** The chi-square quantile at p = 10⁻⁴ (z = 3.719), by Wilson and Hilferty's approximation. */
const chiCritical = (df: number) => df * (1 - 2 / (9 * df) + 3.719 * Math.sqrt(2 / (9 * df))) ** 3;

test('exact discrete Laplace (Canonne–Kamath–Steinke): samples fit the pmf (chi-square), at several rational scales', () => {
  for (const [t, s] of [
    [1, 1],
    [2, 1],
    [7, 3],
    [20, 1],
  ] as const) {
    const alpha = Math.exp(-s / t);
    const samples = Array.from({ length: 20_000 }, () => discreteLaplace(t, s));
    assert.ok(samples.every(Number.isSafeInteger));
    // Bins with an expected count of at least 20.
    let K = 0;
    while (20_000 * ((1 - alpha) / (1 + alpha)) * alpha ** (K + 1) >= 20) K++;
    const { statistic, df } = chiSquare(samples, alpha, K);
    assert.ok(statistic < chiCritical(df), `scale ${t}/${s}: chi² ${statistic.toFixed(1)} ≥ ${chiCritical(df).toFixed(1)} (df ${df})`);
  }
  // A wrong scale is rejected by the same test: the test has power.
  const wrong = Array.from({ length: 20_000 }, () => discreteLaplace(3, 1));
  const { statistic, df } = chiSquare(wrong, Math.exp(-1 / 2), 8);
  assert.ok(statistic > chiCritical(df), 'samples of scale 3 do not pass as scale 2');
});

test('exact Bernoulli(exp(−γ)) for rational γ matches exp(−γ); bad parameters are a RangeError', () => {
  for (const [n, d] of [
    [0, 1],
    [1, 3],
    [1, 1],
    [5, 2],
    [7, 4],
  ] as const) {
    const p = Math.exp(-n / d);
    const runs = 20_000;
    let hits = 0;
    for (let i = 0; i < runs; i++) if (bernoulliExp(n, d)) hits++;
    assert.ok(Math.abs(hits / runs - p) < 4.5 * Math.sqrt((p * (1 - p)) / runs) + 1e-9, `exp(−${n}/${d}): ${hits / runs} vs ${p}`);
  }
  assert.throws(() => bernoulliExp(-1, 2), RangeError);
  assert.throws(() => discreteLaplace(0, 1), RangeError);
  assert.throws(() => noiseSample(0.5, 1.5), RangeError);
});

test('every hospital adds one discrete Laplace: the total has the stated variance; ε is taken as the fraction it spells', () => {
  assert.deepEqual(epsilonFraction(0.1), { p: 1, q: 10 });
  assert.deepEqual(epsilonFraction(1.25), { p: 125, q: 100 });
  assert.throws(() => epsilonFraction(0.1234567), RangeError);
  const alpha = laplaceAlpha(0.5, 1);
  const samples = Array.from({ length: 12_000 }, () => noiseSample(0.5, 1) + noiseSample(0.5, 1) + noiseSample(0.5, 1));
  const variance = samples.reduce((a, x) => a + x * x, 0) / samples.length;
  assert.ok(Math.abs(variance - noiseVariance(alpha, 3)) / noiseVariance(alpha, 3) < 0.1, `variance ${variance} vs ${noiseVariance(alpha, 3)}`);
});

/**
 * A consortium of three (t = 2) on the shared database, with budgets, and a data set split among them. `groupBy`
 * narrows the query (4 cells by gender instead of 24) where a test needs no more: every cell costs 16 bit proofs.
 */
async function setup(tag: string, budget = 1, groupBy = QUERY.groupBy) {
  const querySet = `diabetes-${tag}`;
  const query = { ...QUERY, querySet, groupBy };
  const kek = randomKeyEncryptionKey();
  const codes = HOSPITALS.map((h) => `${h}-${tag}`);
  const { consortium, secrets } = formConsortium(codes, 2);
  const hospitals: StatsHospital[] = [];
  for (const code of codes) {
    await StatsHospital.enrol(db, kek, code, consortium, secrets.get(code)!);
    const h = await StatsHospital.open(db, kek, code, consortium);
    await h.setBudget(querySet, budget);
    hospitals.push(h);
  }
  const cloud = await StatsAggregator.open(db, ledger, consortium);
  await cloud.setBudget(querySet, budget);
  const people = fc.sample(person, { numRuns: 240, seed: 7 }).map((p, i) => ({
    ...p,
    diabetic: i % 2 === 0,
    hba1c: i % 3 === 0 ? [] : [{ date: '2022-05-05', value: 6 + (i % 5) }],
    birthDate: `19${40 + (i % 40)}-06-15`,
  }));
  const data = codes.map((_, h) => people.filter((_, i) => i % 3 === h).flatMap(resourcesOf));
  return { kek, codes, consortium, secrets, hospitals, cloud, people, data, query, querySet };
}

const REQUESTER = 'psn:researcher-0123456789ab';

test('a cross-hospital query end to end: noisy totals near the truth, small cells suppressed, budget and ledger accounted', async () => {
  const s = await setup('e2e', 1, ['ageBand']);
  const { ticket, budget } = await s.cloud.submit(REQUESTER, s.query);
  assert.deepEqual(budget, { querySet: s.querySet, budget: 1, spent: 0.5, remaining: 0.5 });
  for (const [i, h] of s.hospitals.entries()) await s.cloud.addContribution(ticket.queryId, await h.contribute(ticket, s.data[i]!));
  const contributions = await s.cloud.contributions(ticket.queryId);
  for (const h of s.hospitals.slice(1)) await s.cloud.addPartial(ticket.queryId, await h.decrypt(ticket, contributions));
  const release = await s.cloud.release(ticket.queryId);
  assert.deepEqual(release.decryptedBy, s.codes.slice(1));
  assert.deepEqual(release.contributors, [...s.codes].sort());
  assert.equal(release.cells.length, 6);
  const truth = oracle(s.people);
  const sigma = release.noise.countStdDev;
  for (const [k, cell] of release.cells.entries()) {
    const real = (truth.get(`${k}/female`) ?? 0) + (truth.get(`${k}/male`) ?? 0);
    if (cell.count === null) assert.ok(real < 10 + 12 * sigma, `suppressed cell ${k} with ${real}`);
    else {
      assert.ok(cell.count >= 10, 'released cells are at least the threshold');
      assert.ok(Math.abs(cell.count - real) <= 12 * sigma, `cell ${k}: ${cell.count} vs ${real} (σ ${sigma})`);
    }
  }
  assert.ok(release.cells.some((c) => c.count === null) && release.cells.some((c) => c.count !== null));
  assert.deepEqual(await s.cloud.release(ticket.queryId), release, 'a release is made once');
  await ledger.flush();
  const entries = (await db.query<{ entry: string }>("SELECT entry FROM ledger_entries WHERE entry LIKE '%stats-%' ORDER BY idx")).rows.map((r) =>
    JSON.parse(r.entry),
  );
  const last = entries.at(-1)!;
  assert.equal(last.type.code, 'stats-release');
  assert.deepEqual(
    last.entity.filter((e: { type: { code: string } }) => e.type.code === 'hospital').map((e: { role: { code: string } }) => e.role.code),
    ['approve', 'decrypt', 'decrypt'],
  );
  assert.ok(!JSON.stringify(entries).includes('44054006'), 'the query text is not on the ledger, only its hash');
  // Each hospital accounted its own budget too.
  assert.deepEqual(await s.hospitals[0]!.budget(s.querySet), { querySet: s.querySet, budget: 1, spent: 0.5, remaining: 0.5 });
});

test('over budget or outside the allow-list: refused with a clear error by the cloud, and by each hospital itself', async () => {
  const s = await setup('budget', 0.8, ['gender']);
  await s.cloud.submit(REQUESTER, s.query);
  await assert.rejects(
    s.cloud.submit(REQUESTER, s.query),
    (e: unknown) =>
      e instanceof LimitExceededError && /budget of query set diabetes-budget is exhausted: ε 0.5 of 0.8 spent, 0.3 left, this query needs 0.5/.test(e.message),
  );
  assert.deepEqual(await s.cloud.budget(s.querySet), { querySet: s.querySet, budget: 0.8, spent: 0.5, remaining: 0.3 });
  await assert.rejects(s.cloud.submit(REQUESTER, { ...s.query, querySet: 'unfunded' }), /no privacy budget is set for query set unfunded/);
  await assert.rejects(
    s.cloud.submit(REQUESTER, { ...s.query, where: [{ resourceType: 'Condition', codes: ['http://hl7.org/fhir/sid/icd-10|E11'] }] }),
    AccessDeniedError,
  );
  // A cloud that skips its own checks still meets the hospitals': each spends from its own budget.
  const h = s.hospitals[0]!;
  await h.contribute({ queryId: 'skipped-check-1', query: s.query }, s.data[0]!);
  await assert.rejects(h.contribute({ queryId: 'skipped-check-2', query: s.query }, s.data[0]!), LimitExceededError);
  const strict = await StatsHospital.open(db, s.kek, s.codes[1]!, s.consortium, {
    ...DEFAULT_ALLOW_LIST,
    resources: { Observation: { 'http://loinc.org': '*' } },
  });
  await assert.rejects(strict.contribute({ queryId: 'not-allowed-here', query: s.query }, []), /Condition is not on the allow-list/);
  // Restarting keeps the account.
  const reopened = await StatsHospital.open(db, s.kek, s.codes[0]!, s.consortium);
  assert.equal((await reopened.budget(s.querySet))!.spent, 0.5);
});

test("a cheating hospital's wrong partial decryption is detected and named; with too few honest ones nothing is released", async () => {
  const s = await setup('cheat', 1, ['gender']);
  const { ticket } = await s.cloud.submit(REQUESTER, s.query);
  for (const [i, h] of s.hospitals.entries()) await s.cloud.addContribution(ticket.queryId, await h.contribute(ticket, s.data[i]!));
  const contributions = await s.cloud.contributions(ticket.queryId);
  // Hospital 1 decrypts honestly, then alters its partial (adds G to cell 0) and signs the altered one itself.
  const honest = await s.hospitals[0]!.decrypt(ticket, contributions);
  const p = threshold.decodePartial(honest.partial);
  const forged = threshold.encodePartial({ ...p, d: p.d.map((d, k) => (k === 0 ? curve.g1Add(d, curve.g1Generator()) : d)) });
  const { queryHash } = await s.cloud.status(ticket.queryId);
  const cheat = s.codes[0]!;
  await s.cloud.addPartial(ticket.queryId, {
    hospital: cheat,
    partial: forged,
    signature: signPayload('partial', s.secrets.get(cheat)!.signingKey, ticket.queryId, queryHash, cheat, forged),
  });
  await s.cloud.addPartial(ticket.queryId, await s.hospitals[1]!.decrypt(ticket, contributions));
  await assert.rejects(
    s.cloud.release(ticket.queryId),
    (e: unknown) =>
      e instanceof AccessDeniedError && new RegExp(`1 valid partial decryptions, 2 needed; rejected \\(proof failed\\): ${cheat}`).test(e.message),
  );
  // Nobody can blame a hospital for a partial it did not sign: the cheat's signed partial posted in lakeside's name.
  const cheatSignature = signPayload('partial', s.secrets.get(cheat)!.signingKey, ticket.queryId, queryHash, cheat, forged);
  await assert.rejects(
    s.cloud.addPartial(ticket.queryId, { hospital: s.codes[2]!, partial: forged, signature: cheatSignature }),
    (e: unknown) => e instanceof AccessDeniedError && /not signed by/.test(e.message),
  );
  await s.cloud.addPartial(ticket.queryId, await s.hospitals[2]!.decrypt(ticket, contributions));
  const release = await s.cloud.release(ticket.queryId);
  assert.deepEqual(release.rejected, [cheat]);
  assert.deepEqual(release.decryptedBy, s.codes.slice(1));
  await assert.rejects(s.cloud.addPartial(ticket.queryId, { hospital: s.codes[1]!, partial: forged, signature: new Uint8Array(64) }), ConflictError);
});

test("attacks by the cloud: decrypting one hospital's histogram, forged, replayed or altered contributions, a second total", async () => {
  const s = await setup('attack', 1, ['gender']);
  const { ticket } = await s.cloud.submit(REQUESTER, s.query);
  const mine = await Promise.all(s.hospitals.map((h, i) => h.contribute(ticket, s.data[i]!)));
  // Ask hospitals 2 and 3 to decrypt hospital 1's histogram alone.
  await assert.rejects(s.hospitals[1]!.decrypt(ticket, [mine[0]!]), (e: unknown) => e instanceof AccessDeniedError && /missing: /.test(e.message));
  // Or hospital 1's histogram plus encryptions of zero in the others' names (the cloud cannot sign for them).
  const zero = threshold.encodeCiphertext(threshold.encrypt(s.consortium.publicKey, new Array(4).fill(0)));
  const fake = (hospital: string): ProvenContribution => ({ hospital, ciphertext: zero, signature: mine[0]!.signature, proof: mine[0]!.proof });
  await assert.rejects(s.hospitals[1]!.decrypt(ticket, [mine[0]!, fake(s.codes[1]!), fake(s.codes[2]!)]), /not signed by/);
  await assert.rejects(s.cloud.addContribution(ticket.queryId, fake(s.codes[1]!)), /not signed by/);
  // Replaying a contribution signed for another query.
  const { ticket: other } = await s.cloud.submit(REQUESTER, s.query);
  const elsewhere = await s.hospitals[2]!.contribute(other, s.data[2]!);
  await assert.rejects(s.hospitals[1]!.decrypt(ticket, [mine[0]!, mine[1]!, elsewhere]), /not signed by/);
  // The same member twice, or its own contribution swapped for another it signed.
  await assert.rejects(s.hospitals[1]!.decrypt(ticket, [mine[0]!, mine[0]!, mine[2]!]), /single contribution/);
  // A hospital contributes once per query (fresh noise twice could be averaged away).
  await assert.rejects(s.hospitals[0]!.contribute(ticket, s.data[0]!), ConflictError);
  // Decrypting the genuine total works once; another total for the same query is refused.
  await s.hospitals[1]!.decrypt(ticket, mine);
  await s.hospitals[1]!.decrypt(ticket, [mine[2]!, mine[0]!, mine[1]!]); // the same total again is harmless
  const resigned = {
    ...mine[0]!,
    ciphertext: zero,
    signature: signPayload(
      'contribution',
      s.secrets.get(s.codes[0]!)!.signingKey,
      ticket.queryId,
      (await s.cloud.status(ticket.queryId)).queryHash,
      s.codes[0]!,
      zero,
    ),
  };
  await assert.rejects(s.hospitals[1]!.decrypt(ticket, [resigned, mine[1]!, mine[2]!]), ConflictError);
  await assert.rejects(s.hospitals[0]!.decrypt(ticket, [resigned, mine[1]!, mine[2]!]), /own contribution was altered/);
  // A hospital that never contributed decrypts nothing.
  await assert.rejects(s.hospitals[0]!.decrypt({ queryId: 'never-contributed', query: s.query }, mine), /did not contribute/);
  // Hostile ciphertexts at the cloud: truncated, another key.
  const sig = (bytes: Uint8Array) => signPayload('contribution', s.secrets.get(s.codes[0]!)!.signingKey, ticket.queryId, 'sha256:x', s.codes[0]!, bytes);
  await assert.rejects(
    s.cloud.addContribution(ticket.queryId, {
      hospital: s.codes[0]!,
      ciphertext: zero.subarray(0, 50),
      signature: sig(zero.subarray(0, 50)),
      proof: mine[0]!.proof,
    }),
    /not signed/,
  );
  await assert.rejects(s.cloud.addContribution('no-such-query-id', mine[0]!), /no statistics query/);
  const short = threshold.encodeCiphertext(threshold.encrypt(s.consortium.publicKey, [1]));
  const hash = (await s.cloud.status(ticket.queryId)).queryHash;
  const signedShort = {
    hospital: s.codes[0]!,
    ciphertext: short,
    signature: signPayload('contribution', s.secrets.get(s.codes[0]!)!.signingKey, ticket.queryId, hash, s.codes[0]!, short),
    proof: mine[0]!.proof,
  };
  await assert.rejects(s.cloud.addContribution(ticket.queryId, signedShort), /wrong number of cells/);
  await s.cloud.addContribution(ticket.queryId, mine[0]!);
  await assert.rejects(s.cloud.addContribution(ticket.queryId, mine[0]!), /already contributed/);
});

test('a cheating hospital inflating its histogram is refused by name: a cell outside its range, too wide a range, a copied contribution', async () => {
  const s = await setup('inflate', 1, ['gender']);
  const { ticket } = await s.cloud.submit(REQUESTER, s.query);
  const { queryHash } = await s.cloud.status(ticket.queryId);
  const cheat = s.codes[1]!;
  const signed = (ciphertext: Uint8Array) => signPayload('contribution', s.secrets.get(cheat)!.signingKey, ticket.queryId, queryHash, cheat, ciphertext);
  const widths = cellBits(parseQuery(s.query));
  const pk = s.consortium.publicKey;
  // Riverside claims 100,000 patients in cell 3: beyond a count cell's ±2^15 it cannot prove, so it proves 30,000
  // and swaps in a ciphertext of 100,000 — the cell no longer matches its proof.
  const values = [0, 0, 0, 30_000];
  const honest = threshold.encryptInRange(pk, values, widths, contributionContext(ticket.queryId, cheat));
  const big = threshold.encrypt(pk, [0, 0, 0, 100_000]);
  const swapped = threshold.encodeCiphertext({
    ...honest.ciphertext,
    c1: honest.ciphertext.c1.map((c, k) => (k === 3 ? big.c1[3]! : c)),
    c2: honest.ciphertext.c2.map((c, k) => (k === 3 ? big.c2[3]! : c)),
  });
  await assert.rejects(
    s.cloud.addContribution(ticket.queryId, {
      hospital: cheat,
      ciphertext: swapped,
      signature: signed(swapped),
      proof: threshold.encodeRangeProof(honest.proof),
    }),
    (e: unknown) =>
      e instanceof AccessDeniedError && new RegExp(`contribution of ${cheat} is refused: the range proof fails in 1 cell\\(s\\) \\(3\\)`).test(e.message),
  );
  // A proof in wider ranges than the query's (32 bits per cell) is refused as a whole.
  const wide = threshold.encryptInRange(pk, values, [32, 32, 32, 32], contributionContext(ticket.queryId, cheat));
  const wideCt = threshold.encodeCiphertext(wide.ciphertext);
  await assert.rejects(
    s.cloud.addContribution(ticket.queryId, { hospital: cheat, ciphertext: wideCt, signature: signed(wideCt), proof: threshold.encodeRangeProof(wide.proof) }),
    /fails in 4 cell/,
  );
  // St Mary's honest contribution, copied by Riverside and signed as its own: the proof is bound to St Mary's.
  const marys = await s.hospitals[0]!.contribute(ticket, s.data[0]!);
  await assert.rejects(
    s.cloud.addContribution(ticket.queryId, { hospital: cheat, ciphertext: marys.ciphertext, signature: signed(marys.ciphertext), proof: marys.proof }),
    new RegExp(`contribution of ${cheat} is refused`),
  );
  await assert.rejects(s.cloud.addContribution(ticket.queryId, { ...marys, proof: marys.proof.subarray(0, 100) }), MalformedInputError);
  await s.cloud.addContribution(ticket.queryId, marys);
  await s.cloud.addContribution(ticket.queryId, await s.hospitals[1]!.contribute(ticket, s.data[1]!));
});

test("a copy of a hospital's database yields no key share: it is wrapped by the KEK and bound to its row", async () => {
  const s = await setup('copy');
  const row = (await db.query<{ share: Uint8Array }>('SELECT share FROM stats_hospital_keys WHERE hospital = $1', [s.codes[0]])).rows[0]!;
  const plain = threshold.encodeKeyShare(s.secrets.get(s.codes[0]!)!.share);
  assert.ok(!Buffer.from(row.share).includes(Buffer.from(plain.subarray(-32))), 'the share is not stored in the clear');
  await assert.rejects(StatsHospital.open(db, randomKeyEncryptionKey(), s.codes[0]!, s.consortium), IntegrityError);
  // Moving hospital 1's wrapped share into hospital 2's row does not unwrap there.
  await db.query('UPDATE stats_hospital_keys SET share = $1 WHERE hospital = $2', [row.share, s.codes[1]]);
  await assert.rejects(StatsHospital.open(db, s.kek, s.codes[1]!, s.consortium), IntegrityError);
  await assert.rejects(StatsHospital.enrol(db, s.kek, s.codes[0]!, s.consortium, s.secrets.get(s.codes[0]!)!), ConflictError);
});

export type { StatsQuery };

/** Polls `check` until it returns something other than undefined (the agents work on their own timers). */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("over HTTP: the hospitals' agents generate the key among themselves, contribute, and decrypt under their own approval policy", async () => {
  const agents = cast.platform.services.hospitals.map((h) => h.statsAgent!);
  // The key generation ran between the two hospital services over the cloud's board: same key everywhere.
  const formed = await until('the key generation', () =>
    agents.every((a) => a.status().stage === 'formed') ? agents.map((a) => a.status().keyId) : undefined,
  );
  const cloudKey = threshold.keyFingerprint(cast.platform.stats!.consortium.publicKey);
  assert.deepEqual(formed, [cloudKey, cloudKey]);
  const board = (await (await fetch(new URL('/stats/dkg', cast.base))).json()) as {
    messages: { phase: string }[];
    ceremony: { t: number; members: unknown[] };
  };
  assert.equal(board.messages.length, 2 * 6, 'one message per member per phase');
  assert.deepEqual([board.ceremony.t, board.ceremony.members.length], [2, 2]);
  // A message not signed by its sender is refused by the board.
  const replayed = (board.messages as unknown as Record<string, unknown>[])[0]!;
  const bad = await fetch(new URL('/stats/dkg/messages', cast.base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...replayed, sender: replayed['sender'] === 'riverside' ? 'st-marys' : 'riverside' }),
  });
  assert.equal(bad.status, 400);

  await cast.platform.stats!.setBudget('http-set', 1);
  const query = { ...QUERY, querySet: 'http-set', groupBy: ['gender'], epsilon: 0.6 };
  const anonymous = await fetch(new URL('/stats/queries', cast.base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query }),
  });
  assert.equal(anonymous.status, 401);
  const doctor = await cast.registerAndLogin('riverside', 'dr-stats', ['role:doctor']);
  await assert.rejects(new StatsClient(doctor).submit(query), (e: { status?: number }) => e.status === 403);
  const researcher = new StatsClient(await cast.registerAndLogin('riverside', 'res', ['role:researcher']));
  await assert.rejects(
    researcher.submit({ ...query, where: [{ resourceType: 'Condition', codes: ['http://hl7.org/fhir/sid/icd-10|E11'] }] }),
    (e: { status?: number; message: string }) => e.status === 403 && /icd-10 is not allowed/.test(e.message),
  );
  const { queryId } = await researcher.submit(query);
  // A contribution posted in riverside's name but signed by nobody is refused.
  const forged = await fetch(new URL(`/stats/queries/${queryId}/contributions`, cast.base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ hospital: 'riverside', ciphertext: 'AAAA', signature: Buffer.alloc(64).toString('base64'), proof: 'AAAA' }),
  });
  assert.equal(forged.status, 403);
  // St Mary's decrypts at once (policy auto); Riverside's administrator has not approved (policy manual): one of
  // two partials, so nothing can be released.
  await until("st-marys's partial", async () => ((await researcher.status(queryId)).partials.includes('st-marys') ? true : undefined));
  assert.deepEqual((await researcher.status(queryId)).contributors, ['riverside', 'st-marys']);
  await assert.rejects(researcher.release(queryId), /1 valid partial decryptions, 2 needed/);
  const approve = (token: string) =>
    fetch(new URL(`/stats-agent/queries/${queryId}/approve`, cast.urls.hospitals['riverside']), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
  assert.equal((await approve('not-the-administrator-token')).status, 401);
  assert.equal((await approve(ADMINS['riverside']!)).status, 201);
  await until("riverside's partial", async () => ((await researcher.status(queryId)).partials.includes('riverside') ? true : undefined));
  const release = await researcher.release(queryId);
  assert.deepEqual(release.decryptedBy, ['st-marys', 'riverside']);
  const truth = evaluateQuery(parseQuery(query), HTTP_PEOPLE.flatMap(resourcesOf));
  release.cells.forEach((cell, k) => {
    if (cell.count !== null) assert.ok(Math.abs(cell.count - truth[k]!) <= 12 * release.noise.countStdDev, `cell ${k}: ${cell.count} vs ${truth[k]}`);
    else assert.ok(truth[k]! < 10 + 12 * release.noise.countStdDev);
  });
  assert.deepEqual((await researcher.status(queryId)).release, release);
  assert.deepEqual(await researcher.budget('http-set'), { querySet: 'http-set', budget: 1, spent: 0.6, remaining: 0.4 });
  await assert.rejects(researcher.submit(query), (e: { code?: string; message: string }) => e.code === 'LIMIT' && /exhausted/.test(e.message));
});

test("an agent refuses a ceremony whose board substituted a member's key (to read the share sealed to it), or names a hospital it does not know", async () => {
  const { createServer } = await import('node:http');
  const probe = await StatsAgent.open(
    db,
    randomKeyEncryptionKey(),
    'probe-hospital',
    () => board,
    () => [{ name: 'riverside', url: cast.urls.hospitals['riverside']! }],
    { data: async () => [] },
  );
  const riverside = (await (await fetch(new URL('/stats-agent/keys', cast.urls.hospitals['riverside']))).json()) as { verifyKey: string; boxKey: string };
  const attackerBox = Buffer.from(generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' })).toString('base64');
  let members = [
    { code: 'probe-hospital', index: 1, ...probe.keys },
    { code: 'riverside', index: 2, verifyKey: riverside.verifyKey, boxKey: attackerBox },
  ];
  const posted: unknown[] = [];
  const server = createServer((request, response) => {
    if (request.method === 'POST') posted.push(request.url);
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ ceremony: { id: 'substituted-ceremony-1', t: 2, members }, messages: [] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const board = new URL(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
  try {
    await probe.step();
    assert.match(probe.status().lastError ?? '', /keys for riverside are not the ones riverside's own service publishes/);
    members = [members[0]!, { code: 'unknown-hospital', index: 2, verifyKey: riverside.verifyKey, boxKey: riverside.boxKey }];
    await probe.step();
    assert.match(probe.status().lastError ?? '', /names unknown-hospital, which this hospital's configuration does not list/);
    assert.deepEqual(posted, [], 'it dealt nothing');
  } finally {
    server.close();
  }
});

test('hostile key-generation messages: every malformed body, ceremony or sealed share is a typed error or a complaint, never a crash', () => {
  const member = (code: string, index: number) => {
    const ed = generateKeyPairSync('ed25519');
    const x = generateKeyPairSync('x25519');
    const spki = (k: KeyObject) => Buffer.from(k.export({ format: 'der', type: 'spki' })).toString('base64');
    return { member: { code, index, verifyKey: spki(ed.publicKey), boxKey: spki(x.publicKey) }, box: x.privateKey };
  };
  const a = member('a-hospital', 1);
  const b = member('b-hospital', 2);
  const ceremony = parseCeremony({ id: 'hostile-ceremony-1', t: 2, members: [a.member, b.member] });
  assert.throws(() => parseCeremony({ id: 'x', t: 2, members: [] }), MalformedInputError);
  assert.throws(() => parseCeremony({ ...ceremony, t: 3 }), MalformedInputError);
  assert.throws(() => parseCeremony({ ...ceremony, members: [{ ...a.member, boxKey: a.member.verifyKey }, b.member] }), /not an x25519 public key/);
  const malformed = (phase: Parameters<typeof decodeBody>[1], body: unknown) =>
    assert.throws(() => decodeBody(ceremony, phase, 1, body), MalformedInputError, `${phase} ${JSON.stringify(body).slice(0, 60)}`);
  const { commitments, shares } = threshold.deal({ n: 2, t: 2 }, 1);
  const deal = bodies.deal(ceremony, commitments, shares);
  decodeBody(ceremony, 'deal', 1, deal);
  malformed('deal', { ...deal, shares: { 1: deal.shares['1'] } });
  malformed('deal', { ...deal, commitments: [...deal.commitments, deal.commitments[0]] });
  malformed('deal', { ...deal, commitments: ['AAAA', deal.commitments[1]] });
  malformed('deal', []);
  malformed('complain', { against: [1, 1] });
  malformed('complain', { against: [3] });
  malformed('complain', { against: 'everyone' });
  malformed('answer', { pairs: [{ recipient: 9, share: 'AA==', blinding: 'AA==' }] });
  malformed('answer', { pairs: [{ recipient: 2, share: Buffer.alloc(32, 0xff).toString('base64'), blinding: 'AA==' }] });
  malformed('extract', { feldman: new Array(3).fill(deal.commitments[0]) });
  malformed('reconstruct', { pairs: [{ dealer: 0, share: 'AA==', blinding: 'AA==' }] });
  // A share sealed to b does not open for a, nor as another dealer's: a complains instead.
  assert.ok(openShare(ceremony.id, b.box, deal.shares['2'], 1, 2) !== undefined);
  assert.equal(openShare(ceremony.id, a.box, deal.shares['2'], 1, 2), undefined);
  assert.equal(openShare(ceremony.id, b.box, deal.shares['2'], 2, 2), undefined);
  assert.equal(openShare(ceremony.id, b.box, { v: 1, epk: 'x' }, 1, 2), undefined);
  // A message in a's name not signed by a is refused when the board is read.
  assert.throws(
    () => decodeBoard(ceremony, [{ ceremony: ceremony.id, phase: 'deal', sender: 'a-hospital', body: deal, signature: Buffer.alloc(64).toString('base64') }]),
    /not signed by a member/,
  );
});
