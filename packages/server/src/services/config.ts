/**
 * The deployment's config file: where each service is, so that services in different domains find each other.
 * Every service reads the same file; flags (`--cloud-url`, `--authority-url`, `--hospital-url name=url`) override it.
 *
 *   {
 *     "authority": { "url": "https://ta.example.org:8443/" },
 *     "cloud":     { "url": "https://cloud.example.org/", "logKey": "medshare.cloud/audit+…" },
 *     "hospitals": [
 *       { "name": "st-marys", "url": "https://medshare.st-marys.example/" },
 *       { "name": "riverside", "url": "https://riverside.example/",
 *         "issuer": "urn:medshare:idp:riverside",
 *         "jwks": "https://riverside.example/identity/riverside/.well-known/jwks.json",
 *         "sessionStatus": "https://riverside.example/identity/riverside/",
 *         "witnessKey": "riverside.medshare/witness+…",
 *         "recordKey": "riverside.medshare/records+…" }
 *     ]
 *   }
 *
 * The hospitals listed are the trust list of the cloud and the authority: their tokens are accepted, verified
 * against their JWKS, with sessions checked at their session-status route. `logKey` and `witnessKey` pin the ledger's
 * and a witness's public key (c2sp.org signed-note vkeys); without them each service fetches the other's key
 * once and pins it in its own database (ledger.ts). `recordKey` pins a hospital's record-signing key, which a
 * hospital lists to its readers (record-signature.ts); without it, fetched from that hospital once and pinned.
 */
import { MalformedInputError } from '@medshare/crypto';
import { checkHospitalName, type HospitalPeer } from './trust.ts';

/** A parsed config file. */
export interface DeploymentConfig {
  readonly authority?: { readonly url: URL };
  readonly cloud?: { readonly url: URL; readonly logKey?: string };
  readonly hospitals: readonly HospitalPeer[];
}

function url(value: unknown, where: string): URL {
  if (typeof value !== 'string') throw new MalformedInputError(`${where} must be a URL string`);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new MalformedInputError(`${where} is not a URL: ${value.slice(0, 100)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new MalformedInputError(`${where} must be http(s)`);
  return parsed;
}

function only(value: object, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(value)) if (!allowed.includes(key)) throw new MalformedInputError(`${where}: unknown field '${key}'`);
}

function vkey(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > 512 || !/^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+={0,2}$/.test(value)) {
    throw new MalformedInputError(`${where} must be a signed-note verifier key (name+id+key)`);
  }
  return value;
}

function service(value: unknown, where: string, keys: readonly string[] = []): { url: URL; logKey?: string } | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) throw new MalformedInputError(`${where} must be an object with a url`);
  only(value, ['url', ...keys], where);
  const logKey = vkey((value as { logKey?: unknown }).logKey, `${where}.logKey`);
  return { url: url((value as { url?: unknown }).url, `${where}.url`), ...(logKey === undefined ? {} : { logKey }) };
}

/** Parses and checks a config file's text (JSON); unknown fields are refused, so a misspelling is heard of. */
export function parseDeploymentConfig(text: string): DeploymentConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new MalformedInputError('the config file is not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new MalformedInputError('the config file must hold a JSON object');
  only(raw, ['authority', 'cloud', 'hospitals'], 'config');
  const { authority, cloud, hospitals = [] } = raw as { authority?: unknown; cloud?: unknown; hospitals?: unknown };
  if (!Array.isArray(hospitals)) throw new MalformedInputError('config.hospitals must be a list');
  const names = new Set<string>();
  const peers = hospitals.map((entry: unknown, i): HospitalPeer => {
    const where = `config.hospitals[${i}]`;
    if (typeof entry !== 'object' || entry === null) throw new MalformedInputError(`${where} must be an object`);
    only(entry, ['name', 'url', 'issuer', 'jwks', 'sessionStatus', 'witnessKey', 'recordKey'], where);
    const e = entry as Record<string, unknown>;
    if (typeof e['name'] !== 'string') throw new MalformedInputError(`${where}.name must be a string`);
    const name = checkHospitalName(e['name']);
    if (names.has(name)) throw new MalformedInputError(`${where}: hospital '${name}' is listed twice`);
    names.add(name);
    if (e['issuer'] !== undefined && (typeof e['issuer'] !== 'string' || e['issuer'].length > 256))
      throw new MalformedInputError(`${where}.issuer must be a string`);
    return {
      name,
      url: url(e['url'], `${where}.url`),
      ...(e['issuer'] === undefined ? {} : { issuer: e['issuer'] as string }),
      ...(e['jwks'] === undefined ? {} : { jwks: url(e['jwks'], `${where}.jwks`) }),
      ...(e['sessionStatus'] === undefined ? {} : { sessionStatus: url(e['sessionStatus'], `${where}.sessionStatus`) }),
      ...(e['witnessKey'] === undefined ? {} : { witnessKey: vkey(e['witnessKey'], `${where}.witnessKey`)! }),
      ...(e['recordKey'] === undefined ? {} : { recordKey: vkey(e['recordKey'], `${where}.recordKey`)! }),
    };
  });
  const authorityService = service(authority, 'config.authority');
  const cloudService = service(cloud, 'config.cloud', ['logKey']);
  return {
    ...(authorityService === undefined ? {} : { authority: { url: authorityService.url } }),
    ...(cloudService === undefined ? {} : { cloud: cloudService }),
    hospitals: peers,
  };
}

/** The config file of a set of URLs (what `medshare demo` writes for its processes). */
export function formatDeploymentConfig(config: DeploymentConfig): string {
  const text = (u: URL | string) => (u instanceof URL ? u.href : u);
  return `${JSON.stringify(
    {
      ...(config.authority ? { authority: { url: text(config.authority.url) } } : {}),
      ...(config.cloud ? { cloud: { url: text(config.cloud.url), ...(config.cloud.logKey ? { logKey: config.cloud.logKey } : {}) } } : {}),
      hospitals: config.hospitals.map((h) => ({
        name: h.name,
        url: text(h.url),
        ...(h.issuer ? { issuer: h.issuer } : {}),
        ...(h.jwks ? { jwks: text(h.jwks) } : {}),
        ...(h.sessionStatus ? { sessionStatus: text(h.sessionStatus) } : {}),
        ...(h.witnessKey ? { witnessKey: h.witnessKey } : {}),
        ...(h.recordKey ? { recordKey: h.recordKey } : {}),
      })),
    },
    null,
    2,
  )}\n`;
}
