import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/medshare.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs the real `medshare` binary in a child process, optionally feeding stdin and setting its environment. */
export function runCli(args: string[], options: { stdin?: Buffer | string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ code: code ?? -1, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

/** Runs the CLI and asserts exit 0, naming the command and its stderr on failure. */
export async function runOk(args: string[], stdin?: Buffer): Promise<CliResult> {
  const result = await runCli(args, { stdin });
  assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
  return result;
}

/** An attribute authority in `dir` with a cardiologist and a dermatologist key beside it. */
export async function setupAuthority(dir: string, cardiologistAttributes = 'role:doctor,dept:cardiology'): Promise<void> {
  await runOk(['abe', 'setup', '--out', `${dir}/authority`]);
  for (const [name, attributes] of [
    ['cardiologist', cardiologistAttributes],
    ['dermatologist', 'role:doctor,dept:dermatology'],
  ] as const) {
    await runOk([
      'abe',
      'keygen',
      '--public',
      `${dir}/authority/abe-public.key`,
      '--master',
      `${dir}/authority/abe-master.key`,
      '--attributes',
      attributes,
      '--out',
      `${dir}/${name}.key`,
    ]);
  }
}
