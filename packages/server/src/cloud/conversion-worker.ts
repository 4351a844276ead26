/** A conversion worker of the cloud's ConversionPool (conversion-pool.ts): converts the records it is sent. */
import { parentPort } from 'node:worker_threads';
import { abe, MedShareError, pre } from '@medshare/crypto';
import { KeyCache, type WorkerReply, type WorkerRequest } from './conversion-pool.ts';

const port = parentPort!;
await abe.init();
const keys = new KeyCache();
port.on('message', (request: WorkerRequest) => {
  if ('forget' in request) return keys.forget(request.forget);
  let reply: WorkerReply;
  let moved: ArrayBuffer[] = [];
  try {
    const rk = keys.get(request.key);
    // Exact copies, moved back without a second copy (a small conversion may sit in a shared Buffer slab).
    const ciphertexts = request.ciphertexts.map((ct) => new Uint8Array(pre.convert(rk, ct)));
    reply = { id: request.id, ciphertexts };
    moved = ciphertexts.map((ct) => ct.buffer);
  } catch (error) {
    reply = { id: request.id, error: error instanceof MedShareError ? { code: error.code, message: error.message } : { message: String(error) } };
  }
  port.postMessage(reply, moved);
});
port.postMessage({ ready: true } satisfies WorkerReply);
