import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  acceptLoginResponse,
  createLoginRequest,
  DeviceAuthServer,
  deviceAuthenticationPlugin,
  DeviceSessionClient,
  MemoryNonceCache,
  MemoryTicketStore,
  protocolMac,
  RegistrationCentre,
  type DeviceCredential,
  type DeviceSession,
} from '../src/index.ts';
import { macMatches } from '../src/device/protocol.ts';
import { TestClock } from './harness.ts';

const clock = new TestClock();
const centre = new RegistrationCentre();
const servers: Record<string, { app: FastifyInstance; url: URL }> = {};
let credential: DeviceCredential;

async function startServer(serverId: string): Promise<void> {
  const auth = new DeviceAuthServer({
    serverId,
    serverSecret: centre.enrolServer(serverId),
    isRevoked: centre.isRevoked,
    nonces: new MemoryNonceCache(),
    sessions: new MemoryTicketStore<DeviceSession>(),
    now: clock.now,
  });
  const app = Fastify({ logger: false });
  await app.register(deviceAuthenticationPlugin, {
    server: auth,
    routes: (scope) => {
      scope.post('/records', async (request) => ({ device: request.medshareDevice?.deviceId, received: request.body }));
      scope.get('/records', async (request) => ({ device: request.medshareDevice?.deviceId, query: request.query }));
      scope.put('/blobs', async (request) => ({ device: request.medshareDevice?.deviceId, bytes: (request.body as Buffer).length }));
    },
  });
  servers[serverId] = { app, url: new URL(await app.listen({ host: '127.0.0.1', port: 0 })) };
}

before(async () => {
  await startServer('server-a');
  await startServer('server-b');
  await startServer('server-c');
  credential = centre.registerDevice(['server-a', 'server-b']);
});
after(async () => {
  for (const { app } of Object.values(servers)) await app.close();
});

const url = (id: string) => servers[id]!.url;

async function raw(id: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: any }> {
  const response = await fetch(new URL(path, url(id)), {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body,
  });
  return { status: response.status, body: await response.json() };
}

test('one registration works with several servers: mutual login and signed requests', async () => {
  for (const id of ['server-a', 'server-b']) {
    const session = await DeviceSessionClient.login(url(id), credential, id, clock.now);
    const post = await session.fetch('POST', '/records', { note: 'hello' });
    assert.equal(post.status, 200);
    assert.deepEqual(await post.json(), { device: credential.deviceId, received: { note: 'hello' } });
    const get = await session.fetch('GET', '/records?patient=p1&category=lab');
    assert.deepEqual(await get.json(), { device: credential.deviceId, query: { patient: 'p1', category: 'lab' } });
  }
});

test('non-JSON bodies are signed and verified over their raw bytes', async () => {
  const session = await DeviceSessionClient.login(url('server-a'), credential, 'server-a', clock.now);
  const blob = Buffer.from([0, 1, 2, 255, 254]);
  const headers = { ...session.sign('PUT', '/blobs', blob), 'content-type': 'application/octet-stream' };
  const ok = await fetch(new URL('/blobs', url('server-a')), { method: 'PUT', headers, body: blob });
  assert.deepEqual(await ok.json(), { device: credential.deviceId, bytes: 5 });
  const altered = await fetch(new URL('/blobs', url('server-a')), {
    method: 'PUT',
    headers: { ...session.sign('PUT', '/blobs', blob), 'content-type': 'application/octet-stream' },
    body: Buffer.from([0, 1, 2, 255, 253]),
  });
  assert.equal(altered.status, 401);
});

test('a replayed request is refused', async () => {
  const session = await DeviceSessionClient.login(url('server-a'), credential, 'server-a', clock.now);
  const body = JSON.stringify({ dose: 5 });
  const headers = session.sign('POST', '/records', Buffer.from(body));
  assert.equal((await raw('server-a', 'POST', '/records', headers, body)).status, 200);
  const replay = await raw('server-a', 'POST', '/records', headers, body);
  assert.equal(replay.status, 401);
  assert.equal(replay.body.detail, 'request has been replayed');
});

test('an altered body, method, path or query is refused', async () => {
  const session = await DeviceSessionClient.login(url('server-a'), credential, 'server-a', clock.now);
  const body = JSON.stringify({ dose: 5 });
  const headers = session.sign('POST', '/records', Buffer.from(body));
  const altered = await raw('server-a', 'POST', '/records', headers, JSON.stringify({ dose: 50 }));
  assert.equal(altered.body.detail, 'request body does not match its digest');
  const redigested = { ...headers, 'content-digest': session.sign('POST', '/records', Buffer.from(JSON.stringify({ dose: 50 })))['content-digest']! };
  assert.equal((await raw('server-a', 'POST', '/records', redigested, JSON.stringify({ dose: 50 }))).body.detail, 'request signature is not valid');
  const getHeaders = session.sign('GET', '/records?patient=p1', Buffer.alloc(0));
  assert.equal((await raw('server-a', 'GET', '/records?patient=p2', getHeaders)).body.detail, 'request signature is not valid');
});

test('a stale or future timestamp is refused', async () => {
  const session = await DeviceSessionClient.login(url('server-a'), credential, 'server-a', clock.now);
  const headers = session.sign('GET', '/records', Buffer.alloc(0));
  clock.advance(31);
  assert.equal((await raw('server-a', 'GET', '/records', headers)).body.detail, 'request signature is stale');
  clock.advance(-62);
  assert.equal((await raw('server-a', 'GET', '/records', headers)).body.detail, 'request signature is stale');
  clock.advance(31);
  const request = createLoginRequest(credential.deviceId, 'server-a', Buffer.from(credential.keys['server-a']!, 'base64url'), clock.now() - 60_000);
  const login = await raw('server-a', 'POST', '/device/login', {}, JSON.stringify(request));
  assert.equal(login.body.detail, 'login timestamp is outside the allowed window');
});

test('a replayed login is refused', async () => {
  const request = createLoginRequest(credential.deviceId, 'server-a', Buffer.from(credential.keys['server-a']!, 'base64url'), clock.now());
  assert.equal((await raw('server-a', 'POST', '/device/login', {}, JSON.stringify(request))).status, 200);
  const again = await raw('server-a', 'POST', '/device/login', {}, JSON.stringify(request));
  assert.equal(again.body.detail, 'login request has been replayed');
});

test('wrong server: a key for server A does not open server B, and a device is not registered for server C', async () => {
  const keyA = Buffer.from(credential.keys['server-a']!, 'base64url');
  const misdirected = createLoginRequest(credential.deviceId, 'server-b', keyA, clock.now());
  assert.equal((await raw('server-b', 'POST', '/device/login', {}, JSON.stringify(misdirected))).body.detail, 'device authentication failed');
  const addressedToA = createLoginRequest(credential.deviceId, 'server-a', keyA, clock.now());
  assert.equal((await raw('server-b', 'POST', '/device/login', {}, JSON.stringify(addressedToA))).body.detail, 'login is addressed to another server');
  await assert.rejects(DeviceSessionClient.login(url('server-c'), credential, 'server-c', clock.now), /not registered for server server-c/);
  // A session key of server A is useless at server B.
  const sessionA = await DeviceSessionClient.login(url('server-a'), credential, 'server-a', clock.now);
  const headers = sessionA.sign('GET', '/records', Buffer.alloc(0));
  assert.equal((await raw('server-b', 'GET', '/records', headers)).body.detail, 'unknown or expired device session');
});

test('the device authenticates the server: a server without the pairwise key cannot answer', async () => {
  const keyA = Buffer.from(credential.keys['server-a']!, 'base64url');
  const request = createLoginRequest(credential.deviceId, 'server-a', keyA, clock.now());
  const impostorKey = Buffer.alloc(32, 7);
  const forged = { sessionId: 'AAAAAAAAAAAAAAAAAAAAAA', nonce: 'AAAAAAAAAAAAAAAAAAAAAA', expiresAt: clock.now() + 1000 };
  const mac = protocolMac(impostorKey, 'login-response', [
    request.serverId,
    request.deviceId,
    request.nonce,
    forged.nonce,
    forged.sessionId,
    forged.expiresAt,
  ]).toString('base64url');
  assert.throws(() => acceptLoginResponse(keyA, request, { ...forged, mac }), /server failed to authenticate/);
  const genuine = await raw('server-a', 'POST', '/device/login', {}, JSON.stringify(request));
  assert.equal(acceptLoginResponse(keyA, request, genuine.body).length, 32);
  assert.throws(() => acceptLoginResponse(keyA, request, { ...genuine.body, sessionId: 'B'.repeat(22) }), /server failed to authenticate/);
});

test('each login yields a fresh session key', async () => {
  const keyA = Buffer.from(credential.keys['server-a']!, 'base64url');
  const keys = new Set<string>();
  for (let i = 0; i < 3; i++) {
    const request = createLoginRequest(credential.deviceId, 'server-a', keyA, clock.now());
    keys.add(acceptLoginResponse(keyA, request, (await raw('server-a', 'POST', '/device/login', {}, JSON.stringify(request))).body).toString('hex'));
  }
  assert.equal(keys.size, 3);
});

test('a revoked device can neither log in nor use an open session', async () => {
  const doomed = centre.registerDevice(['server-a']);
  const session = await DeviceSessionClient.login(url('server-a'), doomed, 'server-a', clock.now);
  assert.equal((await session.fetch('GET', '/records')).status, 200);
  centre.revokeDevice(doomed.deviceId);
  const after = await session.fetch('GET', '/records');
  assert.equal(after.status, 401);
  assert.equal(((await after.json()) as { detail: string }).detail, 'device has been revoked');
  await assert.rejects(DeviceSessionClient.login(url('server-a'), doomed, 'server-a', clock.now), /HTTP 401/);
});

test('unsigned, malformed or forged requests get 401/400 problem+json', async () => {
  assert.equal((await raw('server-a', 'GET', '/records', {})).status, 400);
  const junk = { 'signature-input': 'medshare=("@method");created=1', signature: 'medshare=:AAAA:', 'content-digest': 'sha-256=:x:' };
  assert.equal((await raw('server-a', 'GET', '/records', junk)).status, 400);
  const session = await DeviceSessionClient.login(url('server-a'), credential, 'server-a', clock.now);
  const headers = session.sign('GET', '/records', Buffer.alloc(0));
  const flipped = { ...headers, signature: headers.signature!.replace(/^medshare=:(.)/, (_m, c: string) => `medshare=:${c === 'A' ? 'B' : 'A'}`) };
  assert.equal((await raw('server-a', 'GET', '/records', flipped)).body.detail, 'request signature is not valid');
  for (const body of [
    '{}',
    '{"deviceId":"x"}',
    'not json',
    JSON.stringify({ deviceId: 'a', serverId: 'server-a', nonce: 'A'.repeat(22), timestamp: 1.5, mac: 'A'.repeat(43) }),
  ]) {
    const result = await raw('server-a', 'POST', '/device/login', {}, body);
    assert.equal(result.status, 400, body);
  }
});

test('MAC comparison is exact and length-safe (crypto.timingSafeEqual behind a length check)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 48 }), (expected, other) => {
      const e = Buffer.from(expected);
      assert.equal(macMatches(e, e.toString('base64url')), true);
      assert.equal(macMatches(e, Buffer.from(other).toString('base64url')), Buffer.from(other).equals(e));
    }),
  );
});
