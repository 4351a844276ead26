import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { runCli, runOk, setupAuthority } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'medshare-pre-cli-'));
const path = (name: string) => join(dir, name);
const POLICY = '(role:doctor and dept:cardiology) or role:emergency';
const record = randomBytes(150_000);
/** The arguments of `medshare abe decrypt` of a converted record with a doctor's ABE key, to `out` (a path or `-`). */
const abeDecrypt = (key: string, input: string, out: string) => [
  'abe',
  'decrypt',
  '--public',
  path('authority/abe-public.key'),
  '--key',
  path(key),
  '--in',
  path(input),
  '--out',
  out,
];

before(async () => {
  await setupAuthority(dir);
  await runOk(['keys', 'patient', '--out', path('patient'), '--id', 'patient-42']);
  writeFileSync(path('lab.json'), record);
});

describe('medshare keys / pre', () => {
  test('the whole flow: hospital encrypts, patient reads, delegates lab, cloud converts, cardiologist reads', async () => {
    assert.equal(statSync(path('patient/patient.key')).mode & 0o777, 0o600);
    await runOk([
      'pre',
      'encrypt',
      '--to',
      path('patient/patient.pub'),
      '--category',
      'lab',
      '--record-id',
      'obs-1',
      '--in',
      path('lab.json'),
      '--out',
      path('lab.ct'),
    ]);
    await runOk(['pre', 'decrypt', '--key', path('patient/patient.key'), '--in', path('lab.ct'), '--out', path('lab.patient.json')]);
    assert.deepEqual(readFileSync(path('lab.patient.json')), record);
    await runOk([
      'pre',
      'delegate',
      '--key',
      path('patient/patient.key'),
      '--category',
      'lab',
      '--public',
      path('authority/abe-public.key'),
      '--policy',
      POLICY,
      '--out',
      path('lab.rk'),
    ]);
    await runOk(['pre', 'convert', '--rk', path('lab.rk'), '--in', path('lab.ct'), '--out', path('lab.abe.ct')]);
    await runOk(abeDecrypt('cardiologist.key', 'lab.abe.ct', path('lab.doctor.json')));
    assert.deepEqual(readFileSync(path('lab.doctor.json')), record);
  });

  test('exit 3: a dermatologist reading, and converting an imaging record with the lab key', async () => {
    const denied = await runCli(abeDecrypt('dermatologist.key', 'lab.abe.ct', path('derm.json')));
    assert.equal(denied.code, 3, denied.stderr);
    assert.equal(existsSync(path('derm.json')), false);
    await runOk(['pre', 'encrypt', '--to', path('patient/patient.pub'), '--category', 'imaging', '--in', path('lab.json'), '--out', path('img.ct')]);
    const wrong = await runCli(['pre', 'convert', '--rk', path('lab.rk'), '--in', path('img.ct'), '--out', path('img.abe.ct')]);
    assert.equal(wrong.code, 3);
    assert.equal(wrong.stderr, "medshare: the re-encryption key is for category 'lab', the record is 'imaging'\n");
  });

  test('a single record can be shared with --record; the grant converts nothing else', async () => {
    await runOk([
      'pre',
      'delegate',
      '--key',
      path('patient/patient.key'),
      '--record',
      path('img.ct'),
      '--public',
      path('authority/abe-public.key'),
      '--policy',
      'dept:dermatology',
      '--out',
      path('img.rk'),
    ]);
    await runOk(['pre', 'convert', '--rk', path('img.rk'), '--in', path('img.ct'), '--out', path('img.abe.ct')]);
    const r = await runCli(abeDecrypt('dermatologist.key', 'img.abe.ct', '-'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdoutBytes, record);
    await runOk(['pre', 'encrypt', '--to', path('patient/patient.pub'), '--category', 'imaging', '--in', path('lab.json'), '--out', path('img2.ct')]);
    assert.equal((await runCli(['pre', 'convert', '--rk', path('img.rk'), '--in', path('img2.ct'), '--out', '-'])).code, 3);
  });

  test('exit 4 for a tampered record at conversion or reading', async () => {
    const ct = readFileSync(path('lab.ct'));
    ct[40]! ^= 1;
    writeFileSync(path('bad.ct'), ct);
    const r = await runCli(['pre', 'convert', '--rk', path('lab.rk'), '--in', path('bad.ct'), '--out', path('bad.abe.ct')]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /checksum mismatch/);
  });

  test('rotation: the old delegation cannot convert records written under the new epoch', async () => {
    await runOk(['keys', 'rotate', '--key', path('patient/patient.key'), '--category', 'lab', '--out', path('patient2')]);
    await runOk(['pre', 'encrypt', '--to', path('patient2/patient.pub'), '--category', 'lab', '--in', path('lab.json'), '--out', path('lab2.ct')]);
    const r = await runCli(['pre', 'convert', '--rk', path('lab.rk'), '--in', path('lab2.ct'), '--out', '-']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /epoch 1, record epoch 2/);
    await runOk(['pre', 'decrypt', '--key', path('patient2/patient.key'), '--in', path('lab.ct'), '--out', '-']);
  });

  test('exit 2 for usage errors; every command has --help', async () => {
    const both = await runCli([
      'pre',
      'delegate',
      '--key',
      path('patient/patient.key'),
      '--public',
      path('authority/abe-public.key'),
      '--policy',
      'a:b',
      '--out',
      path('x.rk'),
    ]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exactly one of --category or --record/);
    const signer = await runCli([
      'pre',
      'encrypt',
      '--to',
      path('patient/patient.pub'),
      '--category',
      'lab',
      '--expect-signer',
      '00'.repeat(32),
      '--in',
      path('lab.json'),
      '--out',
      '-',
    ]);
    assert.equal(signer.code, 4);
    assert.match(signer.stderr, /signed by an unexpected key/);
    for (const command of [
      ['keys', 'patient'],
      ['keys', 'rotate'],
      ['pre', 'encrypt'],
      ['pre', 'decrypt'],
      ['pre', 'delegate'],
      ['pre', 'convert'],
    ]) {
      const r = await runCli([...command, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Usage: medshare/);
    }
  });
});
