/**
 * A deployment of separate processes on this machine: `medshare serve authority`, `serve cloud` and one
 * `serve hospital` per hospital, each an OS process with its own data directory (embedded PGlite and its own
 * key-encryption key under `<data>/state`, or its own PostgreSQL schema), wired by a config file of 127.0.0.1 URLs.
 * `medshare demo` tells its story over one; the deployment test kills and restarts its processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnavailableError } from '@medshare/crypto';
import { formatDeploymentConfig, type ServiceUrls } from '@medshare/server';

const BIN = fileURLToPath(new URL('../bin/medshare.js', import.meta.url));
/** A service that has not said where it listens by then has failed to start (PGlite and tsx take a few seconds). */
const START_TIMEOUT_MS = 300_000;

/** What each kind of process holds (docs/platform.md § Deployment; the deployment test checks the tables). */
export const HOLDINGS: Readonly<Record<'authority' | 'cloud' | 'hospital', string>> = {
  authority: 'the CP-ABE master key (wrapped by its KEK); ids of tokens it issued keys for',
  cloud:
    "ciphertexts, patient public keys, re-encryption keys, emergency grants, access log, ledger (its key wrapped by its KEK), the statistics key generation's board and encrypted histograms",
  hospital:
    'accounts, TOTP secrets, SSO signing keys, witness key, its statistics key share (wrapped by its KEK), sessions, FHIR id → pseudonym, receipts; plaintext FHIR in memory',
};

/** One service process of a local deployment. */
export interface ServiceProcess {
  /** `authority`, `cloud` or the hospital's name. */
  readonly name: string;
  readonly kind: 'authority' | 'cloud' | 'hospital';
  readonly url: URL;
  readonly dataDir: string;
  /** The running child (replaced by `restart`). */
  child: ChildProcess;
}

/** A running local deployment. */
export interface LocalDeployment {
  readonly urls: ServiceUrls;
  readonly services: ReadonlyMap<string, ServiceProcess>;
  /** Kills one service with a signal and waits for it to exit. */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped service again, on the same port and data. */
  restart(name: string): Promise<void>;
  /** Stops every service (SIGTERM: each closes its database cleanly). */
  stop(): Promise<void>;
}

/** Options of `startLocalDeployment`. */
export interface LocalDeploymentOptions {
  /** A directory for the config file and each service's data directory. */
  readonly root: string;
  readonly hospitals: readonly string[];
  /** Each hospital's administrator token (given on its stdin). */
  readonly adminTokens: Readonly<Record<string, string>>;
  /** The children's environment (default: this one's, without DATABASE_URL: PGlite everywhere). */
  readonly env?: NodeJS.ProcessEnv;
  /** Extra arguments of every `serve` (for example `--requests-per-minute`). */
  readonly args?: readonly string[];
  /** Extra arguments of `serve cloud` only (for example `--stats-threshold`). */
  readonly cloudArgs?: readonly string[];
  /** Extra arguments of one hospital's `serve hospital` (for example its `--stats-data`). */
  readonly hospitalArgs?: Readonly<Record<string, readonly string[]>>;
  /** With DATABASE_URL in `env`: a prefix making each service's schema unique (`<prefix>_<service>`). */
  readonly schemaPrefix?: string;
}

/** Free TCP ports on 127.0.0.1 (held open together, so that they are distinct, then released). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** Starts every service in parallel and resolves once each listens. */
export async function startLocalDeployment(options: LocalDeploymentOptions): Promise<LocalDeployment> {
  const names = ['authority', 'cloud', ...options.hospitals];
  const ports = await freePorts(names.length);
  const url = (i: number) => new URL(`http://127.0.0.1:${ports[i]}/`);
  const urls: ServiceUrls = {
    authority: url(0),
    cloud: url(1),
    hospitals: Object.fromEntries(options.hospitals.map((h, i) => [h, url(2 + i)])),
  };
  const config = join(options.root, 'config.json');
  await writeFile(
    config,
    formatDeploymentConfig({
      authority: { url: urls.authority },
      cloud: { url: urls.cloud },
      hospitals: options.hospitals.map((name) => ({ name, url: urls.hospitals[name]! })),
    }),
  );
  const env = options.env ?? { ...process.env, DATABASE_URL: '' };
  const services = new Map<string, ServiceProcess>();
  const spawnService = (service: ServiceProcess): Promise<void> => {
    const kindArgs = service.kind === 'hospital' ? ['hospital', '--name', service.name] : [service.kind];
    const schema = options.schemaPrefix === undefined ? [] : ['--schema', `${options.schemaPrefix}_${service.name.replaceAll('-', '_')}`];
    const child = spawn(
      process.execPath,
      [
        BIN,
        'serve',
        ...kindArgs,
        '--data',
        service.dataDir,
        '--port',
        service.url.port,
        '--config',
        config,
        ...schema,
        ...(options.args ?? []),
        ...(service.kind === 'cloud' ? (options.cloudArgs ?? []) : []),
        ...(service.kind === 'hospital' ? (options.hospitalArgs?.[service.name] ?? []) : []),
      ],
      {
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    service.child = child;
    child.stdin!.end(service.kind === 'hospital' ? `${options.adminTokens[service.name]}\n` : '');
    return new Promise<void>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(
        () => reject(new UnavailableError(`${service.name} did not start within ${START_TIMEOUT_MS / 1000} s: ${err.trim().slice(0, 300)}`)),
        START_TIMEOUT_MS,
      );
      child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.startsWith(`${service.name} http`) && out.includes('\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new UnavailableError(`${service.name} exited (${signal ?? code}) before it listened: ${err.trim().slice(0, 300)}`));
      });
    });
  };
  names.forEach((name, i) =>
    services.set(name, {
      name,
      kind: i === 0 ? 'authority' : i === 1 ? 'cloud' : 'hospital',
      url: i === 0 ? urls.authority : i === 1 ? urls.cloud : urls.hospitals[name]!,
      dataDir: join(options.root, name),
      child: undefined as unknown as ChildProcess,
    }),
  );
  const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;
  const kill = async (name: string, signal: NodeJS.Signals = 'SIGKILL') => {
    const { child } = services.get(name)!;
    if (exited(child)) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  };
  const stop = async () => {
    await Promise.all([...services.keys()].map((name) => kill(name, 'SIGTERM')));
  };
  const started = await Promise.allSettled([...services.values()].map(spawnService));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all([...services.keys()].map((name) => kill(name, 'SIGKILL')));
    throw failed.reason;
  }
  return { urls, services, kill, stop, restart: (name) => spawnService(services.get(name)!) };
}
