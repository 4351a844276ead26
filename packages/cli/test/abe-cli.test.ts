import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { runCli, runOk, setupAuthority } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'medshare-abe-cli-'));
const path = (name: string) => join(dir, name);
const POLICY = '(role:doctor and dept:cardiology) or role:emergency';

before(async () => {
  await setupAuthority(dir, 'role:doctor,dept:cardiology,level=3');
});

const pub = () => path('authority/abe-public.key');

describe('medshare abe', () => {
  test('setup writes an armored public key and a 0600 master key', () => {
    assert.match(readFileSync(pub(), 'utf8'), /^-----BEGIN MEDSHARE ABE PUBLIC KEY-----/);
    assert.equal(statSync(path('authority/abe-master.key')).mode & 0o777, 0o600);
    assert.equal(statSync(path('cardiologist.key')).mode & 0o777, 0o600);
  });

  test('encrypt then decrypt round-trips a multi-chunk file (exit 0)', async () => {
    const plaintext = randomBytes(200_000);
    writeFileSync(path('record.bin'), plaintext);
    await runOk(['abe', 'encrypt', '--public', pub(), '--policy', POLICY, '--in', path('record.bin'), '--out', path('record.ct')]);
    await runOk(['abe', 'decrypt', '--public', pub(), '--key', path('cardiologist.key'), '--in', path('record.ct'), '--out', path('record.out')]);
    assert.deepEqual(readFileSync(path('record.out')), plaintext);
  });

  test('stdin and stdout work with -', async () => {
    const plaintext = Buffer.from('{"resourceType":"Observation"}');
    const enc = await runOk(['abe', 'encrypt', '--public', pub(), '--policy', 'role:doctor', '--in', '-', '--out', '-'], plaintext);
    const dec = await runOk(['abe', 'decrypt', '--public', pub(), '--key', path('dermatologist.key'), '--in', '-', '--out', '-'], enc.stdoutBytes);
    assert.deepEqual(dec.stdoutBytes, plaintext);
  });

  test('exit 3 when the attributes do not satisfy the policy, and no output file is left', async () => {
    await runOk(['abe', 'encrypt', '--public', pub(), '--policy', POLICY, '--in', path('record.bin'), '--out', path('denied.ct')]);
    const r = await runCli(['abe', 'decrypt', '--public', pub(), '--key', path('dermatologist.key'), '--in', path('denied.ct'), '--out', path('denied.out')]);
    assert.equal(r.code, 3);
    assert.equal(r.stderr, 'medshare: the key does not satisfy the ciphertext policy\n');
    assert.equal(existsSync(path('denied.out')), false);
  });

  test('exit 4 when the ciphertext was tampered with, and no partial plaintext is left behind', async () => {
    const ct = readFileSync(path('record.ct'));
    ct[ct.length - 100]! ^= 0x01;
    writeFileSync(path('tampered.ct'), ct);
    const r = await runCli([
      'abe',
      'decrypt',
      '--public',
      pub(),
      '--key',
      path('cardiologist.key'),
      '--in',
      path('tampered.ct'),
      '--out',
      path('tampered.out'),
    ]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^medshare: payload chunk 3 \(final\) failed authentication/);
    assert.equal(existsSync(path('tampered.out')), false);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  });

  test('exit 4 for a truncated ciphertext', async () => {
    writeFileSync(path('short.ct'), readFileSync(path('record.ct')).subarray(0, 70_000));
    const r = await runCli(['abe', 'decrypt', '--public', pub(), '--key', path('cardiologist.key'), '--in', path('short.ct'), '--out', '-']);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /truncated/);
  });

  test('exit 2 for usage errors and malformed input, with one line and no stack trace', async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['abe', 'encrypt', '--public', pub(), '--policy', 'role:doctor and', '--in', path('record.bin'), '--out', path('x.ct')],
        /expected an attribute, a comparison, a threshold or '\(', found end of input at position 15/,
      ],
      [
        ['abe', 'encrypt', '--public', path('cardiologist.key'), '--policy', 'role:a', '--in', path('record.bin'), '--out', path('x.ct')],
        /expected a medshare abe public key, got a medshare abe user key/,
      ],
      [['abe', 'decrypt', '--public', pub(), '--key', path('cardiologist.key'), '--in', path('missing.ct'), '--out', '-'], /missing\.ct: no such file/],
      [
        ['abe', 'decrypt', '--public', pub(), '--key', path('cardiologist.key'), '--in', path('record.bin'), '--out', '-'],
        /not a MedShare abe ciphertext \(bad magic\)/,
      ],
      [
        ['abe', 'keygen', '--public', pub(), '--master', path('authority/abe-master.key'), '--attributes', 'level=1,level=2', '--out', path('bad.key')],
        /given more than one value/,
      ],
      [['abe', 'encrypt', '--public', pub(), '--in', path('record.bin'), '--out', path('x.ct')], /required option '--policy <policy>' not specified/],
      [
        ['abe', 'encrypt', '--public', pub(), '--policy', 'role:a', '--in', path('record.bin'), '--out', path('record.ct')],
        /record\.ct already exists \(use --force to overwrite\)/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });

  test('every abe command has --help', async () => {
    for (const command of ['setup', 'keygen', 'encrypt', 'decrypt']) {
      const r = await runCli(['abe', command, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`Usage: medshare abe ${command}`));
    }
  });
});
