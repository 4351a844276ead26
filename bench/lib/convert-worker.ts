/** Worker side of the batch-conversion benchmark: converts the record headers it is sent with one key. */
import { parentPort, workerData } from 'node:worker_threads';
import { abe, pre } from '@medshare/crypto';

await abe.init();
const rk = pre.decodeReEncryptionKey(workerData.rk as Uint8Array);
parentPort!.on('message', (headers: Uint8Array[]) => {
  parentPort!.postMessage(headers.map((h) => pre.convertHeader(rk, pre.openRecordHeader(h))));
});
