/**
 * HMAC-SHA256 request signatures in the shape of HTTP Message Signatures (RFC 9421) with a
 * Content-Digest (RFC 9530). One fixed profile — no negotiation, so nothing to downgrade:
 *
 *   Content-Digest:  sha-256=:<base64 SHA-256 of the body>:
 *   Signature-Input: medshare=("@method" "@path" "@query" "content-digest");created=<unix s>;nonce="<n>";keyid="<session>";alg="hmac-sha256"
 *   Signature:       medshare=:<base64 HMAC-SHA256(session key, signature base)>:
 *
 * The signature base is built as RFC 9421 §2.5 specifies, one `"<component>": <value>` line per
 * covered component followed by the `"@signature-params"` line.
 */
import { createHash, createHmac } from 'node:crypto';
import { MalformedInputError } from '@medshare/crypto';

export const COVERED = '("@method" "@path" "@query" "content-digest")';
const INPUT =
  /^medshare=\("@method" "@path" "@query" "content-digest"\);created=(\d{1,12});nonce="([A-Za-z0-9_-]{16,64})";keyid="([A-Za-z0-9_-]{16,64})";alg="hmac-sha256"$/;
const SIGNATURE = /^medshare=:([A-Za-z0-9+/]{43}=):$/;
const DIGEST = /^sha-256=:([A-Za-z0-9+/]{43}=):$/;

/** The parts of a request that are signed. */
export interface SignedRequestParts {
  readonly method: string;
  readonly path: string; // without the query
  readonly query: string; // "?" plus the query, or "?" when there is none (RFC 9421 §2.2.7)
  readonly body: Uint8Array;
}

/** The parameters carried in Signature-Input. */
export interface SignatureParams {
  readonly created: number;
  readonly nonce: string;
  readonly keyId: string;
}

/** RFC 9530 Content-Digest value for a body. */
export function contentDigest(body: Uint8Array): string {
  return `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
}

/** The Signature-Input value. */
export function signatureInput(params: SignatureParams): string {
  return `medshare=${COVERED};created=${params.created};nonce="${params.nonce}";keyid="${params.keyId}";alg="hmac-sha256"`;
}

/** RFC 9421 signature base for the fixed profile. */
export function signatureBase(parts: SignedRequestParts, digest: string, params: SignatureParams): string {
  return [
    `"@method": ${parts.method.toUpperCase()}`,
    `"@path": ${parts.path}`,
    `"@query": ${parts.query}`,
    `"content-digest": ${digest}`,
    `"@signature-params": ${signatureInput(params).slice('medshare='.length)}`,
  ].join('\n');
}

/** HMAC-SHA256 of the signature base. */
export function computeSignature(key: Uint8Array, base: string): Buffer {
  return createHmac('sha256', key).update(base, 'utf8').digest();
}

/** Splits a request target into RFC 9421 @path and @query. */
export function splitTarget(url: string): { path: string; query: string } {
  const index = url.indexOf('?');
  return index < 0 ? { path: url, query: '?' } : { path: url.slice(0, index), query: url.slice(index) };
}

/** The three signature headers for a request. */
export function signRequest(key: Uint8Array, parts: SignedRequestParts, params: SignatureParams): Record<string, string> {
  const digest = contentDigest(parts.body);
  const signature = computeSignature(key, signatureBase(parts, digest, params)).toString('base64');
  return { 'content-digest': digest, 'signature-input': signatureInput(params), signature: `medshare=:${signature}:` };
}

/** Parses the signature headers strictly; MalformedInputError if any is missing or not the profile. */
export function parseSignatureHeaders(headers: Record<string, string | string[] | undefined>): { params: SignatureParams; signature: Buffer; digest: string } {
  const one = (name: string) => {
    const value = headers[name];
    if (typeof value !== 'string') throw new MalformedInputError(`missing or repeated ${name} header`);
    return value;
  };
  const input = INPUT.exec(one('signature-input'));
  const signature = SIGNATURE.exec(one('signature'));
  const digest = one('content-digest');
  if (!input || !signature || !DIGEST.test(digest)) throw new MalformedInputError('signature headers do not follow the medshare hmac-sha256 profile');
  return { params: { created: Number(input[1]), nonce: input[2]!, keyId: input[3]! }, signature: Buffer.from(signature[1]!, 'base64'), digest };
}
