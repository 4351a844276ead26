import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runCli } from './run-cli.ts';

const vector = (name: string) => fileURLToPath(new URL(`../../crypto/testdata/${name}`, import.meta.url));

test('inspect describes every kind of object from the pinned vectors, and prints no secret', async () => {
  const expectations: Array<[string, RegExp]> = [
    ['abe-public.key', /^type\s+abe public key .*\nauthority\s+[0-9a-f]{32}\n$/],
    ['abe-user.key', /type\s+abe user key \(format 2, BLS12-381\)[\s\S]*attributes\s+role:doctor, dept:cardiology, level=3\ncopies per attribute\s+8/],
    ['abe-ciphertext.bin', /policy\s+\(role:doctor and dept:cardiology and level >= 2\) or \(role:doctor and level >= 3\) or role:emergency\nrows\s+67/],
    ['patient.pub', /signing key\s+[0-9a-f]{64} \(signature valid\)[\s\S]*category lab\s+epoch 1, key id/],
    ['pre-record.ct', /category\s+lab \(epoch 1\)\nrecord\s+record-1/],
    ['lab.rk', /scope\s+the whole category[\s\S]*policy\s+\(role:doctor and dept:cardiology\) or role:emergency/],
    ['pre-record.abe.ct', /type\s+converted ciphertext/],
    ['patient.key', /categories\s+lab \(epoch 1\), imaging \(epoch 1\)/],
    ['abe-master.key', /secret\s+yes — keep it on the trusted authority only/],
  ];
  for (const [file, pattern] of expectations) {
    const r = await runCli(['inspect', vector(file)]);
    assert.equal(r.code, 0, `${file}: ${r.stderr}`);
    assert.match(r.stdout, pattern, file);
    // Secret objects print only identifiers and attributes, never anything key-sized.
    if (/^secret/m.test(r.stdout)) assert.doesNotMatch(r.stdout, /[A-Za-z0-9+/]{40,}/, `${file}: no key material`);
  }
});

test('inspect refuses a file that is not a MedShare object (exit 2, one line)', async () => {
  const r = await runCli(['inspect', fileURLToPath(import.meta.url)]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^medshare: .*inspect\.test\.ts: not a MedShare key or ciphertext\n$/);
});
