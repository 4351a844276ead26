/**
 * `medshare abe setup|keygen|encrypt|decrypt` — CP-ABE from the command line, mirroring OpenABE's
 * oabe_setup / oabe_keygen / oabe_enc / oabe_dec. Payloads stream in 64 KiB chunks, so memory stays flat
 * for any file size; outputs are written atomically.
 */
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { abe, armor, dearmor, envelopeLength, pre, AccessDeniedError, ObjectType, type PayloadSealer, type PayloadOpener } from '@medshare/crypto';
import { inputSize, openInput, openOutput, progressBar, readSmallFile, write, writeFileAtomic, type Output } from '../io.ts';

async function loadPublicKey(path: string): Promise<abe.PublicKey> {
  return abe.decodePublicKey(dearmor(await readSmallFile(path, 'public key'), ObjectType.AbePublicKey));
}

async function loadMasterKey(path: string): Promise<abe.MasterKey> {
  return abe.decodeMasterKey(dearmor(await readSmallFile(path, 'master key'), ObjectType.AbeMasterKey));
}

async function loadUserKey(path: string): Promise<abe.UserKey> {
  return abe.decodeUserKey(dearmor(await readSmallFile(path, 'user key'), ObjectType.AbeUserKey));
}

function sameAuthority(a: Uint8Array, b: Uint8Array, message: string): void {
  if (Buffer.compare(a, b) !== 0) throw new AccessDeniedError(message);
}

/** Runs `body` against an atomic output: committed on success, removed on any failure. */
export async function withOutput(path: string, options: { secret?: boolean; overwrite?: boolean }, body: (out: Output) => Promise<void>): Promise<void> {
  const out = await openOutput(path, options);
  try {
    await body(out);
    await out.commit();
  } catch (error) {
    await out.abort();
    throw error;
  }
}

/** Streams `input` through a payload sealer into `out`, after writing `header`. */
export async function sealStream(input: Readable, header: Uint8Array, sealer: PayloadSealer, out: Output, size: number | undefined): Promise<void> {
  const progress = progressBar(size, 'encrypt');
  try {
    await write(out.stream, header);
    for await (const chunk of input) {
      progress.tick((chunk as Buffer).length);
      await write(out.stream, sealer.push(chunk as Buffer));
    }
    await write(out.stream, sealer.finish());
  } finally {
    progress.stop();
  }
}

/**
 * Reads a ciphertext header of `type` from the start of a stream: returns its bytes and an iterator over
 * the rest (the payload), holding at most the header plus one read in memory.
 */
export async function readHeaderFrom(input: Readable, type: ObjectType): Promise<{ header: Uint8Array; payload: AsyncIterable<Buffer> }> {
  const iterator = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let buffered = Buffer.alloc(0);
  let total: number | undefined;
  for (;;) {
    total ??= envelopeLength(buffered, type);
    if (total !== undefined && buffered.length >= total) break;
    const next = await iterator.next();
    if (next.done) break;
    buffered = Buffer.concat([buffered, next.value]);
  }
  const headerEnd = Math.min(total ?? buffered.length, buffered.length);
  const rest = buffered.subarray(headerEnd);
  async function* payload(): AsyncGenerator<Buffer> {
    if (rest.length > 0) yield rest;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  return { header: new Uint8Array(buffered.subarray(0, headerEnd)), payload: payload() };
}

/** Streams a payload through an opener into `out`. */
export async function openStream(payload: AsyncIterable<Buffer>, opener: PayloadOpener, out: Output, size: number | undefined): Promise<void> {
  const progress = progressBar(size, 'decrypt');
  try {
    for await (const chunk of payload) {
      progress.tick(chunk.length);
      await write(out.stream, opener.push(chunk));
    }
    await write(out.stream, opener.finish());
  } finally {
    progress.stop();
  }
}

export function registerAbe(program: Command): void {
  const group = program.command('abe').description('ciphertext-policy attribute-based encryption (FAME on BLS12-381)');

  group
    .command('setup')
    .description('create an attribute authority: DIR/abe-public.key and DIR/abe-master.key (secret, mode 0600)')
    .requiredOption('--out <dir>', 'directory for the two key files')
    .option('--force', 'overwrite existing key files')
    .action(async (o: { out: string; force?: boolean }) => {
      await abe.init();
      const { publicKey, masterKey } = abe.setup();
      await mkdir(o.out, { recursive: true });
      await writeFileAtomic(join(o.out, 'abe-public.key'), armor(ObjectType.AbePublicKey, abe.encodePublicKey(publicKey)), { overwrite: o.force });
      await writeFileAtomic(join(o.out, 'abe-master.key'), armor(ObjectType.AbeMasterKey, abe.encodeMasterKey(masterKey)), {
        secret: true,
        overwrite: o.force,
      });
      process.stderr.write(`authority ${Buffer.from(publicKey.authorityId).toString('hex')} created in ${o.out}\n`);
    });

  group
    .command('keygen')
    .description('issue a user key for a list of attributes')
    .requiredOption('--public <file>', 'the authority public key')
    .requiredOption('--master <file>', 'the authority master key')
    .requiredOption('--attributes <list>', 'e.g. "role:doctor,dept:cardiology,level=3"')
    .requiredOption('--out <file>', 'where to write the user key (mode 0600; - for stdout)')
    .option('--force', 'overwrite an existing key file')
    .action(async (o: { public: string; master: string; attributes: string; out: string; force?: boolean }) => {
      await abe.init();
      const [publicKey, masterKey] = [await loadPublicKey(o.public), await loadMasterKey(o.master)];
      sameAuthority(publicKey.authorityId, masterKey.authorityId, 'the master key does not belong to this public key');
      const userKey = abe.keygen(masterKey, o.attributes);
      await writeFileAtomic(o.out, armor(ObjectType.AbeUserKey, abe.encodeUserKey(userKey)), { secret: true, overwrite: o.force });
    });

  group
    .command('encrypt')
    .description('encrypt a file under an access policy')
    .requiredOption('--public <file>', 'the authority public key')
    .requiredOption('--policy <policy>', 'e.g. "(role:doctor and dept:cardiology) or role:emergency"')
    .requiredOption('--in <file>', 'plaintext (- for stdin)')
    .requiredOption('--out <file>', 'ciphertext (- for stdout)')
    .option('--force', 'overwrite an existing output file')
    .action(async (o: { public: string; policy: string; in: string; out: string; force?: boolean }) => {
      await abe.init();
      const publicKey = await loadPublicKey(o.public);
      const { header, sealer } = abe.encryptStream(publicKey, o.policy);
      const size = await inputSize(o.in);
      await withOutput(o.out, { overwrite: o.force }, (out) => sealStream(openInput(o.in), header, sealer, out, size));
    });

  group
    .command('decrypt')
    .description('decrypt a file, or a record converted by `pre convert`, with a user key (exit 3: policy not satisfied; 4: tampered)')
    .requiredOption('--public <file>', 'the authority public key')
    .requiredOption('--key <file>', 'the user key')
    .requiredOption('--in <file>', 'ciphertext (- for stdin)')
    .requiredOption('--out <file>', 'plaintext (- for stdout)')
    .option('--force', 'overwrite an existing output file')
    .action(async (o: { public: string; key: string; in: string; out: string; force?: boolean }) => {
      await abe.init();
      const [publicKey, userKey] = [await loadPublicKey(o.public), await loadUserKey(o.key)];
      sameAuthority(publicKey.authorityId, userKey.authorityId, 'the user key was issued by a different authority than this public key');
      const { header, payload } = await readHeaderFrom(openInput(o.in), ObjectType.AbeCiphertext);
      const opener =
        header[5] === ObjectType.ConvertedCiphertext
          ? pre.createReader(userKey).decryptStream(pre.openConvertedHeader(header))
          : abe.decryptStream(userKey, abe.openHeader(header));
      const size = await inputSize(o.in);
      await withOutput(o.out, { overwrite: o.force }, (out) => openStream(payload, opener, out, size));
    });
}
