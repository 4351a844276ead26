/**
 * `node:buffer` in the browser bundle: `Buffer` (the `buffer` package, as globals.ts teaches it base64url) and
 * `isUtf8`, by the browser's own strict UTF-8 decoder (TextDecoder with `fatal`).
 */
export { Buffer } from 'buffer';

/** node:buffer's isUtf8: true when `input` is well-formed UTF-8. */
export function isUtf8(input: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(input);
    return true;
  } catch {
    return false;
  }
}
