/**
 * FAME: Fast Attribute-based Message Encryption, the CP-ABE scheme of Agrawal & Chase (ACM CCS 2017,
 * §3 "Our CP-ABE scheme", instantiated with k = 2, i.e. under the decisional linear assumption), on
 * BLS12-381 with G = G1 (hashed attributes, key and ciphertext rows) and H = G2 (ct_0, sk_0, public key).
 *
 * This file is the scheme's math as a KEM: `encapsulate` outputs a uniformly random GT key and its
 * encapsulation under a span program; `decapsulate` recovers the key from a satisfying user key.
 * Notation follows the paper: A = (a1, a2), B = (b1, b2), d = (d1, d2, d3), and the random oracle
 * H(x, l, t) for l ∈ {1,2,3}, t ∈ {1,2} (0-based below). Deviations (KEM form, hashing encoding)
 * are explained in docs/crypto.md.
 *
 * The scheme works on oracle labels x (opaque bytes), not on attributes: every row of a ciphertext and every
 * component of a key names the label it is hashed under. FAME's security argument needs the rows' labels to be
 * distinct (the authors' implementation forbids attribute re-use): two rows hashed to the same points subtract
 * to a row with no attribute in it. `policy/occurrence.ts` maps policies and keys to distinct labels
 * (the one-use transformation); this file only does the algebra.
 */
import * as c from '../curve/bls12381.ts';
import type { Fr, G1, G2, GT } from '../curve/bls12381.ts';
import { AccessDeniedError } from '../errors.ts';
import type { SpanProgram } from '../policy/msp.ts';
import { reconstruct } from '../policy/reconstruct.ts';

export type Triple<T> = [T, T, T];

export interface FamePublicKey {
  /** h^{a1}, h^{a2} */
  hA: [G2, G2];
  /** e(g,h)^{d1·a1 + d3}, e(g,h)^{d2·a2 + d3} */
  eA: [GT, GT];
}

export interface FameMasterKey {
  a: [Fr, Fr];
  b: [Fr, Fr];
  /** g^{d1}, g^{d2}, g^{d3} */
  gd: Triple<G1>;
}

export interface FameKeyComponent {
  /** The oracle label y this component answers for. */
  label: Uint8Array;
  /** sk_{y,1}, sk_{y,2}, sk_{y,3} */
  k: Triple<G1>;
}

export interface FameUserKey {
  /** sk_0 = (h^{b1 r1}, h^{b2 r2}, h^{r1+r2}) */
  k0: Triple<G2>;
  /** sk' = (sk'_1, sk'_2, sk'_3) */
  kPrime: Triple<G1>;
  components: FameKeyComponent[];
}

export interface FameEncapsulation {
  /** ct_0 = (h^{a1 s1}, h^{a2 s2}, h^{s1+s2}) */
  c0: Triple<G2>;
  /** ct_{i,1..3}, one triple per span-program row */
  rows: Array<Triple<G1>>;
}

/**
 * RFC 9380 DST for every hash of this scheme; the message encodes (kind, l, t, data) unambiguously. V02: the
 * format-2 labels (attribute, occurrence) are hashed under a DST of their own, so no format-1 point recurs.
 */
const DST = 'MEDSHARE-V02-CS01-FAME-with-BLS12381G1_XMD:SHA-256_SSWU_RO_';
const KIND_ATTRIBUTE = 0x01;
const KIND_COLUMN = 0x02;

/** The six oracle points H(x, l, t), indexed [l][t]. */
type OraclePoints = [[G1, G1], [G1, G1], [G1, G1]];

/** The oracle's input for H(x, l, t): kind ‖ l ‖ t ‖ data, where data is a tagged, length-prefixed encoding. */
export function oracleMessage(kind: 'attribute' | 'column', l: number, t: number, data: Uint8Array): Uint8Array {
  const msg = new Uint8Array(3 + data.length);
  msg.set([kind === 'attribute' ? KIND_ATTRIBUTE : KIND_COLUMN, l, t]);
  msg.set(data, 3);
  return msg;
}

function oracle(kind: 'attribute' | 'column', data: Uint8Array): OraclePoints {
  const point = (l: number, t: number) => c.hashToG1(oracleMessage(kind, l, t, data), DST);
  return [
    [point(0, 0), point(0, 1)],
    [point(1, 0), point(1, 1)],
    [point(2, 0), point(2, 1)],
  ];
}

/** Bounded caches: hashing to the curve is the costliest part of encryption and keygen for a new attribute. */
const MAX_CACHED_ATTRIBUTES = 8192;
const attributeCache = new Map<string, OraclePoints>();
const columnCache: OraclePoints[] = [];

/** A label as a map key. */
export const labelKey = (label: Uint8Array): string => Buffer.from(label).toString('hex');

/** The oracle points of a label, from the cache when present; the least recently used label is evicted. */
function attributeOracle(label: Uint8Array): OraclePoints {
  const key = labelKey(label);
  let points = attributeCache.get(key);
  if (points) {
    attributeCache.delete(key);
  } else {
    points = oracle('attribute', label);
    if (attributeCache.size >= MAX_CACHED_ATTRIBUTES) attributeCache.delete(attributeCache.keys().next().value!);
  }
  attributeCache.set(key, points);
  return points;
}

function columnOracle(column: number): OraclePoints {
  let points = columnCache[column];
  if (!points) {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, column);
    points = oracle('column', data);
    columnCache[column] = points;
  }
  return points;
}

/**
 * Hashes `labels` into the attribute cache now (those already cached are skipped), so that a later keygen or
 * encryption naming them skips RFC 9380 hashing. Returns how many labels were hashed.
 */
export function warmOracle(labels: readonly Uint8Array[]): number {
  let hashed = 0;
  for (const label of labels) {
    if (attributeCache.has(labelKey(label))) continue;
    attributeOracle(label);
    hashed++;
  }
  return hashed;
}

/**
 * Empties the hash caches (benchmarks measure cold and warm encryption): both, or only the attributes' — the
 * columns' points are the same for every policy, so a process pays for column j once, whichever attributes it meets.
 */
export function clearOracleCache(which: 'all' | 'attributes' = 'all'): void {
  attributeCache.clear();
  if (which === 'all') columnCache.length = 0;
}

/** Setup: a fresh master key and its public key. */
export function setup(): { publicKey: FamePublicKey; masterKey: FameMasterKey } {
  const g = c.g1Generator();
  const h = c.g2Generator();
  const a: [Fr, Fr] = [c.randomFr(), c.randomFr()];
  const b: [Fr, Fr] = [c.randomFr(), c.randomFr()];
  const d: Triple<Fr> = [c.randomFr(), c.randomFr(), c.randomFr()];
  const egh = c.pairing(g, h);
  const publicKey: FamePublicKey = {
    hA: [c.g2Mul(h, a[0]), c.g2Mul(h, a[1])],
    eA: [c.gtPow(egh, c.frAdd(c.frMul(d[0], a[0]), d[2])), c.gtPow(egh, c.frAdd(c.frMul(d[1], a[1]), d[2]))],
  };
  const masterKey: FameMasterKey = { a, b, gd: [c.g1Mul(g, d[0]), c.g1Mul(g, d[1]), c.g1Mul(g, d[2])] };
  return { publicKey, masterKey };
}

/**
 * Computes (sk_{x,1}, sk_{x,2}, sk_{x,3}) for oracle points H(x,·,·): for t = 1,2
 * sk_{x,t} = Π_l H(x,l,t)^{br_l / a_t} · g^{σ / a_t} and sk_{x,3} = g^{−σ}.
 */
function keyTriple(points: OraclePoints, br: Triple<Fr>, aInv: [Fr, Fr], sigma: Fr): Triple<G1> {
  const g = c.g1Generator();
  const forT = (t: 0 | 1) =>
    c.msmG1(
      [points[0][t], points[1][t], points[2][t], g],
      [c.frMul(br[0], aInv[t]), c.frMul(br[1], aInv[t]), c.frMul(br[2], aInv[t]), c.frMul(sigma, aInv[t])],
    );
  return [forT(0), forT(1), c.g1Mul(g, c.frNeg(sigma))];
}

/**
 * KeyGen for a list of labels: one component per label, each with its own σ, all sharing r1, r2 (as the
 * paper's key shares them across attributes).
 */
export function keygen(masterKey: FameMasterKey, labels: readonly Uint8Array[]): FameUserKey {
  const h = c.g2Generator();
  const r: [Fr, Fr] = [c.randomFr(), c.randomFr()];
  const br: Triple<Fr> = [c.frMul(masterKey.b[0], r[0]), c.frMul(masterKey.b[1], r[1]), c.frAdd(r[0], r[1])];
  const aInv: [Fr, Fr] = [c.frInv(masterKey.a[0]), c.frInv(masterKey.a[1])];
  const k0: Triple<G2> = [c.g2Mul(h, br[0]), c.g2Mul(h, br[1]), c.g2Mul(h, br[2])];
  const components = labels.map((label) => ({ label, k: keyTriple(attributeOracle(label), br, aInv, c.randomFr()) }));
  // sk' uses the oracle of the target column, and hides g^{d_t} under a fresh σ'.
  const prime = keyTriple(columnOracle(0), br, aInv, c.randomFr());
  const kPrime: Triple<G1> = [c.g1Add(prime[0], masterKey.gd[0]), c.g1Add(prime[1], masterKey.gd[1]), c.g1Add(prime[2], masterKey.gd[2])];
  return { k0, kPrime, components };
}

/** Σ_j x_j·P_j where most x_j are ±1: additions for those, a multiplication otherwise. */
function combine(base: G1, terms: Array<[G1, bigint]>): G1 {
  let acc = base;
  for (const [point, x] of terms) {
    if (x === 1n) acc = c.g1Add(acc, point);
    else if (x === -1n) acc = c.g1Sub(acc, point);
    else acc = c.g1Add(acc, c.g1Mul(point, c.frFromBigInt(x)));
  }
  return acc;
}

/**
 * Encrypt as a KEM: returns a uniformly random key K = e(g,h)^{(d1 a1 + d3) s1 + (d2 a2 + d3) s2} and its
 * encapsulation. Row i with label y_i = labels[i] and matrix row M_i gets, for l = 1..3,
 * ct_{i,l} = Π_t ( H(y_i,l,t) · Π_j H(0j,l,t)^{M_ij} )^{s_t}: additions inside, one 2-term MSM per l.
 * The labels must be pairwise distinct for the scheme to be secure (see the file comment); this is the caller's
 * duty (`policy/occurrence.ts`), not checked here.
 */
export function encapsulate(publicKey: FamePublicKey, program: SpanProgram, labels: readonly Uint8Array[]): { key: GT; encapsulation: FameEncapsulation } {
  const h = c.g2Generator();
  const s: [Fr, Fr] = [c.randomFr(), c.randomFr()];
  const c0: Triple<G2> = [c.g2Mul(publicKey.hA[0], s[0]), c.g2Mul(publicKey.hA[1], s[1]), c.g2Mul(h, c.frAdd(s[0], s[1]))];
  const columns = Array.from({ length: program.columns }, (_, j) => columnOracle(j));
  const rows = program.rows.map((row, i): Triple<G1> => {
    const own = attributeOracle(labels[i]!);
    const forL = (l: 0 | 1 | 2) => {
      const perT = ([0, 1] as const).map((t) =>
        combine(
          own[l][t],
          row.entries.map(([j, x]) => [columns[j]![l][t], x]),
        ),
      );
      return c.msmG1(perT, s);
    };
    return [forL(0), forL(1), forL(2)];
  });
  const key = c.gtMul(c.gtPow(publicKey.eA[0], s[0]), c.gtPow(publicKey.eA[1], s[1]));
  return { key, encapsulation: { c0, rows } };
}

/** A user key's components by label, built once per key object. */
const componentIndex = new WeakMap<FameUserKey, Map<string, Triple<G1>>>();
function componentsByLabel(userKey: FameUserKey): Map<string, Triple<G1>> {
  let index = componentIndex.get(userKey);
  if (!index) {
    index = new Map(userKey.components.map((comp) => [labelKey(comp.label), comp.k]));
    componentIndex.set(userKey, index);
  }
  return index;
}

/** The map keys of a label list, remembered per list object (a header's labels come from a compiled-policy cache). */
const labelKeyLists = new WeakMap<readonly Uint8Array[], string[]>();
function labelKeysOf(labels: readonly Uint8Array[]): string[] {
  let keys = labelKeyLists.get(labels);
  if (keys === undefined) labelKeyLists.set(labels, (keys = labels.map(labelKey)));
  return keys;
}

/** Σ γ_i·P_i where γ = undefined stands for 1: the unit terms summed inside wasm, the others by one MSM. */
function weightedSum(terms: Array<[G1, Fr | undefined]>): G1 {
  const unit = terms.filter(([, g]) => g === undefined).map(([p]) => p);
  const scaled = terms.filter((t): t is [G1, Fr] => t[1] !== undefined);
  let acc = unit.length > 0 ? c.g1Sum(unit) : undefined;
  if (scaled.length > 0) {
    const msm = c.msmG1(
      scaled.map(([p]) => p),
      scaled.map(([, g]) => g),
    );
    acc = acc ? c.g1Add(acc, msm) : msm;
  }
  return acc!;
}

/** One term of the decryption equation: a ciphertext row, its coefficient γ_i (undefined = 1) and a key component. */
export interface DecryptionTerm {
  ct: Triple<G1>;
  gamma: Fr | undefined;
  sk: Triple<G1>;
}

/**
 * The decryption equation for given terms:
 * K = Π_l e(sk'_l · Π_i sk_{i,l}^{γ_i}, ct_{0,l}) · e(Π_i ct_{i,l}^{γ_i}, sk_{0,l})^{−1}
 * as one multi-pairing of six pairs (six Miller loops, one final exponentiation). It yields the KEM key exactly
 * when Σ γ_i·M_i = e_0 and each term's component answers for its row's label; `decapsulate` chooses the terms.
 */
export function decryptionEquation(userKey: FameUserKey, c0: Triple<G2>, terms: readonly DecryptionTerm[]): GT {
  const g1s: G1[] = [];
  const g2s: G2[] = [];
  for (const l of [0, 1, 2] as const) {
    g1s.push(c.g1Add(userKey.kPrime[l], weightedSum(terms.map((u) => [u.sk[l], u.gamma]))));
    g2s.push(c0[l]);
    // Rows are decoded on-curve only; the aggregate that meets sk_0 in the pairing is what must be in G1.
    const rowsAggregate = weightedSum(terms.map((u) => [u.ct[l], u.gamma]));
    c.assertInG1(rowsAggregate, 'ciphertext rows');
    g1s.push(c.g1Neg(rowsAggregate));
    g2s.push(userKey.k0[l]);
  }
  return c.multiPairing(g1s, g2s);
}

/**
 * Decrypt as a KEM: finds a satisfying set of rows (those whose label the key has a component for) and their
 * coefficients γ, then evaluates the decryption equation. `labels[i]` is row i's label, as encapsulated.
 * Throws AccessDeniedError if the key's labels do not satisfy the span program.
 */
export function decapsulate(userKey: FameUserKey, program: SpanProgram, labels: readonly Uint8Array[], encapsulation: FameEncapsulation): GT {
  const byLabel = componentsByLabel(userKey);
  const rowKeys = labelKeysOf(labels);
  const coefficients = reconstruct(program, (_row, i) => byLabel.has(rowKeys[i]!));
  if (!coefficients) throw new AccessDeniedError('the key does not satisfy the ciphertext policy');
  const terms = [...coefficients].map(([row, gamma]) => ({ gamma, ct: encapsulation.rows[row]!, sk: byLabel.get(rowKeys[row]!)! }));
  return decryptionEquation(userKey, encapsulation.c0, terms);
}
