/**
 * A worker of ConversionPool (conversion-pool.ts): converts the record headers the cloud sends and checks the
 * storage tags of its uploads, or encrypts and tags the records a hospital gateway sends (each service starts its
 * own pool).
 */
import { parentPort } from 'node:worker_threads';
import { abe, MedShareError } from '@medshare/crypto';
import { verifyUploadedTags } from '../storage-audit/tags.ts';
import { convertStoredHeader, EncryptionInputs, KeyCache, type WorkerReply, type WorkerRequest } from './conversion-pool.ts';

const port = parentPort!;
await abe.init();
const keys = new KeyCache();
const inputs = new EncryptionInputs();
port.on('message', (request: WorkerRequest) => {
  if ('forget' in request) return keys.forget(request.forget);
  let reply: WorkerReply;
  let moved: ArrayBuffer[] = [];
  try {
    if ('encrypt' in request) {
      // Exact copies (a small ciphertext may sit in a shared Buffer slab), moved back without a second copy.
      const encrypted = inputs.encrypt(request.encrypt).map((r) => ({ ...r, ciphertext: new Uint8Array(r.ciphertext) }));
      reply = { id: request.id, encrypted };
      // Grants and tag sets are encoded into buffers of their own.
      moved = encrypted.flatMap((r) => [r.ciphertext.buffer, ...[r.grant, r.tags].flatMap((b) => (b === undefined ? [] : [b.buffer as ArrayBuffer]))]);
    } else if ('verifyTags' in request) {
      reply = { id: request.id, verified: verifyUploadedTags(request.verifyTags.files) };
    } else {
      const rk = keys.get(request.key);
      // Each converted header in a buffer of its own, moved back without a second copy.
      const headers = request.headers.map((header) => convertStoredHeader(rk, header));
      reply = { id: request.id, headers };
      moved = headers.map((header) => header.buffer as ArrayBuffer);
    }
  } catch (error) {
    reply = { id: request.id, error: error instanceof MedShareError ? { code: error.code, message: error.message } : { message: String(error) } };
  }
  port.postMessage(reply, moved);
});
port.postMessage({ ready: true } satisfies WorkerReply);
