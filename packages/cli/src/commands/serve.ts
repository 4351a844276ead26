/**
 * `medshare serve` — the whole platform (@medshare/server) in one process: trusted authority, each hospital's
 * identity service, the cloud and the hospital gateway. Data in embedded PGlite under `--data`, or in PostgreSQL
 * when DATABASE_URL is set; `--state` holds what must stay outside the database: the key-encryption key (`kek`,
 * unless MEDSHARE_KEK is set; it wraps the secrets kept in the database) and the ledger's last signed checkpoint
 * (`ledger-checkpoint`). Each hospital's administrator token (registration, administration) is read like every
 * secret: a hidden prompt on a terminal, else one line per hospital on stdin, in --hospital order — never a
 * command-line argument.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { abe } from '@medshare/crypto';
import { loadKeyEncryptionKey, openDatabase } from '@medshare/db';
import { createPlatform, DEFAULT_EMERGENCY_POLICY, defaultConversionWorkers } from '@medshare/server';
import { UsageError } from '../errors.ts';
import { readSecrets } from '../secrets.ts';

interface ServeOptions {
  data: string;
  state: string;
  port: string;
  host: string;
  hospital: string[];
  log?: boolean;
  emergencyPolicy: string;
  platformEmergency: boolean;
  conversionWorkers?: string;
  trustProxy?: string[];
  rpId?: string;
  origin?: string;
}

async function serve(options: ServeOptions): Promise<void> {
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`not a port: ${options.port}`);
  const emergencyPolicy = options.platformEmergency ? options.emergencyPolicy : null;
  if (emergencyPolicy !== null) abe.compilePolicy(emergencyPolicy); // a bad policy fails before anything starts
  const conversionWorkers = options.conversionWorkers === undefined ? undefined : Number(options.conversionWorkers);
  if (conversionWorkers !== undefined && !(Number.isInteger(conversionWorkers) && conversionWorkers >= 0 && conversionWorkers <= 256)) {
    throw new UsageError(`not a worker count: ${options.conversionWorkers}`);
  }
  const rp = options.rpId || options.origin ? relyingParty(options.rpId, options.origin) : undefined;
  const tokens = await readSecrets(options.hospital.map((hospital) => `administrator token of ${hospital}`));
  const adminTokens: Record<string, string> = {};
  options.hospital.forEach((hospital, i) => {
    const token = tokens[i];
    if (token === undefined || token.length < 16) throw new UsageError(`the administrator token of ${hospital} must have at least 16 characters`);
    adminTokens[hospital] = token;
  });
  if (new Set(Object.values(adminTokens)).size !== options.hospital.length) throw new UsageError('each hospital needs its own administrator token');
  const url = process.env['DATABASE_URL'];
  const usePostgres = url !== undefined && url !== '';
  if (!usePostgres) await mkdir(options.data, { recursive: true, mode: 0o700 });
  // What must stay outside the database: the KEK (unless MEDSHARE_KEK is set) and the ledger's last signed checkpoint.
  await mkdir(options.state, { recursive: true, mode: 0o700 });
  const kek = loadKeyEncryptionKey({ file: join(options.state, 'kek'), create: true });
  // The consortium's identifier key (cross-hospital lookup by business identifier): shared by the hospitals, 64 hex digits.
  const identifierHex = process.env['MEDSHARE_IDENTIFIER_KEY'];
  if (identifierHex !== undefined && !/^[0-9a-fA-F]{64}$/.test(identifierHex)) throw new UsageError('MEDSHARE_IDENTIFIER_KEY must be 64 hex digits');
  const db = await openDatabase(usePostgres ? { url } : { dataDir: options.data });
  const platform = await createPlatform({
    ...(identifierHex === undefined ? {} : { identifierKey: new Uint8Array(Buffer.from(identifierHex, 'hex')) }),
    db, hospitals: options.hospital, adminTokens, logger: options.log ?? false, emergencyPolicy,
    conversionWorkers: conversionWorkers ?? defaultConversionWorkers(db.engine), kek, ledgerCheckpointFile: join(options.state, 'ledger-checkpoint'),
    ...(options.trustProxy ? { trustProxy: options.trustProxy } : {}),
    ...(rp ? { relyingParty: rp } : {}),
  });
  const address = await platform.app.listen({ host: options.host, port });
  process.stdout.write(`${address}/ (${usePostgres ? 'PostgreSQL' : `PGlite in ${options.data}`}; hospitals ${options.hospital.join(', ')})\n`);
  await new Promise<void>((resolve) => {
    const stop = () => void platform.close().then(() => db.close()).then(() => resolve());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/** The WebAuthn relying party of --rp-id and --origin (each defaulting from the other). */
function relyingParty(rpId: string | undefined, origin: string | undefined): { id: string; origins: string[] } {
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

/** Registers `medshare serve`. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the platform (trusted authority, hospital identity, cloud, gateway) until SIGINT/SIGTERM; DATABASE_URL selects PostgreSQL')
    .option('--data <dir>', 'PGlite data directory (ignored when DATABASE_URL is set)', 'medshare-data')
    .option('--state <dir>', 'kept outside the database: the key-encryption key file (unless MEDSHARE_KEK) and the ledger checkpoint', 'medshare-state')
    .option('--trust-proxy <addresses...>', 'reverse proxies (addresses or CIDR) whose X-Forwarded-For is believed, so throttling counts clients, not the proxy')
    .option('--rp-id <id>', 'WebAuthn relying-party id (default: the --origin host, else localhost)')
    .option('--origin <url>', 'WebAuthn origin browsers use (default https://<rp-id>, else http://localhost)')
    .option('--port <n>', 'TCP port (0 = any free one)', '8080')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--hospital <name...>', 'hospitals to serve (identity services)', ['st-marys', 'riverside'])
    .option('--log', 'log requests (method, URL, status; never bodies or tokens)')
    .option('--emergency-policy <policy>', 'CP-ABE policy of platform emergency access (gateways grant every record under it)', DEFAULT_EMERGENCY_POLICY)
    .option('--no-platform-emergency', 'no platform emergency access: only patients\' own emergency delegations')
    .option('--conversion-workers <n>', 're-encryption worker threads (0 = in the event loop; default: one per core on PostgreSQL, one fewer on PGlite)')
    .action(serve);
}
