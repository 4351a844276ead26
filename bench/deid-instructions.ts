/**
 * De-identification cost in executed instructions, which the load of a shared host does not move
 * (bench/privacy.ts --deid-only measures CPU time, whose ratio moved by ±0.4 from run to run here).
 * valgrind's callgrind counts the instructions of a process running R rounds over the Synthea
 * bundles, either the safe-harbor walk with its parse and serialisation (`deid`) or the reference
 * pass alone (JSON.parse + JSON.stringify, `ref`); each side runs at 2 and at 8 rounds, so the
 * difference over 6 rounds leaves out start-up and the first rounds' compilation. Each round uses a
 * fresh engine, as in bench/privacy.ts. The children run V8 `--single-threaded` (no concurrent
 * compilation or marking). The reference side repeated within 3 % from run to run; the de-identification
 * side moved by up to 10 % between runs of the same code here (when the heap grows and how much each
 * collection copies differ from run to run), so compare medians of several runs. Instructions are
 * not time: a cache miss or a GC pause costs more than its instructions, so this complements the
 * CPU-time benchmark, it does not replace it.
 * Run: node --import tsx bench/deid-instructions.ts   (needs valgrind, Debian's `valgrind`; ~5 minutes on
 * 2 cores; the shared data as for bench/privacy.ts)
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Deidentifier, profileConfig } from '@medshare/privacy';

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = `${process.env['MEDSHARE_SHARED_DIR'] ?? `${root}../shared`}/data/synthea`;
const ROUNDS = [2, 8] as const;

/** The measured loop, run in a child under callgrind: `--child <rounds> <deid|ref>`. */
function rounds(count: number, side: 'deid' | 'ref'): void {
  const texts = readdirSync(dir).map((f) => readFileSync(`${dir}/${f}`, 'utf8').replace(/^\uFEFF/, ''));
  const config = profileConfig('safe-harbor', { cryptoHashKey: 'bench-hash-key', dateShiftKey: 'bench-shift-key' });
  for (let round = 0; round < count; round++) {
    const engine = new Deidentifier(config);
    for (const text of texts) {
      const bundle = JSON.parse(text) as { entry?: { resource: Record<string, unknown> }[] };
      if (side === 'deid') engine.processResource(bundle as never, { names: engine.namesFor((bundle.entry ?? []).map((e) => e.resource)) });
      JSON.stringify(bundle);
    }
  }
}

/** The instructions callgrind counted in a child running `count` rounds of `side`. */
function instructions(count: number, side: 'deid' | 'ref'): Promise<number> {
  const args = [
    '--tool=callgrind',
    '--callgrind-out-file=/dev/null',
    process.execPath,
    '--single-threaded',
    '--import',
    'tsx',
    fileURLToPath(import.meta.url),
    '--child',
    String(count),
    side,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('valgrind', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => reject(new Error(`valgrind could not be started (${error.message}); install Debian's valgrind`)));
    child.on('close', (code) => {
      const collected = /Collected : (\d+)/.exec(stderr);
      if (code !== 0 || !collected) reject(new Error(`valgrind ${side} ${count} rounds exited with ${code}`));
      else resolve(Number(collected[1]));
    });
  });
}

async function main(): Promise<void> {
  if (!existsSync(dir)) throw new Error(`bench/deid-instructions.ts needs the Synthea bundles at ${dir}`);
  const perRound: Record<'deid' | 'ref', number> = { deid: 0, ref: 0 };
  // The two sides in parallel (one core each), their two round counts one after the other.
  await Promise.all(
    (['deid', 'ref'] as const).map(async (side) => {
      const [few, many] = [await instructions(ROUNDS[0], side), await instructions(ROUNDS[1], side)];
      perRound[side] = (many - few) / (ROUNDS[1] - ROUNDS[0]);
      console.error(`${side}: ${few} instructions at ${ROUNDS[0]} rounds, ${many} at ${ROUNDS[1]}`);
    }),
  );
  console.log('| side | instructions per round (millions) |');
  console.log('|---|---:|');
  console.log(`| safe-harbor walk, parse and serialisation included | ${(perRound.deid / 1e6).toFixed(0)} |`);
  console.log(`| JSON.parse + JSON.stringify | ${(perRound.ref / 1e6).toFixed(0)} |`);
  console.log(`| ratio | ${(perRound.deid / perRound.ref).toFixed(2)}x |`);
}

const at = process.argv.indexOf('--child');
if (at !== -1) rounds(Number(process.argv[at + 1]), process.argv[at + 2] === 'ref' ? 'ref' : 'deid');
else
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  });
