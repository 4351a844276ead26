/**
 * What a hospital vouches for: attributes in the CP-ABE attribute syntax of @medshare/crypto
 * (`role:doctor`, `dept:cardiology`, `level=3`), and SMART App Launch v1 and v2 scopes (smart-scopes.ts:
 * `user/Observation.read`, `user/Observation.rs?category=laboratory`, `patient/*.rs`).
 * Attributes are kept in one canonical text form so that the trusted authority can compare what a
 * user asks for with what the token vouches for by string equality.
 */
import { abe, MalformedInputError, LimitExceededError, parseAttributes } from '@medshare/crypto';
import { parseSmartScope } from './smart-scopes.ts';

const MAX_ATTRIBUTES = 64;
const MAX_SCOPES = 64;
const OIDC_SCOPES = new Set(['openid', 'fhirUser', 'profile', 'launch', 'launch/patient', 'offline_access']);

/** Canonical form of each attribute (via the crypto package's parser); rejects duplicates and bad syntax. */
export function canonicalAttributes(attributes: readonly string[]): string[] {
  if (attributes.length > MAX_ATTRIBUTES) throw new LimitExceededError(`at most ${MAX_ATTRIBUTES} attributes`);
  const canonical = attributes.map((text) => {
    const parsed = parseAttributes(String(text));
    if (parsed.length !== 1) throw new MalformedInputError('each attribute must be a single name:value or name=number');
    return abe.formatAttributes(parsed);
  });
  const names = canonical.map((a) => a.split(/[:=]/, 1)[0]);
  const repeated = names.find((name, i) => names.indexOf(name) !== i && (name === 'hospital' || name === 'uid'));
  if (repeated) throw new MalformedInputError(`attribute ${repeated} is set by the hospital and cannot be given`);
  if (new Set(canonical).size !== canonical.length) throw new MalformedInputError('duplicate attribute');
  return canonical;
}

/** Validates SMART v1/v2 and OpenID scopes. */
export function checkScopes(scopes: readonly string[]): void {
  if (scopes.length > MAX_SCOPES) throw new LimitExceededError(`at most ${MAX_SCOPES} scopes`);
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !(OIDC_SCOPES.has(scope) || parseSmartScope(scope))) {
      throw new MalformedInputError(`not a SMART scope: ${String(scope).slice(0, 64)}`);
    }
  }
}

/** The scopes to grant: those requested that the user holds (all of them if none is requested). */
export function grantScopes(held: readonly string[], requested: readonly string[] | undefined): string[] {
  if (!requested || requested.length === 0) return [...held];
  checkScopes(requested);
  const granted = requested.filter((scope) => held.includes(scope));
  if (granted.length === 0) throw new MalformedInputError('none of the requested scopes is granted to this user');
  return granted;
}
