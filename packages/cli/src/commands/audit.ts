/**
 * `medshare audit`: check the tamper-evident ledger without trusting the server that keeps it.
 *   verify  recompute the tree from every stored entry; check every checkpoint, cosignature and external checkpoint
 *   proof   an inclusion proof bundle for one entry (JSON), verifiable offline with `check-proof`
 *   check-proof  verify such a bundle offline against pinned keys
 *   log     who accessed a patient's records, each line with its inclusion proof checked
 *   storage challenge the cloud to prove it still holds every record the ledger says it accepted (proofs of
 *           storage, docs/crypto.md); the auditor's SSO token is read from standard input
 *   anchor / anchored  put the latest checkpoint on the EVM chain / prove a checkpoint is there
 *           (LEDGER_RPC_URL, LEDGER_ANCHOR_ADDRESS, and LEDGER_PRIVATE_KEY to write)
 * verify, proof and log read a running platform's public ledger routes with `--url` (e.g. http://host/ledger, no
 * database access), else the database: `--data DIR` (PGlite), else DATABASE_URL (PostgreSQL), else ./.medshare/data.
 * The witness quorum defaults to a majority of the `--witness-key`s given. `verify --url` also reads the chain's
 * anchored head for the log (`--rpc-url`/`--anchor-address`, else LEDGER_RPC_URL/LEDGER_ANCHOR_ADDRESS, read-only) and
 * requires the served log to extend it.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { IntegrityError } from '@medshare/crypto';
import { openDatabase, type Database } from '@medshare/db';
import {
  AuditLog,
  anchorClientFromEnv,
  buildInclusionBundle,
  HttpChainCosigner,
  defaultQuorum,
  LedgerClient,
  parseVerifierKey,
  verifyInclusionBundle,
  verifyLog,
  verifyRemoteLog,
  type AnchorClient,
  type CheckpointVerifier,
  type InclusionBundle,
  type VerifyReport,
} from '@medshare/ledger';
import { UsageError } from '../errors.ts';
import { readSecrets } from '../secrets.ts';

const DEFAULT_DATA_DIR = '.medshare/data';
const PSEUDONYM = /^psn:[A-Za-z0-9_-]{16,86}$/;

interface StoreOptions {
  data?: string;
  url?: string;
}

interface TrustOptions {
  logKey?: string;
  witnessKey?: string[];
  quorum?: string;
}

async function openStore(options: StoreOptions): Promise<Database> {
  const url = process.env['DATABASE_URL'];
  if (options.data === undefined && url) return openDatabase({ url });
  const dataDir = options.data ?? DEFAULT_DATA_DIR;
  if (!existsSync(dataDir)) throw new UsageError(`${dataDir}: no such ledger data directory`);
  return openDatabase({ dataDir });
}

async function withReader<T>(options: StoreOptions, work: (log: AuditLog, storedVkey: string, db: Database) => Promise<T>): Promise<T> {
  const db = await openStore(options);
  try {
    const { log, logVkey } = await AuditLog.openReader(db);
    return await work(log, logVkey, db);
  } finally {
    await db.close();
  }
}

function quorumOf(options: TrustOptions): number {
  const quorum = Number(options.quorum ?? defaultQuorum(options.witnessKey?.length ?? 0));
  if (!Number.isSafeInteger(quorum) || quorum < 0) throw new UsageError('--quorum must be a non-negative integer');
  return quorum;
}

interface ChainOptions {
  rpcUrl?: string;
  anchorAddress?: string;
}

/**
 * The anchor chain `verify --url` reads (read-only): `--rpc-url`/`--anchor-address`, else LEDGER_RPC_URL/LEDGER_ANCHOR_ADDRESS;
 * none when neither names it (or without --url: the environment is then ignored, the flags refused).
 */
async function chainOf(options: ChainOptions & StoreOptions): Promise<AnchorClient | undefined> {
  if (options.url === undefined) {
    if (options.rpcUrl !== undefined || options.anchorAddress !== undefined)
      throw new UsageError('the chain anchor is checked against a served log: give --url');
    return undefined;
  }
  const url = options.rpcUrl ?? (process.env['LEDGER_RPC_URL'] || undefined);
  const address = options.anchorAddress ?? (process.env['LEDGER_ANCHOR_ADDRESS'] || undefined);
  if (url === undefined && address === undefined) return undefined;
  if (!url || !address)
    throw new UsageError('checking the chain anchor needs both --rpc-url and --anchor-address (or LEDGER_RPC_URL and LEDGER_ANCHOR_ADDRESS)');
  if (!/^https?:\/\/\S+$/.test(url)) throw new UsageError(`--rpc-url: not an http(s) URL: ${url}`);
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new UsageError(`--anchor-address: not a contract address (0x and 40 hex digits): ${address}`);
  return anchorClientFromEnv({ LEDGER_RPC_URL: url, LEDGER_ANCHOR_ADDRESS: address });
}

/** The ledger client of `--url`. */
function remote(options: StoreOptions): LedgerClient {
  try {
    return new LedgerClient(new URL(options.url!).href);
  } catch {
    throw new UsageError(`--url: not a URL: ${options.url}`);
  }
}

/** The keys to trust: pinned with --log-key, or (with a warning) the key the database or server names. */
function trustFrom(options: TrustOptions, storedVkey: string | undefined): { log: CheckpointVerifier; witnesses: CheckpointVerifier[]; quorum: number } {
  const vkey = options.logKey ?? storedVkey;
  if (vkey === undefined) throw new UsageError('--log-key is required');
  if (options.logKey === undefined) process.stderr.write('medshare: trusting the log key the ledger itself names; pin it with --log-key\n');
  return { log: parseVerifierKey(vkey), witnesses: (options.witnessKey ?? []).map(parseVerifierKey), quorum: quorumOf(options) };
}

/** Trust for `--url`: pinned keys, else (with a warning) the keys the server publishes. */
async function remoteTrust(options: StoreOptions & TrustOptions): Promise<ReturnType<typeof trustFrom>> {
  if (options.logKey !== undefined) return trustFrom(options, undefined);
  const published = await remote(options).keys();
  const witnessKey = options.witnessKey ?? published.witnesses;
  return trustFrom({ ...options, witnessKey, quorum: options.quorum ?? String(defaultQuorum(witnessKey.length)) }, published.log);
}

function entryId(text: string): number {
  if (!/^(0|[1-9][0-9]{0,14})$/.test(text)) throw new UsageError('--entry must be a non-negative integer');
  return Number(text);
}

function addTrustOptions(command: Command): Command {
  return command
    .option('--log-key <vkey>', "the log's verifier key (C2SP vkey); default: the one stored with the log")
    .option('--witness-key <vkey...>', "trusted witnesses' verifier keys")
    .option('--quorum <n>', 'witness cosignatures required on the latest checkpoint (default: a majority of --witness-key)');
}

/** Registers the `audit` command group. */
export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('check the tamper-evident audit ledger');

  addTrustOptions(
    audit
      .command('verify')
      .description('recompute the tree from every entry; check every checkpoint and cosignature')
      .option('--data <dir>', 'PGlite data directory (default: DATABASE_URL, else .medshare/data)')
      .option('--url <url>', "a running platform's ledger routes (http://host/ledger) instead of a database")
      .option('--checkpoint <file...>', 'checkpoints obtained elsewhere (a witness, the chain, an earlier run) that must match')
      .option('--rpc-url <url>', "the anchor chain's JSON-RPC node (default: LEDGER_RPC_URL): the served log must extend the head anchored there (with --url)")
      .option('--anchor-address <address>', 'the LedgerAnchor contract on that chain (default: LEDGER_ANCHOR_ADDRESS)'),
  ).action(async (options: StoreOptions & TrustOptions & ChainOptions & { checkpoint?: string[] }) => {
    const external = (options.checkpoint ?? []).map((file) => readFileSync(file, 'utf8'));
    const chain = await chainOf(options);
    let anchored: Awaited<ReturnType<AnchorClient['latestAnchor']>>;
    const verified = async () => {
      if (options.url === undefined) return withReader(options, async (_log, storedVkey, db) => verifyLog(db, { ...trustFrom(options, storedVkey), external }));
      const trust = await remoteTrust(options);
      // The chain's head for this log (its origin is the log key's name); the served log must extend it.
      anchored = chain === undefined ? undefined : await chain.latestAnchor(trust.log.name);
      if (chain !== undefined && anchored === undefined) process.stderr.write(`medshare: nothing of ${trust.log.name} is anchored on that chain yet\n`);
      return verifyRemoteLog(remote(options), { ...trust, external, ...(anchored === undefined ? {} : { anchored: [anchored] }) });
    };
    let report: VerifyReport;
    try {
      report = await verified();
    } finally {
      chain?.contract.runner?.provider?.destroy();
    }
    const chainHead =
      chain === undefined ? {} : { anchored: anchored === undefined ? null : { size: anchored.size, rootHash: anchored.rootHash.toString('base64') } };
    process.stdout.write(`${JSON.stringify({ ...report, ...chainHead }, null, 2)}\n`);
    if (!report.ok) {
      const where = report.firstBadIndex === undefined ? '' : ` at entry ${report.firstBadIndex}`;
      throw new IntegrityError(`ledger verification failed${where}: ${report.problem}`);
    }
  });

  audit
    .command('proof')
    .description('print the inclusion proof bundle of one entry (JSON, verifiable offline)')
    .requiredOption('--entry <id>', 'entry index')
    .option('--data <dir>', 'PGlite data directory (default: DATABASE_URL, else .medshare/data)')
    .option('--url <url>', "a running platform's ledger routes (http://host/ledger) instead of a database")
    .action(async (options: StoreOptions & { entry: string }) => {
      const index = entryId(options.entry);
      const bundle = options.url !== undefined ? await remote(options).bundle(index) : await withReader(options, (log) => buildInclusionBundle(log, index));
      process.stdout.write(`${JSON.stringify(bundle, null, 2)}\n`);
    });

  addTrustOptions(
    audit
      .command('check-proof')
      .description('verify an inclusion proof bundle offline against pinned keys')
      .argument('<file>', 'bundle written by `medshare audit proof` (- for stdin)'),
  ).action(async (file: string, options: TrustOptions) => {
    if (options.logKey === undefined) throw new UsageError('--log-key is required to check a proof offline');
    let bundle: InclusionBundle;
    try {
      bundle = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8')) as InclusionBundle;
    } catch (error) {
      if (error instanceof SyntaxError) throw new UsageError(`${file}: not JSON`);
      throw error;
    }
    const { event, treeSize, cosigners } = verifyInclusionBundle(bundle, trustFrom(options, undefined));
    process.stdout.write(
      `entry ${event.id} (${event.type.code}) is in the log at checkpoint ${treeSize}; cosigned by ${cosigners.length} trusted witness(es)\n`,
    );
  });

  addTrustOptions(
    audit
      .command('log')
      .description("who accessed a patient's records, each entry with its inclusion proof checked")
      .requiredOption('--patient <pseudonym>', 'the patient pseudonym (psn:...)')
      .option('--data <dir>', 'PGlite data directory (default: DATABASE_URL, else .medshare/data)')
      .option('--url <url>', "a running platform's ledger routes (http://host/ledger) instead of a database")
      .option('--json', 'print the proof bundles as JSON'),
  ).action(async (options: StoreOptions & TrustOptions & { patient: string; json?: boolean }) => {
    if (!PSEUDONYM.test(options.patient)) throw new UsageError('--patient must be a pseudonym (psn:...)');
    const fetchBundles = async (): Promise<{ bundles: InclusionBundle[]; trust: ReturnType<typeof trustFrom> }> => {
      if (options.url !== undefined) return { bundles: await remote(options).patientBundles(options.patient), trust: await remoteTrust(options) };
      return withReader(options, async (log, storedVkey) => {
        const entries = await log.entriesForPatient(options.patient);
        return { bundles: await Promise.all(entries.map((e) => buildInclusionBundle(log, e.index))), trust: trustFrom(options, storedVkey) };
      });
    };
    const { bundles, trust } = await fetchBundles();
    const checked = bundles.map((bundle) => ({ bundle, ...verifyInclusionBundle(bundle, trust) }));
    if (options.json) {
      process.stdout.write(`${JSON.stringify(bundles, null, 2)}\n`);
      return;
    }
    for (const { event, treeSize } of checked) {
      const who = event.agent.map((a) => `${a.who.identifier.value} (${a.role.map((r) => r.text).join(',')})`).join(' ');
      const what = event.entity
        .filter((e) => e.type.code !== 'patient')
        .map((e) => `${e.type.code}:${e.securityLabel?.[0]?.code ?? e.what.identifier.value.slice(0, 19)}`);
      const reason = event.purposeOfEvent?.[0]?.coding[0]?.code;
      process.stdout.write(
        `#${event.id} ${event.recorded} ${event.type.code}${reason ? `[${reason}]` : ''} by ${who} at ${event.source.observer.identifier.value}` +
          ` ${what.join(' ')} — proof ok at checkpoint ${treeSize}\n`,
      );
    }
    process.stdout.write(`${checked.length} entr${checked.length === 1 ? 'y' : 'ies'} for ${options.patient}\n`);
  });

  addTrustOptions(
    audit
      .command('storage')
      .description('challenge the cloud to prove it holds every record the ledger committed (token on stdin)')
      .requiredOption('--url <url>', "the platform's base URL (the cloud's /cloud/storage routes)")
      .option('--ledger-url <url>', 'the public ledger routes (default: <url>/ledger)')
      .option('--samples <n>', 'chunks to sample (default 460: 1 % of chunks lost or altered is caught with probability >= 99 %)')
      .option('--no-report', 'do not append the result to the ledger')
      .option('--json', 'print the result as JSON'),
  ).action(async (options: TrustOptions & { url: string; ledgerUrl?: string; samples?: string; report: boolean; json?: boolean }) => {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new UsageError(`--url: not a URL: ${options.url}`);
    }
    const samples = options.samples === undefined ? undefined : Number(options.samples);
    if (samples !== undefined && (!Number.isSafeInteger(samples) || samples < 1)) throw new UsageError('--samples must be a positive integer');
    const ledgerUrl = options.ledgerUrl ?? new URL('ledger', base.href.endsWith('/') ? base : new URL(`${base.href}/`)).href;
    const [token] = await readSecrets(['auditor token']);
    const { auditStorage, StorageAuditClient, verifiedInventory } = await import('@medshare/server');
    const progress = (line: string) => process.stderr.write(`medshare: ${line}\n`);
    const inventory = await verifiedInventory(remote({ url: ledgerUrl }), await remoteTrust({ ...options, url: ledgerUrl }));
    progress(`the verified ledger commits ${inventory.length} record(s)`);
    const result = await auditStorage(new StorageAuditClient(base, token!), inventory, {
      ...(samples === undefined ? {} : { samples }),
      report: options.report,
      progress,
    });
    if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      for (const f of result.failing) process.stdout.write(`FAILED ${f.hash} (${f.category})\n`);
      for (const u of result.unaudited) process.stdout.write(`UNAUDITED ${u.hash} (${u.category}): ${u.reason}\n`);
      process.stdout.write(
        `${result.ok ? 'ok' : 'FAILED'}: ${result.records} record(s), ${result.samples} chunk(s) sampled, ${result.failing.length} failing` +
          `${result.unaudited.length > 0 ? `, ${result.unaudited.length} unaudited` : ''}` +
          `${result.ledgerEntries.length > 0 ? `; ledger entr${result.ledgerEntries.length === 1 ? 'y' : 'ies'} ${result.ledgerEntries.join(', ')}` : ''}\n`,
      );
    }
    if (!result.ok) {
      const unaudited =
        result.unaudited.length > 0
          ? `, ${result.unaudited.length} could not be audited (${[...new Set(result.unaudited.map((u) => u.reason))].join(', ')})`
          : '';
      throw new IntegrityError(`storage audit failed: ${result.failing.length} record(s) could not be proven held${unaudited}`);
    }
  });

  addTrustOptions(
    audit
      .command('anchor')
      .description("anchor the log's latest checkpoint on the EVM chain (LEDGER_RPC_URL, LEDGER_ANCHOR_ADDRESS, LEDGER_PRIVATE_KEY)")
      .option('--data <dir>', 'PGlite data directory (default: DATABASE_URL, else .medshare/data)')
      .requiredOption('--chain-witness <address=url...>', "each witness's chain address and its URL (…/witness/<hospital>) for its chain cosignature"),
  ).action(async (options: StoreOptions & TrustOptions & { chainWitness: string[] }) => {
    const cosigners = options.chainWitness.map((spec) => {
      const match = /^(0x[0-9a-fA-F]{40})=(https?:\/\/\S+)$/.exec(spec);
      if (match === null) throw new UsageError(`--chain-witness ${spec}: expected 0x<40 hex>=http(s)://…`);
      return new HttpChainCosigner(match[2]!, match[1]!);
    });
    const chain = await anchorClientFromEnv();
    try {
      const receipt = await withReader(options, (log, storedVkey) => chain.anchorLatest(log, trustFrom(options, storedVkey).log, cosigners));
      process.stdout.write(`${JSON.stringify(receipt, null, 2)}\n`);
    } finally {
      chain.contract.runner?.provider?.destroy();
    }
  });

  audit
    .command('anchored')
    .description('prove from the chain that a signed checkpoint was anchored (LEDGER_RPC_URL, LEDGER_ANCHOR_ADDRESS)')
    .requiredOption('--checkpoint <file>', 'the signed checkpoint note')
    .requiredOption('--log-key <vkey>', "the log's verifier key")
    .action(async (options: { checkpoint: string; logKey: string }) => {
      const chain = await anchorClientFromEnv();
      try {
        const receipt = await chain.proveAnchored(readFileSync(options.checkpoint, 'utf8'), parseVerifierKey(options.logKey));
        process.stdout.write(`${JSON.stringify(receipt, null, 2)}\n`);
      } finally {
        chain.contract.runner?.provider?.destroy();
      }
    });
}
