/**
 * Reading secrets (passwords, one-time codes, administrator credentials) without ever taking them
 * as command-line arguments, which other users can read in the process list and shells keep in history.
 *
 *  - On a terminal: each secret is prompted for on stderr and typed without echo.
 *  - Otherwise (scripts, tests): one secret per line from standard input, in the order the command
 *    documents. Missing lines are a usage error.
 */
import { UsageError } from './errors.ts';

const MAX_STDIN_BYTES = 64 * 1024;

async function readPiped(count: number): Promise<string[]> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_STDIN_BYTES) throw new UsageError('standard input is too large for secrets');
    chunks.push(chunk as Buffer);
  }
  const lines = Buffer.concat(chunks).toString('utf8').split(/\r?\n/);
  if (lines.length < count || lines.slice(0, count).some((line) => line.length === 0)) {
    throw new UsageError(`expected ${count} secret line(s) on standard input`);
  }
  return lines.slice(0, count);
}

function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const onData = (data: Buffer) => {
      for (const char of data.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish(() => resolve(value));
        if (char === '\u0003') return finish(() => reject(new UsageError('cancelled')));
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else value += char;
      }
    };
    const finish = (done: () => void) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      done();
    };
    stdin.on('data', onData);
  });
}

/** Reads the named secrets: hidden prompts on a terminal, else one line each from stdin. */
export async function readSecrets(prompts: string[]): Promise<string[]> {
  if (!process.stdin.isTTY) return readPiped(prompts.length);
  const values: string[] = [];
  for (const prompt of prompts) {
    const value = await promptHidden(`${prompt}: `);
    if (value.length === 0) throw new UsageError(`${prompt} is required`);
    values.push(value);
  }
  return values;
}
