/**
 * Versions of the FHIR resources a hospital's gateway wrote (https://hl7.org/fhir/R4/http.html#versioning): every
 * update that changes a resource is a new version, with its own record at the cloud; a delete is a tombstone
 * version. The gateway keeps, in its own database, only which record holds each version and a hash of its
 * content (to keep a retried identical write idempotent) — no clinical content. Readers rebuild the history from
 * the decrypted records themselves (sdk/fhir-view.ts), whose `meta` the gateway wrote into the ciphertext:
 * `versionId`, `lastUpdated`, `source` = urn:medshare:hospital:<code>, and a provenance tag naming the hospital.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { insertMany, type Database } from '@medshare/db';
import type { FhirResource } from './fhir.ts';
import type { Criteria } from './fhir-bundle.ts';
import { withoutSignature } from '../record-signature.ts';

/** `meta.tag` system naming the hospital that wrote a version (set by the gateway, bound into the ciphertext). */
export const PROVENANCE_SYSTEM = 'urn:medshare:provenance:hospital';
/** `meta.tag` of a tombstone: the version that deletes a resource. */
export const DELETED_TAG = { system: 'urn:medshare:fhir', code: 'deleted', display: 'deleted (tombstone)' } as const;

/** `meta.source` of what `hospital` wrote. */
export const sourceOf = (hospital: string): string => `urn:medshare:hospital:${hospital}`;

/** A stored version as the gateway's index knows it. */
export interface VersionRow {
  hospital: string;
  resourceType: string;
  fhirId: string;
  version: number;
  patient: string;
  recordId: string;
  category: string;
  contentHash: string;
  deleted: boolean;
  lastUpdated: string;
  /** The keywords the searchable index holds for this version, KEK-wrapped (search-index.ts); none when not indexed. */
  indexKeywords?: Uint8Array;
  /** The version's identifier tokens `system|value` (fhir-bundle.ts identifierTokens), for conditional creates. */
  identifiers?: readonly string[];
}

/** Digest under which the conditional-create index keeps an identifier token (no identifier in clear). */
const tokenDigest = (token: string) => createHash('sha256').update(`medshare/gateway-identifier/v1\n${token}`).digest('base64url');

type Meta = { versionId?: unknown; lastUpdated?: unknown; source?: unknown; tag?: Array<{ system?: unknown }>; [key: string]: unknown };

/** The resource without what the gateway sets itself (version, time, source, provenance tags, signature). */
function clientContent(resource: FhirResource): FhirResource {
  const { meta, ...rest } = withoutSignature(resource) as FhirResource & { meta?: Meta };
  if (meta === undefined) return rest as FhirResource;
  const { versionId: _v, lastUpdated: _l, source: _s, tag, ...otherMeta } = meta;
  const tags = (tag ?? []).filter((t) => t.system !== PROVENANCE_SYSTEM && t.system !== DELETED_TAG.system);
  const kept = { ...otherMeta, ...(tags.length > 0 ? { tag: tags } : {}) };
  return (Object.keys(kept).length > 0 ? { ...rest, meta: kept } : rest) as FhirResource;
}

/** Hash of a resource's content as the client sent it (canonical JSON, RFC 8785), ignoring what the gateway sets. */
export function contentHash(resource: FhirResource): string {
  return createHash('sha256')
    .update(canonicalize(clientContent(resource)) ?? '')
    .digest('base64url');
}

/** The version the gateway encrypts: the client's content with `meta` naming version, time and source hospital. */
export function versioned(resource: FhirResource, hospital: string, versionId: number, lastUpdated: string): FhirResource {
  const content = clientContent(resource) as FhirResource & { meta?: Meta };
  const tag = [...(content.meta?.tag ?? []), { system: PROVENANCE_SYSTEM, code: hospital }];
  return { ...content, meta: { ...content.meta, versionId: String(versionId), lastUpdated, source: sourceOf(hospital), tag } };
}

/** The tombstone version of a deleted resource. */
export function tombstone(resourceType: string, id: string, hospital: string, versionId: number, lastUpdated: string): FhirResource {
  return {
    resourceType,
    id,
    meta: { versionId: String(versionId), lastUpdated, source: sourceOf(hospital), tag: [{ system: PROVENANCE_SYSTEM, code: hospital }, DELETED_TAG] },
  };
}

/** Whether a decrypted version is a tombstone. */
export const isTombstone = (resource: FhirResource): boolean =>
  ((resource.meta as Meta | undefined)?.tag ?? []).some((t) => t.system === DELETED_TAG.system && (t as { code?: unknown }).code === DELETED_TAG.code);

const rowOf = (r: Record<string, unknown>): VersionRow => ({
  hospital: String(r.hospital),
  resourceType: String(r.resource_type),
  fhirId: String(r.fhir_id),
  version: Number(r.version),
  patient: String(r.patient),
  recordId: String(r.record_id),
  category: String(r.category),
  contentHash: String(r.content_hash),
  deleted: Boolean(r.deleted),
  lastUpdated: String(r.last_updated),
  ...(r.index_keywords instanceof Uint8Array ? { indexKeywords: r.index_keywords } : {}),
});

/** The gateway's version index (table gateway_versions). */
export class VersionStore {
  constructor(private readonly db: Database) {}

  /**
   * The latest version of each of `keys` (`Type/id`) the hospital wrote into the patient's record. A resource shared
   * by several patients' records (Synthea's Organization and Practitioner) has versions in each: every record is
   * encrypted for one patient.
   */
  async latest(hospital: string, patient: string, keys: ReadonlyArray<{ resourceType: string; id: string }>): Promise<Map<string, VersionRow>> {
    const found = new Map<string, VersionRow>();
    if (keys.length === 0) return found;
    const rows = await this.db.query<Record<string, unknown>>(
      `SELECT DISTINCT ON (v.resource_type, v.fhir_id) v.* FROM gateway_versions v
       JOIN unnest($3::text[], $4::text[]) AS k(resource_type, fhir_id) ON k.resource_type = v.resource_type AND k.fhir_id = v.fhir_id
       WHERE v.hospital = $1 AND v.patient = $2 ORDER BY v.resource_type, v.fhir_id, v.version DESC`,
      [hospital, patient, keys.map((k) => k.resourceType), keys.map((k) => k.id)],
    );
    for (const row of rows.rows.map(rowOf)) found.set(`${row.resourceType}/${row.fhirId}`, row);
    return found;
  }

  /** The patients into whose records the hospital wrote `resourceType/id` (what a delete without a resource concerns). */
  async patientsOf(hospital: string, resourceType: string, id: string): Promise<string[]> {
    const rows = await this.db.query<{ patient: string }>(
      'SELECT DISTINCT patient FROM gateway_versions WHERE hospital = $1 AND resource_type = $2 AND fhir_id = $3 ORDER BY patient',
      [hospital, resourceType, id],
    );
    return rows.rows.map((r) => r.patient);
  }

  /**
   * Current resources of `resourceType` that meet conditional-create criteria (every identifier token, and the
   * `_id`), in the patient's record or, without `patient`, in any record the hospital wrote (a Patient's own).
   * Answered from the gateway's index (gateway_identifiers, kept by `add`) and versions: never from the cloud.
   */
  async matching(hospital: string, resourceType: string, criteria: Criteria, patient?: string): Promise<Array<{ patient: string; id: string }>> {
    const rows =
      criteria.identifiers.length > 0
        ? await this.db.query<{ patient: string; fhir_id: string }>(
            `SELECT patient, fhir_id FROM gateway_identifiers
         WHERE hospital = $1 AND resource_type = $2 AND token = ANY($3::text[]) AND ($4::text IS NULL OR patient = $4) AND ($5::text IS NULL OR fhir_id = $5)
         GROUP BY patient, fhir_id HAVING count(DISTINCT token) = $6 ORDER BY patient, fhir_id`,
            [
              hospital,
              resourceType,
              [...new Set(criteria.identifiers)].map(tokenDigest),
              patient ?? null,
              criteria.id ?? null,
              new Set(criteria.identifiers).size,
            ],
          )
        : await this.db.query<{ patient: string; fhir_id: string }>(
            `SELECT patient, fhir_id FROM (SELECT DISTINCT ON (patient) patient, fhir_id, deleted FROM gateway_versions
           WHERE hospital = $1 AND resource_type = $2 AND fhir_id = $3 AND ($4::text IS NULL OR patient = $4) ORDER BY patient, version DESC) v
         WHERE NOT deleted ORDER BY patient`,
            [hospital, resourceType, criteria.id, patient ?? null],
          );
    return rows.rows.map((r) => ({ patient: r.patient, id: r.fhir_id }));
  }

  /**
   * Records new versions in one transaction (a version already recorded — a retry after a crash — is kept), with
   * the conditional-create index: each resource's identifiers are those of its newest version (none once deleted).
   */
  async add(rows: readonly VersionRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db.transaction(async (tx) => {
      await insertMany(
        tx,
        'gateway_versions (hospital, resource_type, fhir_id, version, patient, record_id, category, content_hash, deleted, last_updated, index_keywords)',
        rows.map((r) => [
          r.hospital,
          r.resourceType,
          r.fhirId,
          r.version,
          r.patient,
          r.recordId,
          r.category,
          r.contentHash,
          r.deleted,
          r.lastUpdated,
          r.indexKeywords ?? null,
        ]),
        'ON CONFLICT DO NOTHING',
      );
      // Each resource's identifier tokens are those of its newest version (the last of its rows here): the old ones go, in one statement.
      await tx.query(
        `DELETE FROM gateway_identifiers WHERE (hospital, patient, resource_type, fhir_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]))`,
        [rows.map((r) => r.hospital), rows.map((r) => r.patient), rows.map((r) => r.resourceType), rows.map((r) => r.fhirId)],
      );
      const newest = new Map(rows.map((r) => [`${r.hospital}|${r.patient}|${r.resourceType}|${r.fhirId}`, r]));
      for (const r of newest.values()) {
        const tokens = r.deleted ? [] : (r.identifiers ?? []);
        if (tokens.length > 0) {
          await tx.query(
            `INSERT INTO gateway_identifiers (hospital, resource_type, token, patient, fhir_id) SELECT $1, $2, t, $3, $4 FROM unnest($5::text[]) AS t ON CONFLICT DO NOTHING`,
            [r.hospital, r.resourceType, r.patient, r.fhirId, tokens.map(tokenDigest)],
          );
        }
      }
    });
  }
}
