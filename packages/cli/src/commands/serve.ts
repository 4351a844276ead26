/**
 * `medshare serve <service>` — one trust domain per process (docs/platform.md § Deployment):
 *
 *   serve authority                 the trusted authority (CP-ABE master key)
 *   serve cloud                     the cloud store, re-encryption proxy and audit log
 *   serve hospital --name st-marys  one hospital's identity service and FHIR gateway
 *   serve all                       every service on this machine, each on its own port and database (the default)
 *
 * Each keeps its database under its own `--data` directory (embedded PGlite), or its own PostgreSQL schema when
 * DATABASE_URL is set (give each service its own database and role for real separation), and under `--state` what
 * must stay outside the database: its own key-encryption key `kek` (0600; MEDSHARE_KEK overrides), which wraps the
 * secrets its database keeps, and for the cloud the ledger's last signed checkpoint (`ledger-checkpoint`). `serve
 * all` gives each service a subdirectory of both. Services find each other through `--config` (docs/platform.md)
 * and the URL flags. A hospital's administrator token (registration, administration) is read like every secret: a
 * hidden prompt on a terminal, else one line per hospital on stdin, in --hospital order — never an argument.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { abe } from '@medshare/crypto';
import { loadKeyEncryptionKey, openDatabase, type Database, type KeyEncryptionKey } from '@medshare/db';
import {
  checkHospitalName,
  createAuthorityService,
  createCloudService,
  createHospitalService,
  createPlatform,
  DEFAULT_EMERGENCY_POLICY,
  defaultConversionWorkers,
  defaultEncryptionWorkers,
  listen,
  parseDeploymentConfig,
  type DeploymentConfig,
  type HospitalPeer,
  type ServiceHttpOptions,
  type StatsAgentOptions,
} from '@medshare/server';
import { anchorClientFromEnv, type AnchorClient } from '@medshare/ledger';
import { UsageError } from '../errors.ts';
import { readSecrets } from '../secrets.ts';
import { bundleResources } from './stats.ts';

interface CommonOptions {
  data: string;
  state?: string;
  schema?: string;
  port: string;
  host: string;
  config?: string;
  authorityUrl?: string;
  cloudUrl?: string;
  hospitalUrl?: string[];
  tlsCert?: string;
  tlsKey?: string;
  trustProxy?: string[];
  requestsPerMinute?: string;
  log?: boolean;
}

interface CloudOptions extends CommonOptions {
  emergencyPolicy: string;
  platformEmergency: boolean;
  conversionWorkers?: string;
  statsThreshold?: string;
  statsBudget?: string[];
  anchorInterval?: string;
}

interface RelyingPartyOptions {
  rpId?: string;
  origin?: string;
}

interface AgentCliOptions {
  statsBudget?: string[];
  statsApprove: 'auto' | 'manual';
  statsPollMs?: string;
}

interface HospitalOptions extends CommonOptions, RelyingPartyOptions, AgentCliOptions {
  name: string;
  encryptionWorkers?: string;
  /** One directory. */
  statsData?: string;
}

interface AllOptions extends CloudOptions, RelyingPartyOptions, AgentCliOptions {
  hospital: string[];
  /** hospital=dir, repeated. */
  statsData?: string[];
}

/**
 * The consortium's identifier key for cross-hospital lookup by business identifier, from MEDSHARE_IDENTIFIER_KEY (64 hex
 * digits, the same at every hospital, never given to the cloud); none: lookup is off.
 */
function identifierKey(): { identifierKey?: Uint8Array } {
  const hex = process.env['MEDSHARE_IDENTIFIER_KEY'];
  if (hex === undefined || hex === '') return {};
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new UsageError('MEDSHARE_IDENTIFIER_KEY must be 64 hex digits');
  return { identifierKey: new Uint8Array(Buffer.from(hex, 'hex')) };
}

function integer(text: string, what: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`not ${what}: ${text}`);
  return value;
}

function parseUrl(text: string, what: string): URL {
  try {
    const url = new URL(text);
    if (url.protocol === 'http:' || url.protocol === 'https:') return url;
  } catch {
    // fall through
  }
  throw new UsageError(`${what} is not an http(s) URL: ${text}`);
}

/** The config file, with the URL flags applied on top. */
async function deployment(options: CommonOptions): Promise<DeploymentConfig> {
  const file = options.config === undefined ? { hospitals: [] } : parseDeploymentConfig(await readFile(options.config, 'utf8'));
  const hospitals = new Map<string, HospitalPeer>(file.hospitals.map((h) => [h.name, h]));
  for (const entry of options.hospitalUrl ?? []) {
    const match = /^([^=]+)=(.+)$/.exec(entry);
    if (!match) throw new UsageError(`--hospital-url takes name=url: ${entry}`);
    hospitals.set(checkHospitalName(match[1]!), { name: match[1]!, url: parseUrl(match[2]!, `--hospital-url ${match[1]}`) });
  }
  return {
    authority: options.authorityUrl ? { url: parseUrl(options.authorityUrl, '--authority-url') } : file.authority,
    cloud: options.cloudUrl ? { url: parseUrl(options.cloudUrl, '--cloud-url') } : file.cloud,
    hospitals: [...hospitals.values()],
  };
}

/** HTTP settings shared by every service: TLS, proxy trust, rate limit, logging. */
async function httpOptions(options: CommonOptions): Promise<ServiceHttpOptions> {
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  const tls = options.tlsCert === undefined ? undefined : { cert: await readFile(options.tlsCert), key: await readFile(options.tlsKey!) };
  const trustProxy = options.trustProxy === undefined ? undefined : [...options.trustProxy];
  const requestsPerMinute = options.requestsPerMinute === undefined ? undefined : integer(options.requestsPerMinute, 'a request rate', 1, 10_000_000);
  return { tls, trustProxy, requestsPerMinute, logger: options.log ?? false };
}

/** A service's own storage: its database (PGlite in its data directory, or its PostgreSQL schema) and its state directory. */
interface ServiceStorage {
  readonly db: Database;
  readonly where: string;
  /** Kept outside the database: the KEK file, the ledger checkpoint. */
  readonly stateDir: string;
  /** Wraps the secrets in `db`: `<state>/kek` (created 0600), or MEDSHARE_KEK. */
  readonly kek: KeyEncryptionKey;
}

async function openStorage(dataDir: string, stateDir: string, schema: string): Promise<ServiceStorage> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const kek = loadKeyEncryptionKey({ file: join(stateDir, 'kek'), create: true });
  const url = process.env['DATABASE_URL'];
  if (url !== undefined && url !== '') return { db: await openDatabase({ url, schema }), stateDir, kek, where: `PostgreSQL schema ${schema}` };
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  return { db: await openDatabase({ dataDir: join(dataDir, 'db') }), stateDir, kek, where: `PGlite in ${join(dataDir, 'db')}` };
}

/** The state directory of a service: --state, else `<data>/state`. */
const stateOf = (options: CommonOptions): string => options.state ?? join(options.data, 'state');

/** Runs until SIGINT/SIGTERM, then closes the services and their databases. */
async function untilStopped(close: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = () => void close().then(resolve, resolve);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

const say = (service: string, url: URL, where: string) => process.stdout.write(`${service} ${url.href} (${where})\n`);

function emergencyPolicyOf(options: CloudOptions): string | null {
  const policy = options.platformEmergency ? options.emergencyPolicy : null;
  if (policy !== null) abe.compilePolicy(policy); // a bad policy fails before anything starts
  return policy;
}

function conversionWorkersOf(options: CloudOptions, db: Database): number {
  return options.conversionWorkers === undefined ? defaultConversionWorkers(db.engine) : integer(options.conversionWorkers, 'a worker count', 0, 256);
}

/** Each hospital's administrator token, in order (one line each on stdin); each its own. */
async function adminTokens(hospitals: readonly string[]): Promise<Record<string, string>> {
  const tokens = await readSecrets(hospitals.map((hospital) => `administrator token of ${hospital}`));
  const byHospital: Record<string, string> = {};
  hospitals.forEach((hospital, i) => {
    const token = tokens[i];
    if (token === undefined || token.length < 16) throw new UsageError(`the administrator token of ${hospital} must have at least 16 characters`);
    byHospital[hospital] = token;
  });
  if (new Set(Object.values(byHospital)).size !== hospitals.length) throw new UsageError('each hospital needs its own administrator token');
  return byHospital;
}

/** The WebAuthn relying party of --rp-id and --origin (each defaulting from the other). */
function relyingParty(options: RelyingPartyOptions): { id: string; origins: string[] } | undefined {
  const { rpId, origin } = options;
  if (rpId === undefined && origin === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(origin ?? `https://${rpId}`);
  } catch {
    throw new UsageError(`not an origin: ${origin}`);
  }
  if (parsed.origin !== (origin ?? parsed.origin)) throw new UsageError(`an origin is scheme://host[:port], not ${origin}`);
  const id = rpId ?? parsed.hostname;
  if (parsed.hostname !== id && !parsed.hostname.endsWith(`.${id}`)) throw new UsageError(`origin ${parsed.origin} is not within relying-party id ${id}`);
  return { id, origins: [parsed.origin] };
}

async function serveAuthority(options: CommonOptions): Promise<void> {
  const port = integer(options.port, 'a port', 0, 65535);
  const config = await deployment(options);
  const http = await httpOptions(options);
  const storage = await openStorage(options.data, stateOf(options), options.schema ?? 'medshare_authority');
  // The hospitals' portals call the authority from browsers at the hospitals' URLs.
  const service = await createAuthorityService({
    ...http,
    db: storage.db,
    kek: storage.kek,
    hospitals: config.hospitals,
    browserOrigins: config.hospitals.map((h) => new URL(h.url).origin),
  });
  say('authority', await listen(service.app, options.host, port), storage.where);
  await untilStopped(async () => {
    await service.close();
    await storage.db.close();
  });
}

/** --stats-budget querySet=epsilon, repeated. */
function statsBudgets(entries: readonly string[] = []): Array<[string, number]> {
  return entries.map((entry): [string, number] => {
    const match = /^([A-Za-z0-9_.-]{1,64})=([0-9]+(?:\.[0-9]+)?)$/.exec(entry);
    if (!match) throw new UsageError(`--stats-budget takes querySet=epsilon: ${entry}`);
    return [match[1]!, Number(match[2])];
  });
}

/** The cloud's statistics: --stats-threshold t (the hospitals of the trust list generate the key) and its budgets. */
function statsOf(options: CloudOptions): { stats?: { threshold: number }; budgets: Array<[string, number]> } {
  const budgets = statsBudgets(options.statsBudget);
  if (options.statsThreshold === undefined) {
    if (budgets.length > 0) throw new UsageError('--stats-budget needs --stats-threshold');
    return { budgets };
  }
  return { stats: { threshold: integer(options.statsThreshold, 'a threshold', 1, 255) }, budgets };
}

/** A hospital's statistics agent from --stats-data DIR (its FHIR bundles), --stats-budget and --stats-approve; none without --stats-data. */
function agentOf(dataDir: string | undefined, options: AgentCliOptions): StatsAgentOptions | undefined {
  if (dataDir === undefined) return undefined;
  return {
    data: () => bundleResources(dataDir),
    budgets: statsBudgets(options.statsBudget),
    approve: options.statsApprove,
    ...(options.statsPollMs === undefined ? {} : { pollMs: integer(options.statsPollMs, 'a poll interval', 10, 3_600_000) }),
  };
}

async function serveCloud(options: CloudOptions): Promise<void> {
  const port = integer(options.port, 'a port', 0, 65535);
  const emergencyPolicy = emergencyPolicyOf(options);
  const stats = statsOf(options);
  const config = await deployment(options);
  const anchor = await ledgerAnchorOf(options);
  const http = await httpOptions(options);
  const storage = await openStorage(options.data, stateOf(options), options.schema ?? 'medshare_cloud');
  const service = await createCloudService({
    ...http,
    db: storage.db,
    kek: storage.kek,
    hospitals: config.hospitals,
    emergencyPolicy,
    conversionWorkers: conversionWorkersOf(options, storage.db),
    ledgerCheckpointFile: join(storage.stateDir, 'ledger-checkpoint'),
    browserOrigins: config.hospitals.map((h) => new URL(h.url).origin),
    ...(stats.stats ? { stats: stats.stats } : {}),
    ...(anchor === undefined ? {} : { ledgerAnchor: anchor }),
  });
  for (const [querySet, epsilon] of stats.budgets) await service.stats!.setBudget(querySet, epsilon);
  say('cloud', await listen(service.app, options.host, port), storage.where);
  await untilStopped(async () => {
    await service.close();
    await storage.db.close();
  });
}

async function serveHospital(options: HospitalOptions): Promise<void> {
  const port = integer(options.port, 'a port', 0, 65535);
  const name = checkHospitalName(options.name);
  const config = await deployment(options);
  if (config.cloud === undefined) throw new UsageError("a hospital needs the cloud's URL (--cloud-url or the config file)");
  if (config.authority === undefined) throw new UsageError("a hospital needs the authority's URL (--authority-url or the config file)");
  const http = await httpOptions(options);
  const rp = relyingParty(options);
  const agent = agentOf(options.statsData, options);
  if (agent === undefined && (options.statsBudget ?? []).length > 0) throw new UsageError('--stats-budget needs --stats-data');
  if (agent !== undefined && config.hospitals.length === 0)
    throw new UsageError("a statistics agent checks the other hospitals' keys: list them (--config or --hospital-url)");
  const token = (await adminTokens([name]))[name]!;
  const storage = await openStorage(options.data, stateOf(options), options.schema ?? `medshare_hospital_${name.replaceAll('-', '_')}`);
  const service = await createHospitalService({
    ...http,
    db: storage.db,
    kek: storage.kek,
    name,
    adminToken: token,
    cloud: config.cloud.url,
    authorityUrl: config.authority.url,
    ...(config.cloud.logKey === undefined ? {} : { logKey: config.cloud.logKey }),
    ...(rp ? { relyingParty: rp } : {}),
    ...identifierKey(),
    // Receipts are checked against the witnesses of the hospitals this config lists, not those the cloud names.
    ...(config.hospitals.length === 0 ? {} : { federation: () => config.hospitals }),
    encryptionWorkers: options.encryptionWorkers === undefined ? defaultEncryptionWorkers() : integer(options.encryptionWorkers, 'a worker count', 0, 256),
    ...(agent === undefined ? {} : { stats: agent }),
  });
  say(name, await listen(service.app, options.host, port), storage.where);
  await untilStopped(async () => {
    await service.close();
    await storage.db.close();
  });
}

async function serveAll(options: AllOptions): Promise<void> {
  const port = integer(options.port, 'a port', 0, 65535);
  for (const name of options.hospital) checkHospitalName(name);
  const emergencyPolicy = emergencyPolicyOf(options);
  const http = await httpOptions(options);
  const rp = relyingParty(options);
  const stats = statsOf(options);
  const dataDirs = new Map<string, string>();
  for (const entry of options.statsData ?? []) {
    const match = /^([^=]+)=(.+)$/.exec(entry);
    if (!match || !options.hospital.includes(match[1]!)) throw new UsageError(`--stats-data takes hospital=directory for a served hospital: ${entry}`);
    dataDirs.set(match[1]!, match[2]!);
  }
  if (dataDirs.size > 0 && stats.stats === undefined) throw new UsageError('--stats-data needs --stats-threshold');
  const statsAgents = Object.fromEntries([...dataDirs].map(([name, dir]) => [name, agentOf(dir, options)!]));
  const tokens = await adminTokens(options.hospital);
  const opened: ServiceStorage[] = [];
  const open = async (dir: string, schema: string) => {
    const storage = await openStorage(
      join(options.data, dir),
      join(stateOf(options), dir),
      options.schema === undefined ? schema : `${options.schema}_${schema}`,
    );
    opened.push(storage);
    return storage;
  };
  const closeAll = async () => {
    for (const storage of opened) await storage.db.close();
  };
  try {
    const authority = await open('authority', 'medshare_authority');
    const cloud = await open('cloud', 'medshare_cloud');
    const hospitals: Record<string, Database> = {};
    const hospitalKeks: Record<string, KeyEncryptionKey> = {};
    for (const name of options.hospital) {
      const storage = await open(`hospital-${name}`, `medshare_hospital_${name.replaceAll('-', '_')}`);
      hospitals[name] = storage.db;
      hospitalKeks[name] = storage.kek;
    }
    const platform = await createPlatform({
      ...http,
      databases: { authority: authority.db, cloud: cloud.db, hospitals },
      keks: { authority: authority.kek, cloud: cloud.kek, hospitals: hospitalKeks },
      hospitals: options.hospital,
      adminTokens: tokens,
      emergencyPolicy,
      conversionWorkers: conversionWorkersOf(options, cloud.db),
      encryptionWorkers: defaultEncryptionWorkers(),
      host: options.host,
      port,
      ledgerCheckpointFile: join(cloud.stateDir, 'ledger-checkpoint'),
      ...(rp ? { relyingParty: rp } : {}),
      ...identifierKey(),
      ...(stats.stats ? { stats: stats.stats, statsAgents } : {}),
    });
    for (const [querySet, epsilon] of stats.budgets) await platform.stats!.setBudget(querySet, epsilon);
    say('authority', platform.urls.authority, authority.where);
    say('cloud', platform.urls.cloud, cloud.where);
    options.hospital.forEach((name, i) => say(name, platform.urls.hospitals[name]!, opened[2 + i]!.where));
    await untilStopped(async () => {
      await platform.close();
      await closeAll();
    });
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** The options every service takes. */
function common(command: Command, dataDefault: string): Command {
  return command
    .option('--data <dir>', 'data directory: the PGlite database (unless DATABASE_URL is set)', dataDefault)
    .option('--state <dir>', 'kept outside the database: the key-encryption key file (unless MEDSHARE_KEK) and the ledger checkpoint (default <data>/state)')
    .option('--port <n>', 'TCP port (0 = any free one)', '8080')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--schema <name>', 'PostgreSQL schema when DATABASE_URL is set (default: medshare_<service>)')
    .option('--config <file>', 'deployment config file (JSON: authority, cloud and hospital URLs; docs/platform.md)')
    .option('--authority-url <url>', "the trusted authority's URL (overrides the config file)")
    .option('--cloud-url <url>', "the cloud's URL (overrides the config file)")
    .option('--hospital-url <name=url...>', 'a trusted hospital and its URL (overrides the config file; repeatable)')
    .option('--tls-cert <file>', 'PEM certificate chain: serve HTTPS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option(
      '--trust-proxy <addresses...>',
      'reverse proxies (addresses or CIDR) whose X-Forwarded-For is believed, so throttling counts clients, not the proxy',
    )
    .option('--requests-per-minute <n>', 'requests per client address per minute on every route (default 600)')
    .option('--log', 'log requests (method, URL, status; never bodies or tokens)');
}

function cloudOptions(command: Command): Command {
  return command
    .option('--emergency-policy <policy>', 'CP-ABE policy of platform emergency access (gateways grant every record under it)', DEFAULT_EMERGENCY_POLICY)
    .option('--no-platform-emergency', "no platform emergency access: only patients' own emergency delegations")
    .option('--conversion-workers <n>', 're-encryption worker threads (0 = in the event loop; default: one per core on PostgreSQL, one fewer on PGlite)')
    .option(
      '--anchor-interval <seconds>',
      'anchor the ledger on chain this often, when LEDGER_RPC_URL, LEDGER_ANCHOR_ADDRESS and LEDGER_PRIVATE_KEY are set',
      '300',
    );
}

/** The anchor contract the cloud's ledger is put on: from the environment (the account key never in the database), if set. */
async function ledgerAnchorOf(options: CloudOptions): Promise<{ client: AnchorClient; intervalMs: number } | undefined> {
  const env = process.env;
  if (!env['LEDGER_RPC_URL'] && !env['LEDGER_ANCHOR_ADDRESS'] && !env['LEDGER_PRIVATE_KEY']) return undefined;
  // Half a configuration is refused rather than silently not anchoring.
  if (!env['LEDGER_RPC_URL'] || !env['LEDGER_ANCHOR_ADDRESS'] || !env['LEDGER_PRIVATE_KEY']) {
    throw new UsageError("anchoring the ledger needs all of LEDGER_RPC_URL, LEDGER_ANCHOR_ADDRESS and LEDGER_PRIVATE_KEY (the log's anchorer account)");
  }
  const intervalMs = integer(options.anchorInterval ?? '300', 'an anchoring interval', 1, 86_400) * 1000;
  return { client: await anchorClientFromEnv(), intervalMs };
}

function statsOptions(command: Command): Command {
  return command
    .option(
      '--stats-threshold <t>',
      'serve /stats: the hospitals of the trust list generate a t-of-n threshold key among themselves (distributed key generation)',
    )
    .option('--stats-budget <querySet=epsilon...>', "set the privacy budget of a query set (with --stats-threshold; a hospital's own with --stats-data)");
}

function agentOptions(command: Command, flag: string, data: string): Command {
  return command
    .option(flag, data)
    .addOption(
      new Option('--stats-approve <policy>', "decrypt a query's total at once (auto), or once the hospital's administrator approved it (manual)")
        .choices(['auto', 'manual'])
        .default('auto'),
    )
    .option('--stats-poll-ms <ms>', 'how often the statistics agent polls the cloud (default 1000)');
}

function webAuthn(command: Command): Command {
  return command
    .option('--rp-id <id>', 'WebAuthn relying-party id (default: the --origin host, else localhost)')
    .option('--origin <url>', 'WebAuthn origin browsers use (default https://<rp-id>, else http://localhost)');
}

/** Registers `medshare serve` and its services. */
export function registerServe(program: Command): void {
  const serve = program.command('serve').description('run MedShare services until SIGINT/SIGTERM (one per trust domain); DATABASE_URL selects PostgreSQL');
  common(serve.command('authority').description('the trusted authority: CP-ABE setup and key issuance to authenticated users'), 'medshare-authority').action(
    serveAuthority,
  );
  statsOptions(
    cloudOptions(common(serve.command('cloud').description('the cloud: ciphertext store, re-encryption proxy, access log and audit ledger'), 'medshare-cloud')),
  ).action(serveCloud);
  agentOptions(
    webAuthn(
      common(
        serve
          .command('hospital')
          .description('one hospital: its identity service, FHIR gateway, ledger witness and statistics agent (administrator token on stdin)'),
        'medshare-hospital',
      ),
    ),
    '--stats-data <dir>',
    "run its statistics agent on the FHIR bundles (.json) of this directory: the hospital's own records",
  )
    .option('--stats-budget <querySet=epsilon...>', "the hospital's own privacy budget of a query set (with --stats-data)")
    .requiredOption('--name <code>', 'the hospital (lower-case code, e.g. st-marys)')
    .option('--encryption-workers <n>', 'worker threads encrypting and tagging gateway uploads (default: one per core; 0 = in the event loop)')
    .action(serveHospital);
  agentOptions(
    statsOptions(
      webAuthn(
        cloudOptions(
          common(
            serve
              .command('all', { isDefault: true })
              .description('every service on this machine, each on its own port and database (administrator tokens on stdin)'),
            'medshare-data',
          ),
        ),
      ),
    ),
    '--stats-data <hospital=dir...>',
    "run that hospital's statistics agent on the FHIR bundles of dir (with --stats-threshold)",
  )
    .option('--hospital <name...>', 'hospitals to serve', ['st-marys', 'riverside'])
    .action(serveAll);
}
