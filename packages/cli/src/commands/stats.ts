/**
 * `medshare stats` — cross-hospital statistics under threshold homomorphic encryption (docs/platform.md).
 *   check  validate a query against the allow-list: its cells, sensitivity and ε, without touching data
 *   run    one query across hospitals on this machine: a consortium key made by distributed key generation,
 *          each hospital's histogram evaluated from its own FHIR bundles, noised and encrypted, the total
 *          decrypted by t of them with proofs, released with small cells suppressed and the budget shown
 *   query  one query against running services (`medshare serve`): a researcher signs in at a hospital (password
 *          and one-time code from the terminal or stdin), submits it to the cloud, the hospitals' statistics agents
 *          contribute and decrypt, and the release is printed
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { curve } from '@medshare/crypto';
import { openDatabase, randomKeyEncryptionKey } from '@medshare/db';
import { AuditLog, generateCheckpointKey, parseSignerKey } from '@medshare/ledger';
import {
  cellCount,
  DEFAULT_ALLOW_LIST,
  DEFAULT_RELEASE_RULES,
  formatRelease,
  formConsortium,
  groupsOf,
  parseQuery,
  PlatformClient,
  queryHash,
  runLocalQuery,
  StatsAggregator,
  StatsClient,
  StatsHospital,
  type StatsResource,
} from '@medshare/server';
import { UsageError } from '../errors.ts';
import { readSecrets } from '../secrets.ts';

async function readQuery(path: string): Promise<unknown> {
  try {
    return JSON.parse(path.trim().startsWith('{') ? path : await readFile(path, 'utf8'));
  } catch (error) {
    if (error instanceof SyntaxError) throw new UsageError(`--query: not JSON (${error.message})`);
    throw error;
  }
}

/** Every resource of the FHIR bundles in a file or a directory of .json files. */
export async function bundleResources(path: string): Promise<StatsResource[]> {
  const files = (await stat(path)).isDirectory()
    ? (await readdir(path))
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => join(path, f))
    : [path];
  const out: StatsResource[] = [];
  for (const file of files) {
    let bundle: { entry?: { resource?: StatsResource }[] };
    try {
      bundle = JSON.parse((await readFile(file, 'utf8')).replace(/^\uFEFF/, ''));
    } catch {
      throw new UsageError(`${file}: not a JSON FHIR bundle`);
    }
    for (const e of bundle.entry ?? []) if (e.resource) out.push(e.resource);
  }
  return out;
}

function positive(value: string, what: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`${what} must be a positive number`);
  return n;
}

/** Registers `medshare stats`. */
export function registerStats(program: Command): void {
  const stats = program.command('stats').description('cross-hospital statistics under threshold homomorphic encryption');

  stats
    .command('check')
    .description('validate a query against the allow-list and show its cells, sensitivity and ε')
    .requiredOption('--query <file|json>', 'the query (a JSON file, or JSON text)')
    .action(async (options: { query: string }) => {
      const query = parseQuery(await readQuery(options.query), DEFAULT_ALLOW_LIST);
      process.stdout.write(
        `${queryHash(query)}\nquery set ${query.querySet}, ε ${query.epsilon}, ${groupsOf(query).length} groups, ${cellCount(query)} encrypted cells\n`,
      );
    });

  stats
    .command('query')
    .description(
      "run one query against running services: the hospitals' statistics agents contribute and decrypt (password and one-time code on the terminal or stdin)",
    )
    .requiredOption('--url <url>', 'the cloud (its /stats routes)')
    .requiredOption('--hospital-url <url>', "the researcher's hospital service, where they sign in")
    .requiredOption('--hospital <name>', "the researcher's hospital")
    .requiredOption('--username <name>', 'the researcher (role:researcher)')
    .requiredOption('--query <file|json>', 'the query (a JSON file, or JSON text)')
    .option('--timeout <seconds>', 'how long to wait for the agents', '120')
    .option('--json', 'print the release as JSON')
    .action(async (options: { url: string; hospitalUrl: string; hospital: string; username: string; query: string; timeout: string; json?: boolean }) => {
      const query = await readQuery(options.query);
      parseQuery(query, DEFAULT_ALLOW_LIST);
      const url = (text: string, what: string) => {
        try {
          return new URL(text);
        } catch {
          throw new UsageError(`${what}: not a URL: ${text}`);
        }
      };
      const cloud = url(options.url, '--url');
      const hospitalUrl = url(options.hospitalUrl, '--hospital-url');
      const [password, code] = await readSecrets(['password', 'one-time code']);
      const session = await new PlatformClient({ authority: hospitalUrl, cloud, hospitals: { [options.hospital]: hospitalUrl } }).loginWithCode(
        options.hospital,
        options.username,
        password!,
        code!,
      );
      const release = await new StatsClient(session).run(query, { timeoutMs: positive(options.timeout, '--timeout') * 1000 });
      process.stdout.write(options.json ? `${JSON.stringify(release, null, 2)}\n` : `${formatRelease(release).join('\n')}\n`);
    });

  stats
    .command('run')
    .description('run one query across hospitals on this machine (each --hospital evaluates only its own bundles)')
    .requiredOption('--query <file|json>', 'the query (a JSON file, or JSON text)')
    .requiredOption('--hospital <name=path...>', 'a hospital and its FHIR bundle file or directory (repeat)')
    .option('--threshold <t>', 'hospitals needed to decrypt (default: a majority)')
    .option('--budget <epsilon>', "the query set's total privacy budget", '1')
    .option('--min-count <k>', 'release rule: counts below k are suppressed', String(DEFAULT_RELEASE_RULES.minCount))
    .option('--json', 'print the release as JSON')
    .action(async (options: { query: string; hospital: string[]; threshold?: string; budget: string; minCount: string; json?: boolean }) => {
      const query = await readQuery(options.query);
      const parsed = parseQuery(query, DEFAULT_ALLOW_LIST);
      const members = options.hospital.map((spec) => {
        const at = spec.indexOf('=');
        if (at <= 0) throw new UsageError(`--hospital ${spec}: expected name=path`);
        return { code: spec.slice(0, at), path: spec.slice(at + 1) };
      });
      const t = options.threshold === undefined ? Math.floor(members.length / 2) + 1 : Number(options.threshold);
      if (!Number.isInteger(t) || t < 1 || t > members.length) throw new UsageError(`--threshold must be an integer in 1..${members.length}`);
      const budget = positive(options.budget, '--budget');
      const minCount = Number(options.minCount);
      if (!Number.isSafeInteger(minCount) || minCount < 0) throw new UsageError('--min-count must be a non-negative integer');
      await curve.initCurve();
      const db = await openDatabase();
      try {
        const ledger = await AuditLog.open(db, parseSignerKey(generateCheckpointKey('medshare.local/stats').skey));
        const { consortium, secrets } = formConsortium(
          members.map((m) => m.code),
          t,
        );
        const kek = randomKeyEncryptionKey();
        const hospitals = [];
        for (const m of members) {
          await StatsHospital.enrol(db, kek, m.code, consortium, secrets.get(m.code)!);
          const agent = await StatsHospital.open(db, kek, m.code, consortium);
          await agent.setBudget(parsed.querySet, budget);
          const resources = await bundleResources(m.path);
          hospitals.push({ agent, resources: () => resources });
        }
        const cloud = await StatsAggregator.open(db, ledger, consortium, { rules: { minCount } });
        await cloud.setBudget(parsed.querySet, budget);
        const release = await runLocalQuery(cloud, hospitals, 'psn:local-researcher-0001', query);
        await ledger.flush();
        process.stdout.write(options.json ? `${JSON.stringify(release, null, 2)}\n` : `${formatRelease(release).join('\n')}\n`);
      } finally {
        await db.close();
      }
    });
}
