import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { IntegrityError, MalformedInputError, UnsupportedError } from '@medshare/crypto';
import { KEK_ENV, keyEncryptionKeyFromBytes, loadKeyEncryptionKey, randomKeyEncryptionKey } from '../src/index.ts';

describe('key-encryption key', () => {
  test('wrap then unwrap returns the secret for random secrets and contexts, and the ciphertext does not contain it', async () => {
    const kek = randomKeyEncryptionKey();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 16, maxLength: 200 }), fc.string(), async (secret, context) => {
        const wrapped = await kek.wrap(secret, context);
        assert.deepEqual(await kek.unwrap(wrapped, context), secret);
        assert.equal(Buffer.from(wrapped).includes(Buffer.from(secret)), false);
      }),
      { numRuns: 100 },
    );
  });

  test('a wrapped secret moved to another context, altered in any byte, or truncated does not unwrap', async () => {
    const kek = randomKeyEncryptionKey();
    const wrapped = await kek.wrap(new Uint8Array(32).fill(7), 'identity/totp/1');
    await assert.rejects(kek.unwrap(wrapped, 'identity/totp/2'), IntegrityError);
    for (let i = 0; i < wrapped.length; i++) {
      const altered = wrapped.slice();
      altered[i]! ^= 0x01;
      await assert.rejects(kek.unwrap(altered, 'identity/totp/1'), (e: unknown) => e instanceof IntegrityError || e instanceof UnsupportedError);
    }
    for (const length of [0, 1, 20, 36]) await assert.rejects(kek.unwrap(wrapped.subarray(0, length), 'identity/totp/1'), MalformedInputError);
  });

  test('another KEK is named as the cause', async () => {
    const wrapped = await randomKeyEncryptionKey().wrap(new Uint8Array([1, 2, 3]), 'c');
    await assert.rejects(randomKeyEncryptionKey().unwrap(wrapped, 'c'), /another key-encryption key/);
  });

  test('the file loader creates a 0600 key, reloads the same key, refuses an open mode and bad text; the environment wins', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kek-'));
    try {
      const file = join(dir, 'kek');
      assert.throws(() => loadKeyEncryptionKey({ file, env: {} }), MalformedInputError);
      const first = loadKeyEncryptionKey({ file, create: true, env: {} });
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const again = loadKeyEncryptionKey({ file, env: {} });
      assert.equal(again.id, first.id);
      assert.deepEqual(await again.unwrap(await first.wrap(new Uint8Array([9]), 'x'), 'x'), new Uint8Array([9]));
      chmodSync(file, 0o644);
      assert.throws(() => loadKeyEncryptionKey({ file, env: {} }), /readable by group or others/);
      const key = Buffer.alloc(32, 5);
      const fromEnv = loadKeyEncryptionKey({ file, env: { [KEK_ENV]: key.toString('base64url') } });
      assert.equal(fromEnv.id, keyEncryptionKeyFromBytes(key).id);
      assert.throws(() => loadKeyEncryptionKey({ env: { [KEK_ENV]: 'too-short' } }), MalformedInputError);
      assert.notEqual(readFileSync(file, 'utf8').trim(), key.toString('base64url'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
