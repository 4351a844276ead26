/**
 * `medshare identity rc ...` and `identity device-login`: the registration centre of the HMAC
 * multi-server device authentication, kept in a directory (`rc.json`, mode 0600), and a device's login.
 * `deviceServerPlugin` is what `identity serve --rc-dir` mounts: device login plus `GET /device/whoami`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { MalformedInputError } from '@medshare/crypto';
import { errorFromProblem } from '@medshare/server/http-client';
import type { DeviceCredential, DeviceSession, RegistrationCentre, RegistrationCentreState } from '@medshare/identity';
import { writeFileAtomic } from '../io.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];
/** @medshare/identity, loaded by the commands that use it (not by every `medshare identity` command). */
const identityModule = () => import('@medshare/identity');
const stateFile = (dir: string) => join(dir, 'rc.json');

async function readJson<T>(path: string, what: string): Promise<T> {
  const text = await readFile(path, 'utf8');
  if (text.length > 16 * 1024 * 1024) throw new MalformedInputError(`${what} is too large`);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new MalformedInputError(`${path} is not a ${what}`);
  }
}

async function loadCentre(dir: string): Promise<RegistrationCentre> {
  const { RegistrationCentre } = await identityModule();
  return RegistrationCentre.fromState(await readJson<RegistrationCentreState>(stateFile(dir), 'registration centre state'));
}

async function saveCentre(dir: string, centre: RegistrationCentre): Promise<void> {
  await writeFileAtomic(stateFile(dir), JSON.stringify(centre.toState()), { secret: true, overwrite: true });
}

/** Device login and a signed `GET /device/whoami`, for a server enrolled at the RC in `rcDir`. */
export async function deviceServerPlugin(app: FastifyInstance, options: { rcDir: string; serverId: string }): Promise<void> {
  const { DeviceAuthServer, deviceAuthenticationPlugin, MemoryNonceCache, MemoryTicketStore } = await identityModule();
  const centre = await loadCentre(options.rcDir);
  const serverSecret = centre.enrolServer(options.serverId);
  await saveCentre(options.rcDir, centre);
  const server = new DeviceAuthServer({
    serverId: options.serverId,
    serverSecret,
    // Re-read on every check so that `rc revoke-device` in another process takes effect at once.
    isRevoked: async (deviceId) => (await loadCentre(options.rcDir)).isRevoked(deviceId),
    nonces: new MemoryNonceCache(),
    sessions: new MemoryTicketStore<DeviceSession>(),
  });
  await app.register(deviceAuthenticationPlugin, {
    server,
    routes: (scope) => {
      scope.get('/device/whoami', async (request) => ({ deviceId: request.medshareDevice?.deviceId, serverId: options.serverId }));
    },
  });
}

/** Adds `rc` and `device-login` under the identity command. */
export function registerDeviceCommands(identity: Command): void {
  const rc = identity.command('rc').description('registration centre for device authentication (state in <dir>/rc.json, mode 0600)');

  rc.command('init')
    .description('create a registration centre with a fresh root secret')
    .requiredOption('--dir <dir>', 'state directory')
    .action(async (options: { dir: string }) => {
      const { RegistrationCentre } = await identityModule();
      await writeFileAtomic(stateFile(options.dir), JSON.stringify(new RegistrationCentre().toState()), { secret: true, overwrite: false });
    });

  rc.command('register-device')
    .description('register a device for the given servers; writes its credential (mode 0600)')
    .requiredOption('--dir <dir>', 'state directory')
    .requiredOption('--server-id <id>', 'enrolled server the device may use (repeatable)', collect)
    .requiredOption('--out <file>', 'credential file to create')
    .action(async (options: { dir: string; serverId: string[]; out: string }) => {
      const centre = await loadCentre(options.dir);
      const credential = centre.registerDevice(options.serverId);
      await writeFileAtomic(options.out, JSON.stringify(credential), { secret: true, overwrite: false });
      await saveCentre(options.dir, centre);
      process.stdout.write(`${credential.deviceId}\n`);
    });

  rc.command('revoke-device')
    .description('revoke a device at every server')
    .requiredOption('--dir <dir>', 'state directory')
    .requiredOption('--device-id <id>', 'device to revoke')
    .action(async (options: { dir: string; deviceId: string }) => {
      const centre = await loadCentre(options.dir);
      centre.revokeDevice(options.deviceId);
      await saveCentre(options.dir, centre);
    });

  identity
    .command('device-login')
    .description('mutually authenticate a registered device with a server and call GET /device/whoami')
    .requiredOption('--url <url>', 'server base URL')
    .requiredOption('--server-id <id>', 'server id at the registration centre')
    .requiredOption('--credential <file>', 'device credential file')
    .action(async (options: { url: string; serverId: string; credential: string }) => {
      const { DeviceSessionClient } = await identityModule();
      const credential = await readJson<DeviceCredential>(options.credential, 'device credential');
      const session = await DeviceSessionClient.login(new URL(options.url), credential, options.serverId);
      const response = await session.fetch('GET', '/device/whoami');
      const text = await response.text();
      if (!response.ok) throw errorFromProblem(response.status, text);
      const body = JSON.parse(text) as { deviceId?: string };
      process.stdout.write(`${JSON.stringify({ sessionId: session.sessionId, ...body })}\n`);
    });
}
