import { curve as c } from '@medshare/crypto';
import * as mcl from 'mcl-wasm';
await c.initCurve();
const g = c.g1Generator();
console.log(Buffer.from(c.g1ToBytesUncompressed(g)).toString('hex').slice(0,20));
console.log(Buffer.from(c.g1ToBytesUncompressed(mcl.normalize(g))).toString('hex').slice(0,20));
console.log(Buffer.from(c.g1ToBytesUncompressed(c.g1Mul(g, c.frFromBigInt(1n)))).toString('hex').slice(0,20));
console.log(g.getStr(16).slice(0,30));
