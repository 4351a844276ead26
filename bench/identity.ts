/**
 * Identity benchmark: scrypt cost against N, TOTP, SSO token issue/verify, trusted-authority key
 * issuance, HMAC device authentication in process and over HTTP on 127.0.0.1, and a full MFA login.
 *
 *   node --import tsx bench/identity.ts          [--plots]   (--plots writes docs/benchmarks/identity-scrypt.svg)
 */
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { abe } from '@medshare/crypto';
import {
  base32Decode,
  createLoginRequest,
  createMemoryHospital,
  DeviceKeys,
  DpopVerifier,
  DeviceAuthServer,
  deviceAuthenticationPlugin,
  DeviceSessionClient,
  hashPassword,
  hospitalIdentityPlugin,
  matchTotp,
  MemoryNonceCache,
  MemorySessionStore,
  MemoryTicketStore,
  RegistrationCentre,
  signRequest,
  SigningKeyRing,
  SessionPseudonyms,
  TokenIssuer,
  TokenVerifier,
  totp,
  TrustedAuthority,
  TrustList,
  localSessionStatus,
  verifyPassword,
  type DeviceSession,
} from '@medshare/identity';
import { ms, wantsPlots } from './lib/measure.ts';
import { plotLines, printTable, type Point } from './lib/report.ts';

/** Median time of an async operation, repeated until `budgetMs` is spent (at least `minRuns`). */
async function timeAsync(fn: () => Promise<unknown>, { minRuns = 5, budgetMs = 500 } = {}): Promise<number> {
  await fn();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < minRuns || performance.now() - start < budgetMs) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
    if (samples.length >= 20_000) break;
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

// ---- scrypt ----------------------------------------------------------------------------------
const scryptRows: string[][] = [];
const points: Point[] = [];
for (const logN of [14, 15, 16, 17, 18]) {
  const params = { logN, r: 8, p: 1 };
  const stored = await hashPassword('correct horse battery staple', params);
  const verify = await timeAsync(() => verifyPassword('correct horse battery staple', stored), { minRuns: 3, budgetMs: 1500 });
  scryptRows.push([`2^${logN}`, String((128 * 8 * 2 ** logN) / 2 ** 20), ms(verify), logN === 17 ? 'default (OWASP)' : '']);
  points.push({ series: 'scrypt verify (r=8, p=1)', x: logN, y: verify });
}
printTable('Password hashing: scrypt verify vs N (r = 8, p = 1)', ['N', 'memory MiB', 'verify ms', ''], scryptRows);
if (wantsPlots())
  await plotLines('docs/benchmarks/identity-scrypt.svg', points, { title: 'scrypt verification time vs log2 N', x: 'log2 N', y: 'ms (median)', logY: true });

// ---- in-process operations -----------------------------------------------------------------
const rows: string[][] = [];
const secret = base32Decode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
const now = Date.now() / 1000;
const code = totp(secret, now);
rows.push(['TOTP verify (±1 step, 3 HMAC-SHA1)', ms(await timeAsync(async () => matchTotp(secret, code, now)))]);

const sessions = new MemorySessionStore();
const keys = await SigningKeyRing.create(600_000);
const issuer = new TokenIssuer({
  issuer: 'https://idp.a.example',
  hospital: 'a',
  keys,
  sessions,
  pseudonyms: new SessionPseudonyms(randomBytes(32), 'https://idp.a.example'),
  audiences: ['medshare-ta'],
  clients: ['medshare-app'],
});
const user = {
  id: 'u1',
  username: 'alice',
  attributes: ['role:doctor', 'dept:cardiology', 'level=3', 'hospital:a', 'uid:u1'],
  scopes: ['user/Observation.rs'],
  factor: 'totp' as const,
  methods: ['pwd', 'otp'],
};
const device = await DeviceKeys.generate();
const deviceKey = device.sealingPublicJwk;
const { sessionId } = await issuer.startSession(
  user,
  { audience: ['medshare-ta'] },
  { proofKey: device.dpop.thumbprint, sealingKey: device.sealingThumbprint },
);
const session = (await sessions.get(sessionId))!;
rows.push(['SSO token issue (EdDSA sign)', ms(await timeAsync(() => issuer.sign(user, session, { audience: ['medshare-ta'] })))]);
const trust = new TrustList();
trust.add({ issuer: 'https://idp.a.example', hospital: 'a', jwks: keys.jwks(), sessionStatus: localSessionStatus(sessions) });
const verifier = new TokenVerifier('medshare-ta', trust);
const token = (await issuer.sign(user, session, { audience: ['medshare-ta'] })).token;
rows.push(['SSO token verify (EdDSA, local session check)', ms(await timeAsync(() => verifier.verify(token)))]);

await abe.init();
const authorityKeys = abe.setup();
const taCases: Array<[string, string[]]> = [
  ['2 string attributes', ['role:doctor', 'dept:cardiology']],
  ['2 string + 1 integer attribute (level=3, expanded to bit attributes)', ['role:doctor', 'dept:cardiology', 'level=3']],
];
for (const [label, attributes] of taCases) {
  const authority = new TrustedAuthority({
    verifier,
    publicKey: authorityKeys.publicKey,
    masterKey: authorityKeys.masterKey,
    usedTokens: new MemoryNonceCache(),
    proofs: new DpopVerifier(new MemoryNonceCache()),
  });
  const url = 'https://ta.example/ta/keys';
  rows.push([
    `TA key issuance, ${label}: verify + DPoP proof + FAME keygen + seal`,
    ms(
      await timeAsync(async () => {
        const fresh = (await issuer.sign(user, session, { audience: ['medshare-ta'] })).token;
        await authority.issueKey(
          fresh,
          { attributes, deviceKey },
          { proof: await device.dpop.proof('POST', url, { accessToken: fresh }), method: 'POST', url },
        );
      }),
    ),
  ]);
}

const centre = new RegistrationCentre();
const serverSecret = centre.enrolServer('server-a');
const credential = centre.registerDevice(['server-a']);
const pairwise = Buffer.from(credential.keys['server-a']!, 'base64url');
const deviceServer = new DeviceAuthServer({
  serverId: 'server-a',
  serverSecret,
  isRevoked: centre.isRevoked,
  nonces: new MemoryNonceCache(),
  sessions: new MemoryTicketStore<DeviceSession>(),
});
rows.push([
  'device login, server side (derive K, 2 HMAC, HKDF)',
  ms(await timeAsync(() => deviceServer.login(createLoginRequest(credential.deviceId, 'server-a', pairwise, Date.now())))),
]);
const body = Buffer.alloc(1024, 1);
rows.push([
  'sign a 1 KiB request (SHA-256 + HMAC)',
  ms(
    await timeAsync(async () =>
      signRequest(
        pairwise,
        { method: 'POST', path: '/records', query: '?', body },
        { created: 1, nonce: 'AAAAAAAAAAAAAAAAAAAAAA', keyId: 'AAAAAAAAAAAAAAAAAAAAAA' },
      ),
    ),
  ),
]);
printTable('In-process operations', ['operation', 'median ms'], rows);

// ---- over HTTP on 127.0.0.1 ------------------------------------------------------------------
const httpRows: string[][] = [];
const app = Fastify({ logger: false });
await app.register(deviceAuthenticationPlugin, { server: deviceServer, routes: (scope) => void scope.post('/records', async () => ({ ok: true })) });
app.post('/plain', async () => ({ ok: true }));
const base = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
const client = await DeviceSessionClient.login(base, credential, 'server-a');
httpRows.push([
  'unsigned POST, 1 KiB JSON (baseline)',
  ms(
    await timeAsync(() =>
      fetch(new URL('/plain', base), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ data: 'x'.repeat(1000) }),
      }).then((r) => r.text()),
    ),
  ),
]);
httpRows.push(['HMAC-signed POST, 1 KiB JSON', ms(await timeAsync(() => client.fetch('POST', '/records', { data: 'x'.repeat(1000) }).then((r) => r.text())))]);
httpRows.push(['device mutual login (2 messages)', ms(await timeAsync(() => DeviceSessionClient.login(base, credential, 'server-a')))]);
await app.close();

const hospital = await createMemoryHospital({
  hospital: 'a',
  issuer: 'https://idp.a.example',
  adminToken: 'bench-admin-token',
  audiences: ['medshare-cloud'],
  relyingParty: { id: 'a.example', name: 'a', origins: ['https://a.example'] },
});
const idp = Fastify({ logger: false });
await idp.register(hospitalIdentityPlugin, { ...hospital, prefix: '/identity' });
const idpBase = new URL('/identity/', await idp.listen({ host: '127.0.0.1', port: 0 }));
const post = (path: string, json: unknown, bearer?: string) =>
  fetch(new URL(path, idpBase), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify(json),
  }).then((r) => r.json() as Promise<any>);
// Each login uses up a recovery code (a TOTP step is accepted once, so a loop cannot reuse one).
const pool: Array<{ username: string; code: string }> = [];
for (const username of ['alice', 'bob', 'carol']) {
  const enrolment = await post(
    'users',
    { username, password: 'correct horse battery staple', attributes: ['role:doctor'], scopes: ['openid'] },
    'bench-admin-token',
  );
  for (const code of enrolment.recoveryCodes as string[]) pool.push({ username, code });
}
httpRows.push([
  'full MFA login: password (scrypt 2^17) + second factor → token',
  ms(
    await timeAsync(
      async () => {
        const next = pool.pop();
        if (!next) throw new Error('benchmark ran out of recovery codes');
        const { ticket } = await post('login/password', { username: next.username, password: 'correct horse battery staple' });
        const result = await post('login/recovery', { ticket, code: next.code, audience: ['x'] });
        if (typeof result.token !== 'string') throw new Error(`login failed: ${JSON.stringify(result)}`);
      },
      { minRuns: 5, budgetMs: 2000 },
    ),
  ),
]);
await idp.close();
printTable('Over HTTP on 127.0.0.1 (Fastify 5, global fetch)', ['operation', 'median ms'], httpRows);
