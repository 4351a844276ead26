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
 *   GET /fhir/:patient/Patient/:id/:type               Patient compartment search: the search above, limited to
 *                                                      resources about Patient/:id (subject, patient, beneficiary)
 *   GET /fhir/:patient/Patient/:id/$everything         every resource of her record the reader may read that is
 *                                                      Patient/:id or about her, across the categories (those the
 *                                                      reader was not given are skipped)
 *
 * `:patient` is the patient's pseudonym; the base URL of one patient is `baseUrl(patient)`. Provenance: a version is
 * served only if its signature (record-signature.ts) verifies under the key of the hospital its `meta.source` names,
 * taken from the reader's own hospital's federation list (DoctorClient.writerKeys), and, for records read by id, that
 * hospital's tag is the record id's; it is served with a VERIFIED_SYSTEM tag naming that hospital. Others are left
 * out with a warning in the searchset (a read of one is a 404). Unsigned versions, written before signatures, are
 * left out too unless `FhirViewOptions.unsigned` is 'mark' (then served with the UNSIGNED_TAG).
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { DEFAULT_CATEGORY_MAPPING, type CategoryMapping, type FhirResource } from '../gateway/fhir.ts';
import { capabilityStatement, FhirHttpError, useFhirJson } from '../gateway/fhir-rest.ts';
import { isTombstone } from '../gateway/fhir-versions.ts';
import { isRecordOf } from '../record-id.ts';
import { sourceHospital, UNSIGNED_TAG, verifyRecord } from '../record-signature.ts';
import type { CheckpointVerifier } from '@medshare/ledger';
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
    name: 'patient',
    type: 'reference',
    documentation: 'the FHIR patient (Patient/<id> or <id>) the resource is about',
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
  /** The hospitals whose record signatures are accepted (default: DoctorClient.writerKeys, her hospital's list). */
  readonly writerKeys?: () => Promise<ReadonlyMap<string, CheckpointVerifier>>;
  /** Unsigned (pre-signature) versions: left out ('refuse', the default) or served marked unverified ('mark'). */
  readonly unsigned?: 'refuse' | 'mark';
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

/** A version the provenance check left out: its record id (or Type/id) and why. */
interface LeftOut {
  readonly label: string;
  readonly reason: string;
}

/**
 * The provenance check of decrypted versions (record-signature.ts) against the reader's writer keys, fetched at
 * first need and again when a version names a hospital not among them (a hospital that joined meanwhile).
 */
class Provenance {
  private keys: Promise<ReadonlyMap<string, CheckpointVerifier>> | undefined;
  /** Versions already verified (records never change), by patient, category and record id. */
  private readonly verified = new Map<string, FhirResource>();

  constructor(
    private readonly load: () => Promise<ReadonlyMap<string, CheckpointVerifier>>,
    private readonly unsigned: 'refuse' | 'mark',
  ) {}

  private trusted(refresh: boolean): Promise<ReadonlyMap<string, CheckpointVerifier>> {
    if (refresh || this.keys === undefined) {
      const loading = this.load();
      this.keys = loading;
      loading.catch(() => {
        if (this.keys === loading) this.keys = undefined;
      });
    }
    return this.keys;
  }

  /** The versions that pass (as served: verified tag, no signature) and those left out. `recordId`: read by id. */
  async check(
    patient: string,
    category: string,
    found: ReadonlyArray<{ recordId?: string; resource: FhirResource }>,
  ): Promise<{ kept: Array<{ recordId?: string; resource: FhirResource }>; leftOut: LeftOut[] }> {
    let keys = await this.trusted(false);
    if (
      found.some((f) => {
        const h = sourceHospital(f.resource);
        return h !== undefined && !keys.has(h);
      })
    )
      keys = await this.trusted(true);
    const kept: Array<{ recordId?: string; resource: FhirResource }> = [];
    const leftOut: LeftOut[] = [];
    for (const { recordId, resource } of found) {
      const label = recordId ?? `${resource.resourceType}/${resource.id}`;
      const cacheKey = recordId === undefined ? undefined : `${patient}|${category}|${recordId}`;
      const cached = cacheKey === undefined ? undefined : this.verified.get(cacheKey);
      if (cached !== undefined) {
        kept.push({ recordId, resource: cached });
        continue;
      }
      const hospital = sourceHospital(resource);
      if (recordId !== undefined && (hospital === undefined || !isRecordOf(recordId, hospital))) {
        leftOut.push({ label, reason: 'meta.source does not name the hospital of the record id' });
        continue;
      }
      const provenance = verifyRecord(keys, resource, { patient, category });
      if (provenance.status === 'verified') {
        if (cacheKey !== undefined) this.verified.set(cacheKey, provenance.resource);
        kept.push({ recordId, resource: provenance.resource });
      } else if (provenance.status === 'unsigned' && this.unsigned === 'mark') {
        const meta = (resource.meta ?? {}) as { tag?: unknown[] };
        kept.push({ recordId, resource: { ...resource, meta: { ...meta, tag: [...(meta.tag ?? []), UNSIGNED_TAG] } } });
      } else {
        leftOut.push({
          label,
          reason:
            provenance.status === 'unsigned'
              ? "unsigned (written before record signatures; FhirViewOptions.unsigned 'mark' serves such records marked unverified)"
              : provenance.reason,
        });
      }
    }
    return { kept, leftOut };
  }
}

/** The decrypted records of one reader, by record id (records are immutable). */
class DecryptedRecords {
  private readonly byId = new Map<string, FhirResource>();

  constructor(
    private readonly doctor: DoctorClient,
    private readonly provenance: Provenance,
  ) {}

  /** Every record of the patient's category this reader may read, with the ones failing the provenance check apart. */
  async category(patient: string, category: string): Promise<{ versions: Version[]; leftOut: LeftOut[] }> {
    const listed = await this.doctor.search(patient, category);
    const missing = listed.map((r) => r.recordId).filter((id) => !this.byId.has(id));
    for (let i = 0; i < missing.length; i += 1000) {
      for (const { recordId, resource } of await this.doctor.readRecords(patient, category, missing.slice(i, i + 1000))) this.byId.set(recordId, resource);
    }
    const found = listed.flatMap(({ recordId }) => {
      const resource = this.byId.get(recordId);
      return resource === undefined ? [] : [{ recordId, resource }];
    });
    const { kept, leftOut } = await this.provenance.check(patient, category, found);
    return { versions: kept.map(({ recordId, resource }) => ({ recordId: recordId!, resource, version: versionOf(resource) })), leftOut };
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
    if (seen === undefined || versionOf(r) > versionOf(seen) || (versionOf(r) === versionOf(seen) && lastUpdatedOf(r) > lastUpdatedOf(seen)))
      newest.set(key, r);
  }
  return [...newest.values()];
}

/** A searchset Bundle of `matches`, with a warning entry naming the records left out by the provenance check, by reason. */
function searchset(matches: readonly FhirResource[], leftOut: readonly LeftOut[]): Record<string, unknown> {
  const byReason = new Map<string, string[]>();
  for (const { label, reason } of leftOut) byReason.set(reason, [...(byReason.get(reason) ?? []), label]);
  const warnings =
    leftOut.length === 0
      ? []
      : [
          {
            resource: {
              resourceType: 'OperationOutcome',
              issue: [...byReason].map(([reason, labels]) => ({
                severity: 'warning',
                code: 'security',
                diagnostics: `${labels.length} record(s) left out: ${reason} (${labels.slice(0, 5).join(', ')})`,
              })),
            },
            search: { mode: 'outcome' },
          },
        ];
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: matches.length,
    entry: [...matches.map((resource) => ({ fullUrl: `${resource.resourceType}/${resource.id}`, resource, search: { mode: 'match' } })), ...warnings],
  };
}

/** Starts a reader's FHIR view on 127.0.0.1 (an ephemeral port unless `options.port`). */
export async function startFhirView(doctor: DoctorClient, options: FhirViewOptions = {}): Promise<FhirView> {
  const mapping = options.mapping ?? DEFAULT_CATEGORY_MAPPING;
  const parameters = new Map((options.searchParameters ?? DEFAULT_SEARCH_PARAMETERS).map((p) => [p.name, p]));
  const provenance = new Provenance(options.writerKeys ?? (() => doctor.writerKeys()), options.unsigned ?? 'refuse');
  const records = new DecryptedRecords(doctor, provenance);
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
  const load = (patient: string, type: string) =>
    fromPlatform(patient, type, async () => {
      const { versions, leftOut } = await records.category(patient, categoryOf(type));
      return { histories: histories(versions, type), leftOut };
    });
  /** The decrypted versions the encrypted index finds for `query` (already checked against it exactly), provenance checked. */
  const indexSearch = (patient: string, type: string, query: URLSearchParams) =>
    fromPlatform(patient, type, async () => {
      const { bundle } = await doctor.searchFhir(patient, type, query, { categories: mapping });
      const { kept, leftOut } = await provenance.check(patient, categoryOf(type), bundle.entry as Array<{ resource: FhirResource }>);
      return { found: kept.map((k) => k.resource), leftOut };
    });
  /** A type search (index-backed or on the decrypted category), with `also` ANDed (a compartment's patient). */
  const searchType = async (patient: string, type: string, query: Record<string, string | string[]>, also: (r: FhirResource) => boolean = () => true) => {
    const search = parseViewSearch(type, query, parameters);
    const matches = (r: FhirResource) => !isTombstone(r) && also(r) && search.local.every(([p, values]) => values.some((v) => p.matches(r, v)));
    if (search.index !== undefined) {
      const { found, leftOut } = await indexSearch(patient, type, search.index);
      return searchset(latestMatches(found).filter(matches), leftOut);
    }
    const { histories: found, leftOut } = await load(patient, type);
    return searchset([...found.values()].map((h) => h.at(-1)!.resource).filter(matches), leftOut);
  };
  const inCompartment = (id: string) => (r: FhirResource) => parameters.get('patient')?.matches(r, id) ?? DEFAULT_SEARCH_PARAMETERS[1]!.matches(r, id);
  /** Patient/:id and every current resource about her, across the categories the reader was given. */
  const everything = (patient: string, id: string) =>
    fromPlatform(patient, 'Patient', async () => {
      const matches: FhirResource[] = [];
      const leftOut: LeftOut[] = [];
      for (const category of new Set([...Object.values(mapping.byType), mapping.fallback])) {
        let found: Awaited<ReturnType<DecryptedRecords['category']>>;
        try {
          found = await records.category(patient, category);
        } catch (error) {
          // A category she did not delegate to this reader is not part of what the reader may read.
          if (error instanceof HttpProblemError && (error.status === 403 || error.status === 404)) continue;
          throw error;
        }
        leftOut.push(...found.leftOut);
        const types = new Set(found.versions.map((v) => v.resource.resourceType));
        for (const type of types) {
          for (const history of histories(found.versions, type).values()) {
            const latest = history.at(-1)!.resource;
            if (!isTombstone(latest) && inCompartment(id)(latest)) matches.push(latest);
          }
        }
      }
      return searchset(matches, leftOut);
    });
  const historyOf = async (request: FastifyRequest<{ Params: { patient: string; type: string; id: string } }>) => {
    const { patient, type, id } = request.params;
    const history = (await load(patient, type)).histories.get(id);
    if (history === undefined) throw new FhirHttpError(404, `${type}/${id} is not among the records you may read`);
    return history;
  };

  await app.register(
    async (scope) => {
      useFhirJson(scope, 1024);
      scope.get('/metadata', async () =>
        capabilityStatement({
          name: 'MedShareReaderView',
          description: "A MedShare reader's FHIR view: records decrypted on the reader's device with her own CP-ABE key",
          url: '/fhir/<patient>',
          interactions: ['read', 'vread', 'history-instance', 'search-type'],
          system: [],
          operations: [{ name: 'everything', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything' }],
          searchParams: [...parameters.values(), ...INDEX_SEARCH_PARAMETERS].map(({ name, type, documentation }) => ({ name, type, documentation })),
        }),
      );

      scope.get<{ Params: { patient: string; type: string; id: string } }>('/:type/:id', async (request, reply) => {
        const latest = (await historyOf(request)).at(-1)!;
        if (isTombstone(latest.resource)) throw new FhirHttpError(410, `${request.params.type}/${request.params.id} was deleted (version ${latest.version})`);
        return reply
          .header('etag', `W/"${latest.version}"`)
          .header('last-modified', new Date(lastUpdatedOf(latest.resource)).toUTCString())
          .send(latest.resource);
      });

      scope.get<{ Params: { patient: string; type: string; id: string; vid: string } }>('/:type/:id/_history/:vid', async (request, reply) => {
        const found = (await historyOf(request)).filter((v) => String(v.version) === request.params.vid).at(-1);
        if (found === undefined) throw new FhirHttpError(404, `${request.params.type}/${request.params.id} has no version ${request.params.vid}`);
        if (isTombstone(found.resource))
          throw new FhirHttpError(410, `version ${found.version} of ${request.params.type}/${request.params.id} is its deletion`);
        return reply.header('etag', `W/"${found.version}"`).send(found.resource);
      });

      scope.get<{ Params: { patient: string; type: string; id: string } }>('/:type/:id/_history', async (request) => {
        const history = [...(await historyOf(request))].reverse();
        return {
          resourceType: 'Bundle',
          type: 'history',
          total: history.length,
          entry: history.map((v, i) => {
            const deleted = isTombstone(v.resource);
            const method = deleted ? 'DELETE' : i === history.length - 1 ? 'POST' : 'PUT';
            const url = `${v.resource.resourceType}/${v.resource.id}`;
            return {
              fullUrl: `${url}/_history/${v.version}`,
              ...(deleted ? {} : { resource: v.resource }),
              request: { method, url: method === 'POST' ? v.resource.resourceType : url },
              response: {
                status: deleted ? '204' : i === history.length - 1 ? '201' : '200',
                etag: `W/"${v.version}"`,
                lastModified: lastUpdatedOf(v.resource),
              },
            };
          }),
        };
      });

      scope.get<{ Params: { patient: string; type: string }; Querystring: Record<string, string | string[]> }>('/:type', async (request) =>
        searchType(request.params.patient, request.params.type, request.query),
      );

      // Patient compartment (`_history` has its own route above, which a static segment wins).
      scope.get<{ Params: { patient: string; type: string; id: string; compartment: string }; Querystring: Record<string, string | string[]> }>(
        '/:type/:id/:compartment',
        async (request) => {
          const { patient, type, id, compartment } = request.params;
          if (type !== 'Patient')
            throw new FhirHttpError(
              404,
              `no compartment of ${type} here: the view serves the Patient compartment (Patient/<id>/<type>, Patient/<id>/$everything)`,
            );
          if (compartment === '$everything') {
            const { _format: _f, ...rest } = request.query;
            const unknown = Object.keys(rest)[0];
            if (unknown !== undefined) throw new FhirHttpError(400, `$everything takes no parameter here ('${unknown}')`);
            return everything(patient, id);
          }
          return searchType(patient, compartment, request.query, inCompartment(id));
        },
      );
    },
    { prefix: '/fhir/:patient' },
  );

  const address = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  return {
    app,
    baseUrl: (patient) => `${address}/fhir/${patient}`,
    close: () => app.close(),
  };
}
