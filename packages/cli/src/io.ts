/**
 * File and stream plumbing for the CLI: bounded reads of key files, atomic writes (temp file + rename, so a
 * failure never leaves a partial output), `-` for stdin/stdout, and a progress bar for long work on a TTY.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import cliProgress from 'cli-progress';
import { UsageError } from './errors.ts';

/** Largest key or header file read whole into memory; payloads are streamed. */
const MAX_SMALL_FILE = 64 * 1024 * 1024;

/** Reads a small file (a key) whole; `-` reads stdin. */
export async function readSmallFile(path: string, what: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of openInput(path)) {
    total += (chunk as Buffer).length;
    if (total > MAX_SMALL_FILE) throw new UsageError(`${what} ${path} is larger than ${MAX_SMALL_FILE} bytes; is it the right file?`);
    chunks.push(chunk as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** A readable stream of the input; `-` is stdin. Large reads keep per-chunk overhead low. */
export function openInput(path: string): Readable {
  return path === '-' ? process.stdin : createReadStream(path, { highWaterMark: 1024 * 1024 });
}

/** Size of an input file, or undefined for stdin. */
export async function inputSize(path: string): Promise<number | undefined> {
  return path === '-' ? undefined : (await stat(path)).size;
}

export interface Output {
  stream: Writable;
  /** Makes the output visible (renames the temp file into place). */
  commit(): Promise<void>;
  /** Discards a partial output. */
  abort(): Promise<void>;
}

/**
 * Opens an output for atomic replacement: data goes to a temp file beside the target, renamed over it only
 * by `commit`. `-` writes to stdout (not atomic: a failed run exits non-zero, and the consumer must check).
 */
export async function openOutput(path: string, options: { secret?: boolean; overwrite?: boolean } = {}): Promise<Output> {
  if (path === '-') return { stream: process.stdout, commit: async () => {}, abort: async () => {} };
  if (!options.overwrite && (await stat(path).catch(() => undefined))) throw new UsageError(`${path} already exists (use --force to overwrite)`);
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', options.secret ? 0o600 : 0o644);
  const stream = createWriteStream('', { fd: handle.fd, autoClose: false });
  let done = false;
  return {
    stream,
    async commit() {
      stream.end();
      await once(stream, 'finish');
      await handle.sync();
      await handle.close();
      if (options.secret) await chmod(temp, 0o600);
      await rename(temp, path);
      done = true;
    },
    async abort() {
      if (done) return;
      stream.destroy();
      await handle.close().catch(() => {});
      await rm(temp, { force: true });
    },
  };
}

/** Writes `data` to `path` atomically (or stdout for `-`). */
export async function writeFileAtomic(path: string, data: Uint8Array | string, options: { secret?: boolean; overwrite?: boolean } = {}): Promise<void> {
  const out = await openOutput(path, options);
  try {
    await write(out.stream, typeof data === 'string' ? Buffer.from(data) : data);
    await out.commit();
  } catch (error) {
    await out.abort();
    throw error;
  }
}

/** Writes with backpressure; several pieces go out as one write. */
export async function write(stream: Writable, data: Uint8Array | Uint8Array[]): Promise<void> {
  const bytes = Array.isArray(data) ? Buffer.concat(data) : data;
  if (bytes.length > 0 && !stream.write(bytes)) await once(stream, 'drain');
}

/** A byte-count progress bar on stderr, shown only for large inputs on an interactive terminal. */
export function progressBar(total: number | undefined, label: string): { tick(bytes: number): void; stop(): void } {
  if (!total || total < 8 * 1024 * 1024 || !process.stderr.isTTY) return { tick() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} MiB | ETA {eta}s`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  const mib = (n: number) => Math.round(n / 1048576);
  bar.start(mib(total), 0);
  let seen = 0;
  return {
    tick(bytes) {
      seen += bytes;
      bar.update(mib(seen));
    },
    stop: () => bar.stop(),
  };
}
