import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { base32Decode, totp } from '@medshare/identity';
import { runCli } from './run-cli.ts';

const BIN = fileURLToPath(new URL('../bin/medshare.js', import.meta.url));
const ADMIN = 'cli-admin-token-0123456789abcdef';
const PASSWORD = 'correct horse battery staple';
const dir = mkdtempSync(join(tmpdir(), 'medshare-identity-cli-'));
let server: ChildProcess;
let url: string;

before(async () => {
  assert.equal((await runCli(['identity', 'rc', 'init', '--dir', dir])).code, 0);
  server = spawn(
    process.execPath,
    [BIN, 'identity', 'serve', '--hospital', 'hospital-a', '--audience', 'medshare-cloud', 'x', '--rc-dir', dir, '--device-server-id', 'server-a'],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  server.stdin!.end(`${ADMIN}\n`);
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    server.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
});
after(() => {
  server.kill('SIGTERM');
});

test('register a user, log in with password + TOTP; secrets come from stdin, never argv', async () => {
  const registered = await runCli(
    [
      'identity',
      'register-user',
      '--server',
      url,
      '--username',
      'alice',
      '--attribute',
      'role:doctor',
      '--attribute',
      'level=3',
      '--scope',
      'user/Observation.rs',
      '--json',
    ],
    { stdin: `${ADMIN}\n${PASSWORD}\n` },
  );
  assert.equal(registered.code, 0, registered.stderr);
  const enrolment = JSON.parse(registered.stdout) as { totpSecret: string; recoveryCodes: string[] };
  assert.equal(enrolment.recoveryCodes.length, 10);
  const code = totp(base32Decode(enrolment.totpSecret), Date.now() / 1000);
  const tokenFile = join(dir, 'token.json');
  const login = await runCli(['identity', 'login', '--server', url, '--username', 'alice', '--audience', 'medshare-cloud', '--out', tokenFile], {
    stdin: `${PASSWORD}\n${code}\n`,
  });
  assert.equal(login.code, 0, login.stderr);
  assert.equal(login.stdout, '', 'the token goes to the file, not the terminal');
  assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
  const { token } = JSON.parse(readFileSync(tokenFile, 'utf8')) as { token: string };
  assert.equal(token.split('.').length, 3);
  const recovery = await runCli(['identity', 'login', '--server', url, '--username', 'alice', '--audience', 'x', '--recovery'], {
    stdin: `${PASSWORD}\n${enrolment.recoveryCodes[0]}\n`,
  });
  assert.equal(recovery.code, 0, recovery.stderr);
  assert.ok(JSON.parse(recovery.stdout).token);
});

test('wrong password exits 3 with one line; no secret appears in output; missing stdin lines exit 2', async () => {
  const wrong = await runCli(['identity', 'login', '--server', url, '--username', 'alice', '--audience', 'x'], { stdin: 'not-the-password-at-all\n123456\n' });
  assert.equal(wrong.code, 3);
  assert.equal(wrong.stderr, 'medshare: invalid username or password\n');
  assert.doesNotMatch(wrong.stderr + wrong.stdout, /not-the-password-at-all/);
  const missing = await runCli(['identity', 'login', '--server', url, '--username', 'alice', '--audience', 'x'], { stdin: 'only-one-line\n' });
  assert.equal(missing.code, 2);
  const badAdmin = await runCli(['identity', 'register-user', '--server', url, '--username', 'bob'], { stdin: `wrong-admin\n${PASSWORD}\n` });
  assert.equal(badAdmin.code, 3);
});

test('identity admin: disable refuses her login, enable restores it, attributes are replaced, an unknown user exits 4xx', async () => {
  const registered = await runCli(['identity', 'register-user', '--server', url, '--username', 'dora', '--attribute', 'role:doctor', '--json'], {
    stdin: `${ADMIN}\n${PASSWORD}\n`,
  });
  assert.equal(registered.code, 0, registered.stderr);
  const enrolment = JSON.parse(registered.stdout);
  const login = (recovery: number) =>
    runCli(['identity', 'login', '--server', url, '--username', 'dora', '--audience', 'x', '--recovery'], {
      stdin: `${PASSWORD}\n${enrolment.recoveryCodes[recovery]}\n`,
    });
  const disabled = await runCli(['identity', 'admin', 'disable', '--server', url, '--username', 'dora'], { stdin: `${ADMIN}\n` });
  assert.equal(disabled.code, 0, disabled.stderr);
  assert.equal((await login(0)).code, 3, 'disabled: refused');
  assert.equal((await runCli(['identity', 'admin', 'disable', '--server', url, '--username', 'dora'], { stdin: 'not-the-admin-token\n' })).code, 3);
  assert.equal((await runCli(['identity', 'admin', 'enable', '--server', url, '--username', 'dora'], { stdin: `${ADMIN}\n` })).code, 0);
  assert.equal((await login(1)).code, 0, 'enabled: logs in');
  const changed = await runCli(['identity', 'admin', 'attributes', '--server', url, '--username', 'dora', '--attribute', 'role:nurse'], {
    stdin: `${ADMIN}\n`,
  });
  assert.equal(changed.code, 0, changed.stderr);
  assert.ok(JSON.parse(changed.stdout).attributes.includes('role:nurse'));
  assert.equal((await runCli(['identity', 'admin', 'unlock', '--server', url, '--username', 'dora'], { stdin: `${ADMIN}\n` })).code, 0);
  const unknown = await runCli(['identity', 'admin', 'revoke-sessions', '--server', url, '--username', 'nobody'], { stdin: `${ADMIN}\n` });
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /^medshare: no user nobody/);
});

test('devices: register at the RC, mutual login with the server, revoke', async () => {
  const credential = join(dir, 'device.json');
  const registered = await runCli(['identity', 'rc', 'register-device', '--dir', dir, '--server-id', 'server-a', '--out', credential]);
  assert.equal(registered.code, 0, registered.stderr);
  assert.equal(statSync(credential).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'rc.json')).mode & 0o777, 0o600);
  const deviceId = registered.stdout.trim();
  const base = new URL(url).origin;
  const login = await runCli(['identity', 'device-login', '--url', base, '--server-id', 'server-a', '--credential', credential]);
  assert.equal(login.code, 0, login.stderr);
  assert.equal(JSON.parse(login.stdout).deviceId, deviceId);
  assert.equal((await runCli(['identity', 'rc', 'revoke-device', '--dir', dir, '--device-id', deviceId])).code, 0);
  const refused = await runCli(['identity', 'device-login', '--url', base, '--server-id', 'server-a', '--credential', credential]);
  assert.equal(refused.code, 3);
  const unregistered = await runCli(['identity', 'device-login', '--url', base, '--server-id', 'server-z', '--credential', credential]);
  assert.equal(unregistered.code, 2);
});
