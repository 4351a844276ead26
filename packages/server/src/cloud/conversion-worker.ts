/** A conversion worker of the cloud's ConversionPool (conversion-pool.ts): converts the record headers it is sent. */
import { parentPort } from 'node:worker_threads';
import { abe, MedShareError } from '@medshare/crypto';
import { convertStoredHeader, KeyCache, type WorkerReply, type WorkerRequest } from './conversion-pool.ts';

const port = parentPort!;
await abe.init();
const keys = new KeyCache();
port.on('message', (request: WorkerRequest) => {
  if ('forget' in request) return keys.forget(request.forget);
  let reply: WorkerReply;
  let moved: ArrayBuffer[] = [];
  try {
    const rk = keys.get(request.key);
    // Each converted header in a buffer of its own, moved back without a second copy.
    const headers = request.headers.map((header) => convertStoredHeader(rk, header));
    reply = { id: request.id, headers };
    moved = headers.map((header) => header.buffer as ArrayBuffer);
  } catch (error) {
    reply = { id: request.id, error: error instanceof MedShareError ? { code: error.code, message: error.message } : { message: String(error) } };
  }
  port.postMessage(reply, moved);
});
port.postMessage({ ready: true } satisfies WorkerReply);
