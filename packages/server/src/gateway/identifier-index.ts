/**
 * Cross-hospital lookup of a patient by a business identifier (an MRN `system|value`, a national id): hospitals'
 * gateways index the identifiers of the Patient resources they write as HMAC-SHA-256 under the consortium's
 * identifier key, which every hospital holds and the cloud does not, so the cloud stores digests it cannot invert or
 * test guesses against. A doctor asks her own hospital's gateway (`GET /gateway/fhir/Patient?identifier=`), which
 * computes the digest; the cloud answers only patients who consented to being found (`PUT …/findable`).
 * The cloud does see which lookups hit the same digest (a deterministic index), and when.
 */
import { createHmac } from 'node:crypto';
import { MalformedInputError } from '@medshare/crypto';
import type { FhirResource } from './fhir.ts';

/** The consortium's identifier key: 32 bytes shared by the hospitals, never given to the cloud. */
export class IdentifierKey {
  private readonly key: Buffer;

  /** @throws MalformedInputError unless the key is 32 bytes. */
  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new MalformedInputError('the identifier key is 32 bytes');
    this.key = Buffer.from(key);
  }

  /** The digest of one identifier (`system|value`, the FHIR token form; an empty system is kept as such). */
  digest(system: string, value: string): string {
    return createHmac('sha256', this.key).update(`medshare/identifier/v1\n${system}\n${value}`).digest('base64url');
  }

  /** Digests of every identifier of a Patient resource (none for other resources). */
  digestsOf(resource: FhirResource): string[] {
    if (resource.resourceType !== 'Patient' || !Array.isArray(resource.identifier)) return [];
    return (resource.identifier as Array<{ system?: unknown; value?: unknown }>)
      .filter((i) => typeof i.value === 'string' && i.value !== '')
      .map((i) => this.digest(typeof i.system === 'string' ? i.system : '', i.value as string));
  }

  /** The digest of a search token `system|value` (a token without `|` has no system). */
  digestOfToken(token: string): string {
    const bar = token.indexOf('|');
    if (bar < 0) throw new MalformedInputError("identifier search needs system|value (a value alone would match any system's)");
    if (token.slice(bar + 1) === '') throw new MalformedInputError('identifier search needs a value');
    return this.digest(token.slice(0, bar), token.slice(bar + 1));
  }
}
