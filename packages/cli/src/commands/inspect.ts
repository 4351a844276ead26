/**
 * `medshare inspect FILE` — what a MedShare key or ciphertext is and what it is for: type, authority, policy,
 * category, epoch, record id, attributes. Never prints secret material.
 */
import type { Command } from 'commander';
import { abe, dearmor, detectType, formatVersion, pre, typeName, MalformedInputError, ObjectType } from '@medshare/crypto';
import { openInput, readSmallFile } from '../io.ts';
import { readHeaderFrom } from './abe.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const CIPHERTEXTS = [ObjectType.AbeCiphertext, ObjectType.PreCiphertext, ObjectType.ConvertedCiphertext];

/** Lines describing the object in `bytes` (a whole key, or a ciphertext header). */
export function describe(type: ObjectType, bytes: Uint8Array): Array<[string, string]> {
  switch (type) {
    case ObjectType.AbePublicKey:
      return [['authority', hex(abe.decodePublicKey(bytes).authorityId)]];
    case ObjectType.AbeMasterKey:
      return [
        ['authority', hex(abe.decodeMasterKey(bytes).authorityId)],
        ['secret', 'yes — keep it on the trusted authority only'],
      ];
    case ObjectType.AbeUserKey: {
      const key = abe.decodeUserKey(bytes);
      return [
        ['authority', hex(key.authorityId)],
        ['attributes', abe.formatAttributes(key.attributes)],
        ['copies per attribute', String(key.maxOccurrences)],
        ['secret', 'yes'],
      ];
    }
    case ObjectType.AbeCiphertext: {
      const header = abe.openHeader(bytes);
      return [
        ['authority', hex(header.authorityId)],
        ['policy', header.policy],
        ['rows', String(header.program.rows.length)],
      ];
    }
    case ObjectType.PatientSecretKey: {
      const key = pre.decodePatientKey(bytes);
      return [
        ['patient', key.patientId],
        ['categories', [...key.epochs].map(([t, e]) => `${t} (epoch ${e})`).join(', ')],
        ['secret', 'yes'],
      ];
    }
    case ObjectType.PatientPublicKeys: {
      const keys = pre.decodePublicKeys(bytes);
      return [
        ['patient', keys.patientId],
        ['signing key', `${hex(keys.signingKey)} (signature valid)`],
        ...keys.categories.map((k): [string, string] => [`category ${k.category}`, `epoch ${k.epoch}, key id ${hex(k.keyId)}`]),
      ];
    }
    case ObjectType.PreCiphertext: {
      const { core } = pre.openRecordHeader(bytes);
      return [
        ['category', `${core.category} (epoch ${core.epoch})`],
        ['record', core.recordId],
        ['patient key id', hex(core.keyId)],
      ];
    }
    case ObjectType.ReEncryptionKey: {
      const rk = pre.decodeReEncryptionKey(bytes);
      const scope = rk.scope.kind === 'category' ? `the whole category` : `record ${rk.scope.recordId} only`;
      return [
        ['patient', rk.patientId],
        ['category', `${rk.category} (epoch ${rk.epoch})`],
        ['scope', scope],
        ['delegation', hex(rk.delegationId)],
        ['policy', abe.openHeader(rk.rk2).policy],
      ];
    }
    case ObjectType.EmergencyCapsule: {
      const capsule = pre.decodeEmergencyCapsule(bytes);
      return [
        ['emergency capsule', hex(capsule.delegationId)],
        ['policy', capsule.policy],
      ];
    }
    case ObjectType.EmergencyGrant: {
      const grant = pre.decodeEmergencyGrant(bytes);
      return [
        ['patient', grant.patientId],
        ['category', `${grant.category} (epoch ${grant.epoch})`],
        ['scope', `record ${grant.recordId} only, platform emergency access`],
        ['emergency capsule', hex(grant.delegationId)],
      ];
    }
    case ObjectType.ConvertedCiphertext: {
      const header = pre.openConvertedHeader(bytes);
      return [
        ['category', `${header.core.category} (epoch ${header.core.epoch})`],
        ['record', header.core.recordId],
        ['delegation', hex(header.delegationId)],
        ['policy', abe.openHeader(header.rk2).policy],
      ];
    }
    case ObjectType.SseWriterState:
      return [['searchable-index writer state', `${bytes.length} bytes, sealed under the writer's index key`]];
  }
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('describe a MedShare key or ciphertext (type, authority, policy, category, record); prints no secrets')
    .argument('<file>', 'a key or ciphertext, binary or armored (- for stdin)')
    .action(async (file: string) => {
      await abe.init();
      const { type, bytes } = await load(file);
      const rows: Array<[string, string]> = [['type', `${typeName(type).toLowerCase()} (format ${formatVersion(type)}, BLS12-381)`], ...describe(type, bytes)];
      const width = Math.max(...rows.map(([k]) => k.length));
      process.stdout.write(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n');
    });
}

async function load(file: string): Promise<{ type: ObjectType; bytes: Uint8Array }> {
  if (file !== '-') {
    // Ciphertexts can be large: read just their header.
    const peek = (await readHeaderFrom(openInput(file), ObjectType.AbeCiphertext).catch(() => undefined))?.header;
    const peekType = peek && detectType(peek);
    if (peekType !== undefined && CIPHERTEXTS.includes(peekType)) return { type: peekType, bytes: peek! };
  }
  const all = await readSmallFile(file, 'input');
  const type = detectType(all);
  if (type === undefined || !(type in ObjectType)) throw new MalformedInputError(`${file}: not a MedShare key or ciphertext`);
  return { type, bytes: CIPHERTEXTS.includes(type) ? all : dearmor(all, type) };
}
