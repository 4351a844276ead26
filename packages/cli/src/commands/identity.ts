/**
 * `medshare identity ...` — a hospital identity service and its clients (docs/identity.md §7).
 *
 *   serve             run a hospital identity service (in-memory stores) and, with --rc-dir, a device-authenticating server
 *   register-user     register a staff member or patient (administrator)         secrets: admin token, password
 *   login             password + TOTP (or --recovery code) → SSO token            secrets: password, code
 *   admin ...         a hospital administrator's account operations (identity-admin.ts)
 *   rc ...            the registration centre of device authentication (identity-devices.ts)
 *   device-login      mutual authentication of a registered device with a server
 *
 * Secrets are never arguments: they are prompted for without echo, or read one per line from stdin.
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { readSecrets } from '../secrets.ts';
import { writeFileAtomic } from '../io.ts';
import { postJson } from './identity-http.ts';
import { deviceServerPlugin, registerDeviceCommands } from './identity-devices.ts';
import { registerIdentityAdmin } from './identity-admin.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function serverUrl(value: string): URL {
  try {
    return new URL(value.endsWith('/') ? value : `${value}/`);
  } catch {
    throw new UsageError(`not a URL: ${value}`);
  }
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`not a port: ${value}`);
  return n;
}

async function serve(options: {
  hospital: string;
  issuer?: string;
  host: string;
  port: number;
  rpId?: string;
  origin?: string;
  rcDir?: string;
  deviceServerId?: string;
  audience?: string[];
}): Promise<void> {
  // Loaded here, not by the client commands (login, register-user, admin, …), which need neither.
  const [{ default: Fastify }, { createMemoryHospital, hospitalIdentityPlugin }] = await Promise.all([import('fastify'), import('@medshare/identity')]);
  const [adminToken] = await readSecrets(['administrator token']);
  const rpId = options.rpId ?? 'localhost';
  const service = await createMemoryHospital({
    hospital: options.hospital,
    issuer: options.issuer ?? `urn:medshare:hospital:${options.hospital}`,
    adminToken: adminToken!,
    audiences: options.audience ?? [],
    relyingParty: { id: rpId, name: options.hospital, origins: [options.origin ?? `https://${rpId}`] },
  });
  // Unknown fields are refused, as the schemas say, not silently dropped (Fastify's default).
  const app = Fastify({ logger: false, ajv: { customOptions: { removeAdditional: false } } });
  await app.register(hospitalIdentityPlugin, { ...service, prefix: '/identity' });
  if (options.rcDir || options.deviceServerId) {
    if (!options.rcDir || !options.deviceServerId) throw new UsageError('--rc-dir and --device-server-id go together');
    await app.register(deviceServerPlugin, { rcDir: options.rcDir, serverId: options.deviceServerId });
  }
  const address = await app.listen({ host: options.host, port: options.port });
  process.stdout.write(`${address}/identity/\n`);
  await new Promise<void>((resolve) => {
    const stop = () => void app.close().then(() => resolve());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

async function registerUser(options: { server: string; username: string; attribute?: string[]; scope?: string[]; json?: boolean }): Promise<void> {
  const [adminToken, password] = await readSecrets(['administrator token', 'new user password']);
  const body = { username: options.username, password, attributes: options.attribute ?? [], scopes: options.scope ?? [] };
  const enrolment = await postJson(new URL('users', serverUrl(options.server)), body, adminToken);
  if (options.json) {
    process.stdout.write(`${JSON.stringify(enrolment)}\n`);
    return;
  }
  process.stdout.write(
    [
      `user id: ${enrolment.userId}`,
      `TOTP (add to an authenticator app): ${enrolment.totpUri}`,
      'recovery codes (each works once; store them offline):',
      ...enrolment.recoveryCodes.map((c: string) => `  ${c}`),
    ].join('\n') + '\n',
  );
}

async function login(options: { server: string; username: string; audience: string[]; scope?: string[]; recovery?: boolean; out?: string }): Promise<void> {
  const [password, code] = await readSecrets(['password', options.recovery ? 'recovery code' : 'one-time code']);
  const base = serverUrl(options.server);
  const { ticket } = await postJson(new URL('login/password', base), { username: options.username, password });
  const issued = await postJson(new URL(options.recovery ? 'login/recovery' : 'login/totp', base), {
    ticket,
    code,
    audience: options.audience,
    ...(options.scope ? { scopes: options.scope } : {}),
  });
  const output = `${JSON.stringify({ token: issued.token, sessionId: issued.sessionId, expiresAt: issued.expiresAt })}\n`;
  if (options.out) await writeFileAtomic(options.out, output, { secret: true, overwrite: true });
  else process.stdout.write(output);
}

/** Adds the `identity` command group. */
export function registerIdentity(program: Command): void {
  const identity = program.command('identity').description('accounts, multi-factor login, single sign-on and device authentication');

  identity
    .command('serve')
    .description('run a hospital identity service on in-memory stores (administrator token: prompt or first stdin line)')
    .requiredOption('--hospital <name>', 'the hospital this service vouches for')
    .option('--issuer <id>', 'token issuer identifier (default urn:medshare:hospital:<name>)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', port, 0)
    .option('--audience <aud...>', 'services its tokens may be for (registered audiences; the issuer itself always is one)')
    .option('--rp-id <id>', 'WebAuthn relying-party id (default localhost)')
    .option('--origin <url>', 'WebAuthn origin (default https://<rp-id>)')
    .option('--rc-dir <dir>', 'also authenticate devices, with server secret and revocations from this registration centre')
    .option('--device-server-id <id>', "this server's id at the registration centre")
    .action(serve);

  identity
    .command('register-user')
    .description('register a user (stdin lines / prompts: administrator token, password); prints TOTP URI and recovery codes once')
    .requiredOption('--server <url>', 'identity service URL (…/identity/)')
    .requiredOption('--username <name>', 'login name')
    .option('--attribute <attr>', 'vouched attribute, e.g. role:doctor, dept:cardiology, level=3 (repeatable)', collect)
    .option('--scope <scope>', 'SMART scope the user may request, e.g. user/Observation.rs (repeatable)', collect)
    .option('--json', 'print the enrolment as JSON')
    .action(registerUser);

  identity
    .command('login')
    .description('log in with password and one-time code (stdin lines / prompts: password, code); prints the SSO token')
    .requiredOption('--server <url>', 'identity service URL (…/identity/)')
    .requiredOption('--username <name>', 'login name')
    .requiredOption('--audience <aud>', 'service the token is for (repeatable)', collect)
    .option('--scope <scope>', 'requested SMART scope (repeatable; default: all granted)', collect)
    .option('--recovery', 'the code is a recovery code')
    .option('--out <file>', 'write the token to this file (mode 0600) instead of stdout')
    .action(login);

  registerIdentityAdmin(identity);
  registerDeviceCommands(identity);
}
