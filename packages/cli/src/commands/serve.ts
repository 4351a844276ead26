/**
 * `medshare serve <service>` — one trust domain per process (docs/platform.md § Deployment):
 *
 *   serve authority                 the trusted authority (CP-ABE master key)
 *   serve cloud                     the cloud store, re-encryption proxy and audit log
 *   serve hospital --name st-marys  one hospital's identity service and FHIR gateway
 *   serve all                       every service on this machine, each on its own port and database (the default)
 *
 * Each keeps its data under its own `--data` directory: embedded PGlite in `<data>/db`, or its own PostgreSQL
 * schema when DATABASE_URL is set (give each service its own database and role for real separation); the cloud's
 * key-encryption key is `<data>/kek` (0600; MEDSHARE_KEK overrides). Services find each other through `--config`
 * (docs/platform.md) and the URL flags. The administrator token of a hospital (user registration) is read like every
 * secret: a hidden prompt on a terminal, else one line on stdin — never an argument.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { abe } from '@medshare/crypto';
import { loadKeyEncryptionKey, openDatabase, type Database, type KeyEncryptionKey } from '@medshare/db';
import {
  checkHospitalName, createAuthorityService, createCloudService, createHospitalService, createPlatform, DEFAULT_EMERGENCY_POLICY, defaultConversionWorkers,
  listen, parseDeploymentConfig, type DeploymentConfig, type HospitalPeer, type ServiceHttpOptions,
} from '@medshare/server';
import { UsageError } from '../errors.ts';
import { readSecrets } from '../secrets.ts';

interface CommonOptions {
  data: string;
  schema?: string;
  port: string;
  host: string;
  config?: string;
  authorityUrl?: string;
  cloudUrl?: string;
  hospitalUrl?: string[];
  tlsCert?: string;
  tlsKey?: string;
  trustProxy?: string;
  requestsPerMinute?: string;
  log?: boolean;
}

interface CloudOptions extends CommonOptions {
  emergencyPolicy: string;
  platformEmergency: boolean;
  conversionWorkers?: string;
}

interface HospitalOptions extends CommonOptions {
  name: string;
}

interface AllOptions extends CloudOptions {
  hospital: string[];
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
  const trustProxy = options.trustProxy === undefined ? undefined : options.trustProxy === 'true' ? true : options.trustProxy;
  const requestsPerMinute = options.requestsPerMinute === undefined ? undefined : integer(options.requestsPerMinute, 'a request rate', 1, 10_000_000);
  return { tls, trustProxy, requestsPerMinute, logger: options.log ?? false };
}

/** A service's own storage: its data directory, its database (PGlite there, or its PostgreSQL schema). */
interface ServiceStorage {
  readonly db: Database;
  readonly where: string;
  readonly dataDir: string;
}

/** A service's key-encryption key: `<data>/kek` (created 0600), or MEDSHARE_KEK. */
const serviceKek = (storage: ServiceStorage): KeyEncryptionKey => loadKeyEncryptionKey({ file: join(storage.dataDir, 'kek'), create: true });

async function openStorage(dataDir: string, schema: string): Promise<ServiceStorage> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const url = process.env['DATABASE_URL'];
  if (url !== undefined && url !== '') return { db: await openDatabase({ url, schema }), dataDir, where: `PostgreSQL schema ${schema}` };
  return { db: await openDatabase({ dataDir: join(dataDir, 'db') }), dataDir, where: `PGlite in ${join(dataDir, 'db')}` };
}

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

async function adminToken(): Promise<string> {
  const [token] = await readSecrets(['administrator token']);
  if (token === undefined || token.length < 16) throw new UsageError('the administrator token must have at least 16 characters');
  return token;
}

async function serveAuthority(options: CommonOptions): Promise<void> {
  const port = integer(options.port, 'a port', 0, 65535);
  const config = await deployment(options);
  const http = await httpOptions(options);
  const storage = await openStorage(options.data, options.schema ?? 'medshare_authority');
  const service = await createAuthorityService({ ...http, db: storage.db, hospitals: config.hospitals });
  say('authority', await listen(service.app, options.host, port), storage.where);
  await untilStopped(async () => {
    await service.close();
    await storage.db.close();
  });
}

async function serveCloud(options: CloudOptions): Promise<void> {
  const port = integer(options.port, 'a port', 0, 65535);
  const emergencyPolicy = emergencyPolicyOf(options);
  const config = await deployment(options);
  const http = await httpOptions(options);
  const storage = await openStorage(options.data, options.schema ?? 'medshare_cloud');
  const service = await createCloudService({
    ...http, db: storage.db, kek: serviceKek(storage), hospitals: config.hospitals, emergencyPolicy, conversionWorkers: conversionWorkersOf(options, storage.db),
  });
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
  if (config.cloud === undefined) throw new UsageError('a hospital needs the cloud\'s URL (--cloud-url or the config file)');
  if (config.authority === undefined) throw new UsageError('a hospital needs the authority\'s URL (--authority-url or the config file)');
  const http = await httpOptions(options);
  const token = await adminToken();
  const storage = await openStorage(options.data, options.schema ?? `medshare_hospital_${name.replaceAll('-', '_')}`);
  const service = await createHospitalService({ ...http, db: storage.db, name, adminToken: token, cloud: config.cloud.url, authorityUrl: config.authority.url });
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
  const token = await adminToken();
  const opened: ServiceStorage[] = [];
  const open = async (dir: string, schema: string) => {
    const storage = await openStorage(join(options.data, dir), options.schema === undefined ? schema : `${options.schema}_${schema}`);
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
    for (const name of options.hospital) hospitals[name] = (await open(`hospital-${name}`, `medshare_hospital_${name.replaceAll('-', '_')}`)).db;
    const platform = await createPlatform({
      ...http, databases: { authority: authority.db, cloud: cloud.db, hospitals }, cloudKek: serviceKek(cloud), hospitals: options.hospital, adminToken: token,
      emergencyPolicy, conversionWorkers: conversionWorkersOf(options, cloud.db), host: options.host, port,
    });
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
    .option('--data <dir>', 'data directory: PGlite database (unless DATABASE_URL is set) and key-encryption key file', dataDefault)
    .option('--port <n>', 'TCP port (0 = any free one)', '8080')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--schema <name>', 'PostgreSQL schema when DATABASE_URL is set (default: medshare_<service>)')
    .option('--config <file>', 'deployment config file (JSON: authority, cloud and hospital URLs; docs/platform.md)')
    .option('--authority-url <url>', "the trusted authority's URL (overrides the config file)")
    .option('--cloud-url <url>', "the cloud's URL (overrides the config file)")
    .option('--hospital-url <name=url...>', 'a trusted hospital and its URL (overrides the config file; repeatable)')
    .option('--tls-cert <file>', 'PEM certificate chain: serve HTTPS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--trust-proxy <proxies>', "take the client address from X-Forwarded-For of these proxies (addresses/CIDRs, comma-separated, or 'true')")
    .option('--requests-per-minute <n>', 'requests per client address per minute on every route (default 600)')
    .option('--log', 'log requests (method, URL, status; never bodies or tokens)');
}

function cloudOptions(command: Command): Command {
  return command
    .option('--emergency-policy <policy>', 'CP-ABE policy of platform emergency access (gateways grant every record under it)', DEFAULT_EMERGENCY_POLICY)
    .option('--no-platform-emergency', 'no platform emergency access: only patients\' own emergency delegations')
    .option('--conversion-workers <n>', 're-encryption worker threads (0 = in the event loop; default: one per core on PostgreSQL, one fewer on PGlite)');
}

/** Registers `medshare serve` and its services. */
export function registerServe(program: Command): void {
  const serve = program.command('serve').description('run MedShare services until SIGINT/SIGTERM (one per trust domain); DATABASE_URL selects PostgreSQL');
  common(serve.command('authority').description('the trusted authority: CP-ABE setup and key issuance to authenticated users'), 'medshare-authority')
    .action(serveAuthority);
  cloudOptions(common(serve.command('cloud').description('the cloud: ciphertext store, re-encryption proxy, access log and audit ledger'), 'medshare-cloud'))
    .action(serveCloud);
  common(serve.command('hospital').description("one hospital: its identity service and FHIR gateway (administrator token on stdin)"), 'medshare-hospital')
    .requiredOption('--name <code>', 'the hospital (lower-case code, e.g. st-marys)')
    .action(serveHospital);
  cloudOptions(common(serve.command('all', { isDefault: true }).description('every service on this machine, each on its own port and database (administrator token on stdin)'), 'medshare-data'))
    .option('--hospital <name...>', 'hospitals to serve', ['st-marys', 'riverside'])
    .action(serveAll);
}
