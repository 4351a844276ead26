import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './run-cli.ts';

test('--help lists the command tree and exits 0', async () => {
  const result = await runCli(['--help']);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /Usage: medshare/);
});

test('an unknown command is a usage error (exit 2) with a one-line message, no stack trace', async () => {
  const result = await runCli(['no-such-command']);
  assert.equal(result.code, 2);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
});
