/**
 * The browser's node:crypto shim (src/shims/node-crypto.ts, audited @noble primitives) against node:crypto itself
 * on random inputs: SHA-256/512, HMAC, HKDF, AES-256-GCM both ways (and a forged tag refused with no plaintext), Ed25519
 * keys from DER, signatures both ways, a flipped signature bit refused; node:buffer's isUtf8.
 */
import * as node from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as shim from '../src/shims/node-crypto.ts';

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });

test('hashes, HMAC and HKDF agree with node:crypto', () => {
  fc.assert(
    fc.property(bytes(0, 300), bytes(0, 40), bytes(0, 40), fc.integer({ min: 1, max: 96 }), (data, salt, info, length) => {
      for (const alg of ['sha256', 'sha512']) {
        assert.equal(shim.createHash(alg).update(data).update('x').digest('hex'), node.createHash(alg).update(data).update('x').digest('hex'));
        assert.equal(
          shim.createHmac(alg, salt).update(data).update(info).digest('base64'),
          node.createHmac(alg, salt).update(data).update(info).digest('base64'),
        );
      }
      assert.deepEqual(Buffer.from(shim.hkdfSync('sha256', data, salt, info, length)), Buffer.from(node.hkdfSync('sha256', data, salt, info, length)));
    }),
    { numRuns: 100 },
  );
});

test('AES-256-GCM agrees with node:crypto both ways; a forged tag yields nothing', () => {
  fc.assert(
    fc.property(bytes(32, 32), bytes(12, 12), bytes(0, 40), bytes(0, 500), (key, iv, aad, plaintext) => {
      const ours = shim.createCipheriv('aes-256-gcm', key, iv).setAAD(aad);
      const body = Buffer.concat([ours.update(plaintext), ours.final()]);
      const theirs = node.createCipheriv('aes-256-gcm', key, iv).setAAD(aad);
      assert.deepEqual(body, Buffer.concat([theirs.update(plaintext), theirs.final()]));
      assert.deepEqual(ours.getAuthTag(), theirs.getAuthTag());
      const opened = shim.createDecipheriv('aes-256-gcm', key, iv).setAAD(aad).setAuthTag(theirs.getAuthTag());
      assert.deepEqual(Buffer.concat([opened.update(body), opened.final()]), Buffer.from(plaintext));
      const forged = Buffer.from(theirs.getAuthTag());
      forged[0]! ^= 1;
      const refused = shim.createDecipheriv('aes-256-gcm', key, iv).setAAD(aad).setAuthTag(forged);
      assert.equal(refused.update(body).length, 0);
      assert.throws(() => refused.final(), /unable to authenticate/);
    }),
    { numRuns: 100 },
  );
});

test('Ed25519 from DER: the same public key, signatures verify both ways, a flipped bit is refused', () => {
  fc.assert(
    fc.property(bytes(32, 32), bytes(0, 200), (seed, message) => {
      const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
      const ours = shim.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
      const theirs = node.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
      const spki = shim.createPublicKey(ours).export({ format: 'der', type: 'spki' });
      assert.deepEqual(spki, node.createPublicKey(theirs).export({ format: 'der', type: 'spki' }));
      const signature = shim.sign(null, message, ours);
      assert.deepEqual(signature, node.sign(null, message, theirs));
      assert.ok(node.verify(null, message, node.createPublicKey(theirs), signature));
      const publicKey = shim.createPublicKey({ key: spki, format: 'der', type: 'spki' });
      assert.ok(shim.verify(null, message, publicKey, node.sign(null, message, theirs)));
      signature[5]! ^= 4;
      assert.equal(shim.verify(null, message, publicKey, signature), false);
    }),
    { numRuns: 50 },
  );
  assert.throws(() => shim.createPublicKey({ key: Buffer.alloc(44), format: 'der', type: 'spki' }), /not an Ed25519 DER key/);
  assert.throws(() => shim.createHash('md5'), /not available/);
});

test("the node:buffer shim's isUtf8 agrees with node:buffer", async () => {
  const { isUtf8 } = await import('node:buffer');
  const ours = await import('../src/shims/node-buffer.ts');
  fc.assert(
    fc.property(
      fc.oneof(
        bytes(0, 64),
        fc.string({ unit: 'grapheme' }).map((s) => new TextEncoder().encode(s)),
      ),
      (input) => {
        assert.equal(ours.isUtf8(input), isUtf8(input));
      },
    ),
    { numRuns: 300 },
  );
});
