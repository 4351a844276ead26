/**
 * Everything the cloud holds, as bytes: every row of every table of the cloud's database (ciphertexts, metadata,
 * re-encryption keys, emergency capsules and grants, access log, audit entries, wrapped secrets, migration
 * bookkeeping). The demo and the tests search it for plaintext and try its key-shaped values against the records,
 * making the claim "the cloud never holds what decrypts a record" checkable rather than asserted.
 */
import { abe, pre } from '@medshare/crypto';
import type { Database } from '@medshare/db';

/** Every value of every table of the current schema, values separated by NUL bytes. */
export async function cloudContents(db: Database): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const value of await everyValue(db)) parts.push(value, Buffer.from([0]));
  return Buffer.concat(parts);
}

/** Every non-null value of every table of the current schema, as bytes (bytea as is, everything else as text). */
export async function everyValue(db: Database): Promise<Buffer[]> {
  const tables = await db.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
  );
  const values: Buffer[] = [];
  for (const { table_name: table } of tables.rows) {
    const rows = await db.query<Record<string, unknown>>(`SELECT * FROM "${table.replaceAll('"', '""')}"`);
    for (const row of rows.rows) {
      for (const value of Object.values(row)) {
        if (value === null || value === undefined) continue;
        if (value instanceof Uint8Array) values.push(Buffer.from(value));
        else if (value instanceof Date) values.push(Buffer.from(value.toISOString(), 'utf8'));
        else values.push(Buffer.from(typeof value === 'object' ? JSON.stringify(value) : String(value), 'utf8'));
      }
    }
  }
  return values;
}

/** What `tryEveryKey` found and tried. */
export interface KeyScan {
  /** Values scanned. */
  readonly values: number;
  /** Record ciphertexts found among them. */
  readonly records: number;
  /** Key-shaped values found, by kind (an ABE master key, an ABE user key, a patient secret key, a 32-byte scalar). */
  readonly candidates: { readonly masterKeys: number; readonly userKeys: number; readonly patientKeys: number; readonly scalars: number };
  /** Decryption attempts made. */
  readonly attempts: number;
  /** Records some candidate decrypted (0 is the claim). */
  readonly decrypted: number;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const HEX = /^(?:[0-9a-fA-F]{2})+$/;

/** Every byte string a value may stand for: itself, and its base64/base64url/hex decodings (text, JSON strings too). */
function readings(value: Buffer, out: Buffer[], depth = 0): void {
  out.push(value);
  if (depth > 3 || value.length > 1 << 20) return;
  const text = value.toString('utf8');
  const inner = text.startsWith('kek:') ? text.slice(4) : text;
  if (HEX.test(inner)) out.push(Buffer.from(inner, 'hex'));
  if (BASE64.test(inner) || BASE64URL.test(inner)) out.push(Buffer.from(inner, BASE64URL.test(inner) ? 'base64url' : 'base64'));
  if (text.startsWith('{') || text.startsWith('[')) {
    try {
      const visit = (node: unknown): void => {
        if (typeof node === 'string') readings(Buffer.from(node, 'utf8'), out, depth + 1);
        else if (node !== null && typeof node === 'object') for (const child of Object.values(node)) visit(child);
      };
      visit(JSON.parse(text));
    } catch {
      // not JSON
    }
  }
}

/** `decode(bytes)`, or undefined when the bytes are not that kind of object. */
function attempt<T>(decode: () => T): T | undefined {
  try {
    return decode();
  } catch {
    return undefined;
  }
}

/**
 * The attack on a copy of a database: every value (and each of its base64/hex/JSON readings) that parses as a key,
 * secret or scalar is tried against every record ciphertext found in the same values. ABE master keys are used
 * to make a key with `attributes` (the attacker's choice: every attribute the deployment's policies name); ABE
 * user keys read every record through every re-encryption key and emergency grant found (those `pre.convert` accepts
 * for it: the same record, or the same category, epoch and patient key); patient secret keys
 * and 32-byte scalars (as a patient's master secret) decrypt records directly.
 */
export async function tryEveryKey(values: readonly Buffer[], attributes: string): Promise<KeyScan> {
  await abe.init();
  const all: Buffer[] = [];
  for (const value of values) readings(value, all);
  const records: Array<{ bytes: Uint8Array; header: pre.RecordHeader }> = [];
  const rks: pre.ReEncryptionKey[] = [];
  const capsules = new Map<string, pre.EmergencyCapsuleInfo>();
  const grants: Uint8Array[] = [];
  const masterKeys: abe.MasterKey[] = [];
  const userKeys: abe.UserKey[] = [];
  const patientKeys: pre.PatientSecretKey[] = [];
  const bundles: pre.PatientPublicKeys[] = [];
  const scalars = new Map<string, Uint8Array>();
  for (const bytes of all) {
    const u8 = new Uint8Array(bytes);
    const header = attempt(() => pre.openRecordHeader(u8));
    if (header !== undefined) {
      records.push({ bytes: u8, header });
      continue;
    }
    const rk = attempt(() => pre.decodeReEncryptionKey(u8));
    if (rk !== undefined) {
      rks.push(rk);
      continue;
    }
    const capsule = attempt(() => pre.decodeEmergencyCapsule(u8));
    if (capsule !== undefined) {
      capsules.set(Buffer.from(capsule.delegationId).toString('hex'), capsule);
      continue;
    }
    if (attempt(() => pre.decodeEmergencyGrant(u8)) !== undefined) {
      grants.push(u8);
      continue;
    }
    const master = attempt(() => abe.decodeMasterKey(u8));
    if (master !== undefined) {
      masterKeys.push(master);
      continue;
    }
    const user = attempt(() => abe.decodeUserKey(u8));
    if (user !== undefined) {
      userKeys.push(user);
      continue;
    }
    const patient = attempt(() => pre.decodePatientKey(u8));
    if (patient !== undefined) {
      patientKeys.push(patient);
      continue;
    }
    const bundle = attempt(() => pre.decodePublicKeys(u8));
    if (bundle !== undefined) {
      bundles.push(bundle);
      continue;
    }
    if (u8.length === 32) scalars.set(Buffer.from(u8).toString('hex'), u8);
  }
  let attempts = 0;
  const opened = new Set<number>();
  const tryOpen = (i: number, open: () => unknown) => {
    attempts++;
    if (attempt(open) !== undefined) opened.add(i);
  };
  const readers = [...userKeys, ...masterKeys.map((m) => abe.keygen(m, attributes))].map((k) => pre.createReader(k));
  const grantKeys = grants.flatMap((g) => {
    const capsule = capsules.get(Buffer.from(pre.decodeEmergencyGrant(g).delegationId).toString('hex'));
    return capsule === undefined ? [] : [attempt(() => pre.emergencyGrantKey(capsule, g))].filter((k): k is pre.ReEncryptionKey => k !== undefined);
  });
  // pre.convert refuses a key for another record, category, epoch or patient key: only the keys it accepts are tried.
  const fits = (rk: pre.ReEncryptionKey, core: pre.RecordCore) =>
    rk.scope.kind === 'record'
      ? rk.scope.recordId === core.recordId
      : rk.category === core.category && rk.epoch === core.epoch && Buffer.compare(rk.keyId, core.keyId) === 0;
  for (const [i, record] of records.entries()) {
    if (readers.length > 0) {
      for (const rk of [...rks, ...grantKeys]) {
        if (!fits(rk, record.header.core)) continue;
        const converted = attempt(() => pre.convert(rk, record.bytes));
        if (converted !== undefined) for (const reader of readers) tryOpen(i, () => reader.decrypt(converted));
      }
    }
    for (const key of patientKeys) tryOpen(i, () => pre.decrypt(key, record.bytes));
  }
  // A scalar is tried as each registered patient's master secret: it is hers only if it yields the first key of
  // her signed bundle (one GT exponentiation), and then it is tried on every record under her keys. Records under
  // keys of no bundle found are tried directly, once per (key id, category, epoch): the record secret depends on those only.
  const owned = new Set(bundles.flatMap((b) => b.categories.map((k) => Buffer.from(k.keyId).toString('hex'))));
  const groups = new Map<string, number>();
  for (const [i, { header }] of records.entries()) {
    const keyId = Buffer.from(header.core.keyId).toString('hex');
    if (!owned.has(keyId)) groups.set(`${keyId}|${header.core.category}|${header.core.epoch}`, i);
  }
  for (const scalar of scalars.values()) {
    for (const bundle of bundles) {
      const first = bundle.categories[0]!;
      const guess: pre.PatientSecretKey = {
        patientId: bundle.patientId,
        masterSecret: scalar,
        epochs: new Map(bundle.categories.map((k) => [k.category, k.epoch])),
      };
      attempts++;
      const derived = attempt(() => pre.publicKeys({ ...guess, epochs: new Map([[first.category, first.epoch]]) }));
      if (derived === undefined || Buffer.compare(derived.categories[0]!.keyId, first.keyId) !== 0) continue;
      const theirs = new Set(bundle.categories.map((k) => Buffer.from(k.keyId).toString('hex')));
      for (const [i, record] of records.entries())
        if (theirs.has(Buffer.from(record.header.core.keyId).toString('hex'))) tryOpen(i, () => pre.decrypt(guess, record.bytes));
    }
    for (const i of groups.values()) {
      const { category, epoch } = records[i]!.header.core;
      tryOpen(i, () => pre.decrypt({ patientId: 'psn:attacker-guess-000000', masterSecret: scalar, epochs: new Map([[category, epoch]]) }, records[i]!.bytes));
    }
  }
  return {
    values: values.length,
    records: records.length,
    attempts,
    decrypted: opened.size,
    candidates: { masterKeys: masterKeys.length, userKeys: userKeys.length, patientKeys: patientKeys.length, scalars: scalars.size },
  };
}
