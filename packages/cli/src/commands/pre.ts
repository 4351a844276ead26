/**
 * `medshare keys patient|rotate` and `medshare pre encrypt|decrypt|delegate|convert`: the patient-key to
 * CP-ABE proxy re-encryption flow from the command line. `pre convert` is what the cloud does: it rewrites
 * the header and copies the payload through unchanged, in constant memory.
 */
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { abe, armor, dearmor, pre, ObjectType } from '@medshare/crypto';
import { UsageError } from '../errors.ts';
import { inputSize, openInput, readSmallFile, write, writeFileAtomic } from '../io.ts';
import { openStream, readHeaderFrom, sealStream, withOutput } from './abe.ts';

async function loadPatientKey(path: string): Promise<pre.PatientSecretKey> {
  return pre.decodePatientKey(dearmor(await readSmallFile(path, 'patient key'), ObjectType.PatientSecretKey));
}

async function writePatientFiles(dir: string, key: pre.PatientSecretKey, overwrite: boolean): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, 'patient.key'), armor(ObjectType.PatientSecretKey, pre.encodePatientKey(key)), { secret: true, overwrite });
  await writeFileAtomic(join(dir, 'patient.pub'), armor(ObjectType.PatientPublicKeys, pre.encodePublicKeys(key)), { overwrite });
}

function parseHex(value: string, bytes: number, what: string): Uint8Array {
  if (!new RegExp(`^[0-9a-fA-F]{${2 * bytes}}$`).test(value)) throw new UsageError(`${what} must be ${2 * bytes} hex digits`);
  return new Uint8Array(Buffer.from(value, 'hex'));
}

export function registerPatientKeys(program: Command): void {
  const keys = program.command('keys').description('patient key management');

  keys
    .command('patient')
    .description('create a patient key: DIR/patient.key (secret, 0600) and DIR/patient.pub (signed category public keys)')
    .requiredOption('--out <dir>', 'directory for the two files')
    .option('--id <pseudonym>', 'the patient pseudonym inside the platform (default: a random one)')
    .option('--categories <list>', 'record categories', pre.DEFAULT_CATEGORIES.join(','))
    .option('--force', 'overwrite existing files')
    .action(async (o: { out: string; id?: string; categories: string; force?: boolean }) => {
      await abe.init();
      const key = pre.generatePatientKey(
        o.id ?? `patient-${randomUUID()}`,
        o.categories.split(',').map((s) => s.trim()),
      );
      await writePatientFiles(o.out, key, Boolean(o.force));
      process.stderr.write(`patient ${key.patientId}: signing key ${Buffer.from(pre.publicKeys(key).signingKey).toString('hex')}\n`);
    });

  keys
    .command('rotate')
    .description('start a new key epoch for a category (after revoking a delegation); rewrites patient.key and patient.pub in DIR')
    .requiredOption('--key <file>', 'the patient key')
    .requiredOption('--category <name>', 'the category to rotate')
    .requiredOption('--out <dir>', 'directory for the new patient.key and patient.pub')
    .action(async (o: { key: string; category: string; out: string }) => {
      await abe.init();
      const rotated = pre.rotate(await loadPatientKey(o.key), o.category);
      await writePatientFiles(o.out, rotated, true);
      process.stderr.write(
        `${o.category} is now at epoch ${rotated.epochs.get(o.category)}; publish the new patient.pub (the cloud replaces the old bundle, ` +
          `hospitals then encrypt under the new epoch) and delegate ${o.category} again: old-epoch re-encryption keys convert no new record\n`,
      );
    });

  keys
    .command('add-category')
    .description('add a record category (epoch 1) to a patient key; rewrites patient.key and patient.pub in DIR')
    .requiredOption('--key <file>', 'the patient key')
    .requiredOption('--category <name>', 'the category to add (e.g. clinical)')
    .requiredOption('--out <dir>', 'directory for the new patient.key and patient.pub')
    .action(async (o: { key: string; category: string; out: string }) => {
      await abe.init();
      const extended = pre.addCategory(await loadPatientKey(o.key), o.category);
      await writePatientFiles(o.out, extended, true);
      process.stderr.write(
        `added category ${o.category}; publish the new patient.pub (the cloud replaces the old bundle) and delegate ${o.category} as needed\n`,
      );
    });
}

export function registerPre(program: Command): void {
  const group = program.command('pre').description('proxy re-encryption from a patient key to CP-ABE policies');

  group
    .command('encrypt')
    .description("encrypt a record under the patient's public key for a category (what a hospital does)")
    .requiredOption('--to <file>', "the patient's signed public keys (patient.pub)")
    .requiredOption('--category <name>', 'record category, e.g. lab')
    .requiredOption('--in <file>', 'plaintext (- for stdin)')
    .requiredOption('--out <file>', 'ciphertext (- for stdout)')
    .option('--record-id <id>', 'record identifier (default: a random UUID)')
    .option('--expect-signer <hex>', "the patient's signing key pinned at enrolment (refuse a bundle signed by another)")
    .option('--force', 'overwrite an existing output file')
    .action(async (o: { to: string; category: string; in: string; out: string; recordId?: string; expectSigner?: string; force?: boolean }) => {
      await abe.init();
      const signer = o.expectSigner ? parseHex(o.expectSigner, 32, '--expect-signer') : undefined;
      const bundle = pre.decodePublicKeys(dearmor(await readSmallFile(o.to, 'patient public keys'), ObjectType.PatientPublicKeys), signer);
      const { header, sealer } = pre.encryptStream(bundle, o.category, o.recordId ?? randomUUID());
      const size = await inputSize(o.in);
      await withOutput(o.out, { overwrite: o.force }, (out) => sealStream(openInput(o.in), header, sealer, out, size));
    });

  group
    .command('decrypt')
    .description('decrypt one of your records with your patient key')
    .requiredOption('--key <file>', 'the patient key')
    .requiredOption('--in <file>', 'record ciphertext (- for stdin)')
    .requiredOption('--out <file>', 'plaintext (- for stdout)')
    .option('--force', 'overwrite an existing output file')
    .action(async (o: { key: string; in: string; out: string; force?: boolean }) => {
      await abe.init();
      const key = await loadPatientKey(o.key);
      const { header, payload } = await readHeaderFrom(openInput(o.in), ObjectType.PreCiphertext);
      const opener = pre.decryptStream(key, pre.openRecordHeader(header));
      const size = await inputSize(o.in);
      await withOutput(o.out, { overwrite: o.force }, (out) => openStream(payload, opener, out, size));
    });

  group
    .command('delegate')
    .description('create a re-encryption key from a category (or one record, with --record) to an access policy')
    .requiredOption('--key <file>', 'the patient key')
    .requiredOption('--public <file>', 'the attribute authority public key')
    .requiredOption('--policy <policy>', 'e.g. "(role:doctor and dept:cardiology) or role:emergency"')
    .requiredOption('--out <file>', 'the re-encryption key to give the cloud')
    .option('--category <name>', 'delegate this whole category (current epoch)')
    .option('--record <file>', 'delegate only this record ciphertext')
    .option('--force', 'overwrite an existing output file')
    .action(async (o: { key: string; public: string; policy: string; out: string; category?: string; record?: string; force?: boolean }) => {
      if (Boolean(o.category) === Boolean(o.record)) throw new UsageError('give exactly one of --category or --record');
      await abe.init();
      const key = await loadPatientKey(o.key);
      const publicKey = abe.decodePublicKey(dearmor(await readSmallFile(o.public, 'public key'), ObjectType.AbePublicKey));
      const rk = o.record
        ? pre.delegateRecord(key, pre.openRecordHeader((await readHeaderFrom(openInput(o.record), ObjectType.PreCiphertext)).header), publicKey, o.policy)
        : pre.delegate(key, o.category!, publicKey, o.policy);
      await writeFileAtomic(o.out, armor(ObjectType.ReEncryptionKey, pre.encodeReEncryptionKey(rk)), { secret: true, overwrite: o.force });
    });

  group
    .command('convert')
    .description("re-encrypt a record for the delegation's policy (what the cloud does; exit 3 if the key is for another category or record)")
    .requiredOption('--rk <file>', 'the re-encryption key')
    .requiredOption('--in <file>', 'record ciphertext (- for stdin)')
    .requiredOption('--out <file>', 'converted ciphertext, readable with `medshare abe decrypt` (- for stdout)')
    .option('--force', 'overwrite an existing output file')
    .action(async (o: { rk: string; in: string; out: string; force?: boolean }) => {
      await abe.init();
      const rk = pre.decodeReEncryptionKey(dearmor(await readSmallFile(o.rk, 're-encryption key'), ObjectType.ReEncryptionKey));
      const { header, payload } = await readHeaderFrom(openInput(o.in), ObjectType.PreCiphertext);
      const converted = pre.convertHeader(rk, pre.openRecordHeader(header));
      await withOutput(o.out, { overwrite: o.force }, async (out) => {
        await write(out.stream, converted);
        for await (const chunk of payload) await write(out.stream, chunk);
      });
    });
}
