/**
 * The reader's FHIR view: a FHIR R4 read API that a reader's SDK serves on her own device (127.0.0.1 by default), so
 * that standard FHIR clients can read what she may read without any server holding her key. Each request fetches
 * the patient's converted records of the resource type's category from the cloud (only those not yet decrypted in
 * this view: records never change, every version is a record of its own), decrypts them here with her CP-ABE key
 * (DoctorClient), and answers from the decrypted versions:
 *
 *   GET /fhir/:patient/metadata                        CapabilityStatement
 *   GET /fhir/:patient/:type/:id                       read: the latest version (410 if it is a tombstone)
 *   GET /fhir/:patient/:type/:id/_history/:vid         vread
 *   GET /fhir/:patient/:type/:id/_history              history (newest first, tombstones as DELETE entries)
 *   GET /fhir/:patient/:type?patient=&_id=             search on the decrypted category (FhirViewOptions.searchParameters)
 *   GET /fhir/:patient/:type?code=&date=&status=       search from the encrypted index (fhir-search.ts): only the
 *                                                      matching records are fetched and decrypted, then ANDed
 *                                                      with any `_id`/`patient` filter
 *
 * `:patient` is the patient's pseudonym; the base URL of one patient is `baseUrl(patient)`. Provenance: a version is
 * served only if its `meta.source` names the hospital whose tag its record id carries (the cloud enforces the tag at
 * upload, the record id is bound into the ciphertext); others are left out with a warning in the searchset.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { DEFAULT_CATEGORY_MAPPING, type CategoryMapping, type FhirResource } from '../gateway/fhir.ts';
import { capabilityStatement, FhirHttpError, useFhirJson } from '../gateway/fhir-rest.ts';
import { isTombstone, sourceHospital } from '../gateway/fhir-versions.ts';
import { isRecordOf } from '../record-id.ts';
import { HttpProblemError } from '../http-client.ts';
import type { DoctorClient } from './client.ts';
import { INDEX_SEARCH_PARAMETERS, parseViewSearch } from './fhir-search.ts';

/**
 * A search parameter of the view that filters decrypted resources. The index-backed ones (`code`, `date`,
 * `status`, `_content`, `_text`) are not in this list: they narrow which records are fetched (fhir-search.ts).
 */
export interface SearchParameter {
  readonly name: string;
  readonly type: 'token' | 'reference' | 'date' | 'string';
  readonly documentation: string;
  /** Whether a decrypted resource matches one value of the parameter (comma-separated values are OR'ed). */
  matches(resource: FhirResource, value: string): boolean;
}

const referenceTo = (resource: FhirResource, field: string): unknown => (resource[field] as { reference?: unknown } | undefined)?.reference;

/** `_id` and `patient` (the FHIR patient's id or `Patient/<id>`, matched on subject/patient/beneficiary). */
export const DEFAULT_SEARCH_PARAMETERS: readonly SearchParameter[] = [
  { name: '_id', type: 'token', documentation: 'logical id', matches: (r, value) => r.id === value },
  {
    name: 'patient', type: 'reference', documentation: 'the FHIR patient (Patient/<id> or <id>) the resource is about',
    matches: (r, value) => {
      const wanted = value.startsWith('Patient/') ? value : `Patient/${value}`;
      if (r.resourceType === 'Patient') return `Patient/${r.id}` === wanted;
      return ['subject', 'patient', 'beneficiary'].some((f) => referenceTo(r, f) === wanted);
    },
  },
];

/** The view's settings. */
export interface FhirViewOptions {
  readonly mapping?: CategoryMapping;
  readonly searchParameters?: readonly SearchParameter[];
  readonly host?: string;
  readonly port?: number;
}

/** A running view. */
export interface FhirView {
  readonly app: FastifyInstance;
  /** The FHIR base URL of one patient (her pseudonym). */
  baseUrl(patient: string): string;
  close(): Promise<void>;
}

interface Version {
  recordId: string;
  resource: FhirResource;
  version: number;
}

/** One resource's versions, oldest first. */
type History = Version[];

const versionOf = (r: FhirResource) => Number((r.meta as { versionId?: unknown } | undefined)?.versionId ?? 0);
const lastUpdatedOf = (r: FhirResource) => String((r.meta as { lastUpdated?: unknown } | undefined)?.lastUpdated ?? '');

/** The decrypted records of one reader, by record id (records are immutable). */
class DecryptedRecords {
  private readonly byId = new Map<string, FhirResource>();

  constructor(private readonly doctor: DoctorClient) {}

  /** Every record of the patient's category this reader may read, with the ones failing the provenance check apart. */
  async category(patient: string, category: string): Promise<{ versions: Version[]; mislabelled: string[] }> {
    const listed = await this.doctor.search(patient, category);
    const missing = listed.map((r) => r.recordId).filter((id) => !this.byId.has(id));
    for (let i = 0; i < missing.length; i += 1000) {
      for (const { recordId, resource } of await this.doctor.readRecords(patient, category, missing.slice(i, i + 1000))) this.byId.set(recordId, resource);
    }
    const versions: Version[] = [];
    const mislabelled: string[] = [];
    for (const { recordId } of listed) {
      const resource = this.byId.get(recordId);
      if (resource === undefined) continue;
      const hospital = sourceHospital(resource);
      if (hospital === undefined || !isRecordOf(recordId, hospital)) mislabelled.push(recordId);
      else versions.push({ recordId, resource, version: versionOf(resource) });
    }
    return { versions, mislabelled };
  }
}

/** Groups versions by `Type/id`, oldest first (equal version numbers — a retried write — by lastUpdated). */
function histories(versions: readonly Version[], resourceType: string): Map<string, History> {
  const out = new Map<string, History>();
  for (const v of versions) {
    if (v.resource.resourceType !== resourceType) continue;
    const list = out.get(v.resource.id) ?? [];
    list.push(v);
    out.set(v.resource.id, list);
  }
  for (const list of out.values()) list.sort((a, b) => a.version - b.version || lastUpdatedOf(a.resource).localeCompare(lastUpdatedOf(b.resource)));
  return out;
}

/**
 * One version of each resource found by the index, the newest: the index holds current versions only (a new
 * version deletes its predecessor's entries), but a write retried with equal content may have stored two records
 * of one version number.
 */
function latestMatches(found: readonly FhirResource[]): FhirResource[] {
  const newest = new Map<string, FhirResource>();
  for (const r of found) {
    const key = `${r.resourceType}/${r.id}`;
    const seen = newest.get(key);
    if (seen === undefined || versionOf(r) > versionOf(seen) || (versionOf(r) === versionOf(seen) && lastUpdatedOf(r) > lastUpdatedOf(seen))) newest.set(key, r);
  }
  return [...newest.values()];
}

/** A searchset Bundle of `matches`, with a warning entry naming the records left out by the provenance check. */
function searchset(matches: readonly FhirResource[], mislabelled: readonly string[]): Record<string, unknown> {
  const warnings = mislabelled.length === 0 ? [] : [{
    resource: { resourceType: 'OperationOutcome', issue: [{ severity: 'warning', code: 'security', diagnostics: `${mislabelled.length} record(s) left out: meta.source does not name the hospital of the record id (${mislabelled.slice(0, 5).join(', ')})` }] },
    search: { mode: 'outcome' },
  }];
  return {
    resourceType: 'Bundle', type: 'searchset', total: matches.length,
    entry: [...matches.map((resource) => ({ fullUrl: `${resource.resourceType}/${resource.id}`, resource, search: { mode: 'match' } })), ...warnings],
  };
}

/** Starts a reader's FHIR view on 127.0.0.1 (an ephemeral port unless `options.port`). */
export async function startFhirView(doctor: DoctorClient, options: FhirViewOptions = {}): Promise<FhirView> {
  const mapping = options.mapping ?? DEFAULT_CATEGORY_MAPPING;
  const parameters = new Map((options.searchParameters ?? DEFAULT_SEARCH_PARAMETERS).map((p) => [p.name, p]));
  const records = new DecryptedRecords(doctor);
  const app = Fastify({ logger: false, routerOptions: { maxParamLength: 256 } });
  const categoryOf = (type: string) => mapping.byType[type] ?? mapping.fallback;

  /** `work` on a patient's records of a type, mapping the platform's problems to their HTTP status. */
  const fromPlatform = async <T>(patient: string, type: string, work: () => Promise<T>): Promise<T> => {
    if (!/^psn:[A-Za-z0-9_-]{16,86}$/.test(patient)) throw new FhirHttpError(400, 'the base names a patient by her pseudonym: /fhir/psn:<id>');
    if (!/^[A-Z][A-Za-z]{1,63}$/.test(type)) throw new FhirHttpError(400, `'${type}' is not a resource type`);
    try {
      return await work();
    } catch (error) {
      if (error instanceof HttpProblemError) throw new FhirHttpError(error.status, error.message);
      throw error;
    }
  };
  /** The histories of a type. */
  const load = (patient: string, type: string) => fromPlatform(patient, type, async () => {
    const { versions, mislabelled } = await records.category(patient, categoryOf(type));
    return { histories: histories(versions, type), mislabelled };
  });
  /** The decrypted versions the encrypted index finds for `query` (already checked against it exactly). */
  const indexSearch = (patient: string, type: string, query: URLSearchParams) => fromPlatform(patient, type, async () => {
    const { bundle } = await doctor.searchFhir(patient, type, query, { categories: mapping });
    return (bundle.entry as Array<{ resource: FhirResource }>).map((e) => e.resource);
  });
  const historyOf = async (request: FastifyRequest<{ Params: { patient: string; type: string; id: string } }>) => {
    const { patient, type, id } = request.params;
    const history = (await load(patient, type)).histories.get(id);
    if (history === undefined) throw new FhirHttpError(404, `${type}/${id} is not among the records you may read`);
    return history;
  };

  await app.register(async (scope) => {
    useFhirJson(scope, 1024);
    scope.get('/metadata', async () => capabilityStatement({
      name: 'MedShareReaderView',
      description: "A MedShare reader's FHIR view: records decrypted on the reader's device with her own CP-ABE key",
      url: '/fhir/<patient>',
      interactions: ['read', 'vread', 'history-instance', 'search-type'],
      system: [],
      searchParams: [...parameters.values(), ...INDEX_SEARCH_PARAMETERS].map(({ name, type, documentation }) => ({ name, type, documentation })),
    }));

    scope.get<{ Params: { patient: string; type: string; id: string } }>('/:type/:id', async (request, reply) => {
      const latest = (await historyOf(request)).at(-1)!;
      if (isTombstone(latest.resource)) throw new FhirHttpError(410, `${request.params.type}/${request.params.id} was deleted (version ${latest.version})`);
      return reply.header('etag', `W/"${latest.version}"`).header('last-modified', new Date(lastUpdatedOf(latest.resource)).toUTCString()).send(latest.resource);
    });

    scope.get<{ Params: { patient: string; type: string; id: string; vid: string } }>('/:type/:id/_history/:vid', async (request, reply) => {
      const found = (await historyOf(request)).filter((v) => String(v.version) === request.params.vid).at(-1);
      if (found === undefined) throw new FhirHttpError(404, `${request.params.type}/${request.params.id} has no version ${request.params.vid}`);
      if (isTombstone(found.resource)) throw new FhirHttpError(410, `version ${found.version} of ${request.params.type}/${request.params.id} is its deletion`);
      return reply.header('etag', `W/"${found.version}"`).send(found.resource);
    });

    scope.get<{ Params: { patient: string; type: string; id: string } }>('/:type/:id/_history', async (request) => {
      const history = [...(await historyOf(request))].reverse();
      return {
        resourceType: 'Bundle', type: 'history', total: history.length,
        entry: history.map((v, i) => {
          const deleted = isTombstone(v.resource);
          const method = deleted ? 'DELETE' : i === history.length - 1 ? 'POST' : 'PUT';
          const url = `${v.resource.resourceType}/${v.resource.id}`;
          return {
            fullUrl: `${url}/_history/${v.version}`,
            ...(deleted ? {} : { resource: v.resource }),
            request: { method, url: method === 'POST' ? v.resource.resourceType : url },
            response: { status: deleted ? '204' : i === history.length - 1 ? '201' : '200', etag: `W/"${v.version}"`, lastModified: lastUpdatedOf(v.resource) },
          };
        }),
      };
    });

    scope.get<{ Params: { patient: string; type: string }; Querystring: Record<string, string | string[]> }>('/:type', async (request) => {
      const { patient, type } = request.params;
      const search = parseViewSearch(type, request.query, parameters);
      const matchesLocal = (r: FhirResource) => !isTombstone(r) && search.local.every(([p, values]) => values.some((v) => p.matches(r, v)));
      if (search.index !== undefined) return searchset(latestMatches(await indexSearch(patient, type, search.index)).filter(matchesLocal), []);
      const { histories: found, mislabelled } = await load(patient, type);
      return searchset([...found.values()].map((h) => h.at(-1)!.resource).filter(matchesLocal), mislabelled);
    });
  }, { prefix: '/fhir/:patient' });

  const address = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  return {
    app,
    baseUrl: (patient) => `${address}/fhir/${patient}`,
    close: () => app.close(),
  };
}
