/**
 * FHIR R4 write interactions as the gateway processes them (https://hl7.org/fhir/R4/http.html): a transaction or
 * batch Bundle becomes a list of operations — `request.method` POST (create), PUT (update by id) or DELETE —
 * with server-assigned ids for creates and every `urn:uuid:` / full-URL reference and every conditional reference
 * (`Type?identifier=system|value`, `Type?_id=`) to an entry of the same Bundle rewritten to `Type/id`.
 *
 * Ids of creates: the UUID of an entry's `fullUrl` `urn:uuid:<uuid>` when it has one (a UUID the client minted
 * for this resource, so a retried Bundle maps to the same resources: Synthea's bundles are of this kind), else a
 * fresh random UUID. Entries without `request` (and `collection` Bundles) are updates of `resource.id` — the
 * gateway's upload of a whole exported record, kept for the SDK's `GatewayClient.upload`.
 */
import { randomUUID } from 'node:crypto';
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';
import { FHIR_ID, MAX_ENTRIES, type FhirResource } from './fhir.ts';

/** One write: create (POST), update (PUT) or delete (DELETE) of `resourceType/id`. */
export interface FhirOperation {
  readonly method: 'POST' | 'PUT' | 'DELETE';
  readonly resourceType: string;
  readonly id: string;
  /** The resource to store (with `id` set); absent for DELETE. */
  readonly resource?: FhirResource;
  /** Where the operation came from, for error messages: `Bundle.entry[3]` or `resource`. */
  readonly where: string;
  /** Its entry's position in the Bundle (0 for a single resource). */
  readonly index: number;
  /** The version the client's `If-Match` requires to be current (a PUT only): otherwise 412, nothing stored. */
  readonly ifMatch?: number;
  /** A conditional create's `If-None-Exist` criteria (a POST only): an existing match is answered instead of a create. */
  readonly ifNoneExist?: Criteria;
}

/**
 * The criteria of a conditional create (`If-None-Exist: identifier=system|value&_id=x`), ANDed: what the gateway can
 * answer from its own index (it cannot search the ciphertexts). The raw query is kept for messages.
 */
export interface Criteria {
  readonly query: string;
  /** `system|value` tokens, each with its system (the index keys identifiers by both). */
  readonly identifiers: readonly string[];
  readonly id?: string;
}

type Parsed = Omit<FhirOperation, 'index'>;

/** A parsed write request. */
export interface ParsedWrite {
  readonly kind: 'transaction' | 'batch';
  readonly operations: FhirOperation[];
  /** A batch entry that could not even be parsed: its index and the error (the other entries still run). */
  readonly refused: ReadonlyMap<number, Error>;
}

const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;
/** JSON nesting a resource may have (FHIR resources nest a few dozen levels at most); deeper is refused, not recursed into. */
export const MAX_DEPTH = 100;
const UUID = /^urn:uuid:([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;

/**
 * Parses `If-None-Exist` criteria (https://hl7.org/fhir/R4/http.html#ccreate): `identifier=system|value` (repeatable)
 * and `_id`, ANDed. @throws MalformedInputError for an empty query, another parameter or an identifier without system.
 */
export function parseCriteria(query: string, where: string): Criteria {
  const trimmed = query.trim().replace(/^\?/, '');
  const identifiers: string[] = [];
  let id: string | undefined;
  for (const [name, value] of new URLSearchParams(trimmed)) {
    if (name === 'identifier') {
      const bar = value.indexOf('|');
      if (bar <= 0 || bar === value.length - 1)
        throw new MalformedInputError(
          `${where}: If-None-Exist identifier '${value.slice(0, 100)}' needs system|value (the gateway indexes identifiers by system and value)`,
        );
      identifiers.push(value);
    } else if (name === '_id') {
      if (id !== undefined && id !== value) throw new MalformedInputError(`${where}: If-None-Exist names two _id values`);
      id = checkId(value, `${where}: If-None-Exist _id`);
    } else {
      throw new MalformedInputError(
        `${where}: If-None-Exist '${name.slice(0, 64)}' is not supported (the gateway answers identifier=system|value and _id from its own index; it cannot search the encrypted records)`,
      );
    }
  }
  if (identifiers.length === 0 && id === undefined) throw new MalformedInputError(`${where}: If-None-Exist needs identifier=system|value or _id`);
  return { query: trimmed, identifiers, ...(id === undefined ? {} : { id }) };
}

/** The `system|value` tokens of a resource's identifiers that have both. */
export function identifierTokens(resource: FhirResource): string[] {
  const identifiers = Array.isArray(resource.identifier) ? (resource.identifier as Array<{ system?: unknown; value?: unknown }>) : [];
  return [
    ...new Set(
      identifiers
        .filter((i) => typeof i.system === 'string' && i.system !== '' && typeof i.value === 'string' && i.value !== '')
        .map((i) => `${String(i.system)}|${String(i.value)}`),
    ),
  ];
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function checkType(value: unknown, where: string): string {
  if (typeof value !== 'string' || !RESOURCE_TYPE.test(value)) throw new MalformedInputError(`${where}: resourceType is missing or invalid`);
  if (value === 'Bundle') throw new MalformedInputError(`${where}: nested Bundles are not accepted`);
  return value;
}

function checkId(value: unknown, where: string): string {
  if (typeof value !== 'string' || !FHIR_ID.test(value)) throw new MalformedInputError(`${where}: id must match [A-Za-z0-9.-]{1,64}`);
  return value;
}

/** Refuses values nested deeper than MAX_DEPTH (checked without recursion, so a hostile body cannot overflow the stack). */
function checkDepth(value: unknown, where: string): void {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth > MAX_DEPTH) throw new MalformedInputError(`${where}: nested deeper than ${MAX_DEPTH} levels`);
    for (const child of Object.values(item)) stack.push([child, depth + 1]);
  }
}

/** A resource with a checked type; its `id` is replaced by `id`. */
function withId(value: unknown, id: string, where: string): FhirResource {
  if (!isObject(value)) throw new MalformedInputError(`${where}: a FHIR resource is a JSON object`);
  checkType(value.resourceType, where);
  checkDepth(value, where);
  return { ...value, id } as FhirResource;
}

/** An update of a resource by its own id (no `request`). */
function upsert(value: unknown, where: string): Parsed {
  if (!isObject(value)) throw new MalformedInputError(`${where}: a FHIR resource is a JSON object`);
  const resourceType = checkType(value.resourceType, where);
  const id = checkId(value.id, where);
  checkDepth(value, where);
  return { method: 'PUT', resourceType, id, resource: value as FhirResource, where };
}

/** One Bundle entry as an operation (ids of creates assigned). */
function entryOperation(entry: unknown, where: string): Parsed {
  if (!isObject(entry)) throw new MalformedInputError(`${where}: an entry is a JSON object`);
  const request = entry.request;
  if (request === undefined) return upsert(entry.resource, `${where}.resource`);
  if (!isObject(request) || typeof request.url !== 'string') throw new MalformedInputError(`${where}.request: method and url are required`);
  const url = request.url.replace(/^\/+/, '');
  if (url.includes('?')) throw new MalformedInputError(`${where}.request.url: conditional ${String(request.method)} is not supported ('${url}')`);
  const [type, id, ...rest] = url.split('/');
  const resourceType = checkType(type, `${where}.request.url`);
  switch (request.method) {
    case 'POST': {
      if (id !== undefined) throw new MalformedInputError(`${where}.request.url: a create posts to the type ('${resourceType}')`);
      const minted = typeof entry.fullUrl === 'string' ? UUID.exec(entry.fullUrl)?.[1]?.toLowerCase() : undefined;
      const resource = withId(entry.resource, minted ?? randomUUID(), `${where}.resource`);
      if (resource.resourceType !== resourceType)
        throw new MalformedInputError(`${where}: request.url names ${resourceType} but the resource is a ${resource.resourceType}`);
      if (request.ifNoneExist !== undefined && typeof request.ifNoneExist !== 'string')
        throw new MalformedInputError(`${where}.request.ifNoneExist must be a string`);
      const ifNoneExist = request.ifNoneExist === undefined ? undefined : parseCriteria(request.ifNoneExist, `${where}.request.ifNoneExist`);
      return { method: 'POST', resourceType, id: resource.id, resource, where, ...(ifNoneExist === undefined ? {} : { ifNoneExist }) };
    }
    case 'PUT': {
      if (rest.length > 0) throw new MalformedInputError(`${where}.request.url: an update names Type/id ('${url}')`);
      checkId(id, `${where}.request.url`);
      if (isObject(entry.resource) && entry.resource.id !== undefined && entry.resource.id !== id)
        throw new MalformedInputError(`${where}: resource.id '${String(entry.resource.id)}' differs from the url's '${id}'`);
      const resource = withId(entry.resource, id!, `${where}.resource`);
      if (resource.resourceType !== resourceType)
        throw new MalformedInputError(`${where}: request.url names ${resourceType} but the resource is a ${resource.resourceType}`);
      return { method: 'PUT', resourceType, id: id!, resource, where };
    }
    case 'DELETE':
      if (rest.length > 0) throw new MalformedInputError(`${where}.request.url: a delete names Type/id ('${url}')`);
      return { method: 'DELETE', resourceType, id: checkId(id, `${where}.request.url`), where };
    default:
      throw new MalformedInputError(`${where}.request.method: ${String(request.method)} is not supported in a Bundle (POST, PUT or DELETE)`);
  }
}

function identifierMatches(resource: FhirResource, token: string): boolean {
  const bar = token.indexOf('|');
  const [system, value] = bar < 0 ? [undefined, token] : [token.slice(0, bar), token.slice(bar + 1)];
  const identifiers = Array.isArray(resource.identifier) ? (resource.identifier as Array<{ system?: unknown; value?: unknown }>) : [];
  return identifiers.some((i) => i.value === value && (system === undefined || (system === '' ? i.system === undefined : i.system === system)));
}

/** The entry a conditional reference `Type?query` designates among `operations` (exactly one, else an error). */
function resolveConditional(reference: string, operations: readonly Parsed[], where: string): string {
  const [type, query] = [reference.slice(0, reference.indexOf('?')), reference.slice(reference.indexOf('?') + 1)];
  const criteria = [...new URLSearchParams(query)];
  const candidates = operations.filter(
    (o) =>
      o.resource !== undefined &&
      o.resourceType === type &&
      criteria.every(([name, value]) => {
        if (name === 'identifier') return identifierMatches(o.resource!, value);
        if (name === '_id') return o.id === value;
        throw new MalformedInputError(`${where}: conditional reference '${reference}' uses '${name}' (identifier and _id are supported)`);
      }),
  );
  if (candidates.length !== 1)
    throw new MalformedInputError(`${where}: conditional reference '${reference}' matches ${candidates.length} entries of the Bundle (exactly one is needed)`);
  return `${type}/${candidates[0]!.id}`;
}

/** Rewrites every `reference` in `value` that names an entry (full URL or conditional) to `Type/id`. */
function rewriteReferences(value: unknown, targets: ReadonlyMap<string, string>, operations: readonly Parsed[], where: string): unknown {
  if (Array.isArray(value)) return value.map((v) => rewriteReferences(v, targets, operations, where));
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    if (key === 'reference' && typeof field === 'string') {
      out[key] = targets.get(field) ?? (/^[A-Z][A-Za-z]+\?/.test(field) ? resolveConditional(field, operations, where) : field);
    } else {
      out[key] = rewriteReferences(field, targets, operations, where);
    }
  }
  return out;
}

/**
 * The operations of a request body: a transaction or batch Bundle, a collection Bundle or one resource (updates by
 * `resource.id`). References between entries are resolved; in a batch, an entry that fails to parse is refused on
 * its own. @throws MalformedInputError (a transaction with any bad entry), LimitExceededError (> 20,000 entries).
 */
export function parseWrite(body: unknown): ParsedWrite {
  if (!isObject(body)) throw new MalformedInputError('the body must be a FHIR resource or Bundle (a JSON object)');
  if (body.resourceType !== 'Bundle') return { kind: 'transaction', operations: [{ ...upsert(body, 'resource'), index: 0 }], refused: new Map() };
  if (!['transaction', 'batch', 'collection'].includes(String(body.type)))
    throw new MalformedInputError('Bundle.type must be transaction, batch or collection');
  if (!Array.isArray(body.entry) || body.entry.length === 0) throw new MalformedInputError('Bundle.entry must be a non-empty list');
  if (body.entry.length > MAX_ENTRIES) throw new LimitExceededError(`a Bundle may hold at most ${MAX_ENTRIES} entries`);
  const kind = body.type === 'batch' ? 'batch' : 'transaction';
  const refused = new Map<number, Error>();
  const parsed: Array<{ index: number; fullUrl?: string; operation: Parsed }> = [];
  for (const [index, entry] of (body.entry as unknown[]).entries()) {
    try {
      parsed.push({
        index,
        fullUrl: isObject(entry) && typeof entry.fullUrl === 'string' ? entry.fullUrl : undefined,
        operation: entryOperation(entry, `Bundle.entry[${index}]`),
      });
    } catch (error) {
      if (kind === 'transaction') throw error;
      refused.set(index, error as Error);
    }
  }
  const operations = parsed.map((p) => p.operation);
  const targets = new Map<string, string>();
  for (const { fullUrl, operation } of parsed)
    if (fullUrl !== undefined && operation.resource !== undefined) targets.set(fullUrl, `${operation.resourceType}/${operation.id}`);
  const seen = new Set<string>();
  const resolved = parsed.map(({ index, operation }): FhirOperation | undefined => {
    try {
      const key = `${operation.resourceType}/${operation.id}`;
      if (kind === 'transaction' && seen.has(key)) throw new MalformedInputError(`${operation.where}: ${key} appears twice in the transaction`);
      seen.add(key);
      if (operation.resource === undefined) return { ...operation, index };
      return { ...operation, index, resource: rewriteReferences(operation.resource, targets, operations, operation.where) as FhirResource };
    } catch (error) {
      if (kind === 'transaction') throw error;
      refused.set(index, error as Error);
      return undefined;
    }
  });
  return { kind, operations: resolved.filter((o): o is FhirOperation => o !== undefined), refused };
}

/** `POST [base]/Type`: a create with a fresh server-assigned id, conditional when `ifNoneExist` (the header) is given. */
export function createOperation(resourceType: string, body: unknown, ifNoneExist?: string): FhirOperation {
  const resource = withId(body, randomUUID(), 'resource');
  if (resource.resourceType !== resourceType) throw new MalformedInputError(`the url names ${resourceType} but the resource is a ${resource.resourceType}`);
  const criteria = ifNoneExist === undefined ? undefined : parseCriteria(ifNoneExist, 'If-None-Exist');
  return { method: 'POST', resourceType, id: resource.id, resource, where: 'resource', index: 0, ...(criteria === undefined ? {} : { ifNoneExist: criteria }) };
}

/**
 * The operations with every reference to a conditional create that matched an existing resource (`Type/minted`, as
 * parseWrite rewrote it) pointing at that resource instead (`Type/existing`).
 */
export function retarget(operations: readonly FhirOperation[], matched: ReadonlyMap<string, string>): FhirOperation[] {
  if (matched.size === 0) return [...operations];
  return operations.map((op) => (op.resource === undefined ? op : { ...op, resource: rewriteReferences(op.resource, matched, [], op.where) as FhirResource }));
}

/** `PUT [base]/Type/id`: an update (or a create with the client's id), optionally conditional on the current version. */
export function updateOperation(resourceType: string, id: string, body: unknown, ifMatch?: number): FhirOperation {
  checkId(id, 'the url');
  if (isObject(body) && body.id !== id) throw new MalformedInputError(`resource.id '${String(body.id)}' must equal the url's id '${id}'`);
  const resource = withId(body, id, 'resource');
  if (resource.resourceType !== resourceType) throw new MalformedInputError(`the url names ${resourceType} but the resource is a ${resource.resourceType}`);
  return { method: 'PUT', resourceType, id, resource, where: 'resource', index: 0, ...(ifMatch === undefined ? {} : { ifMatch }) };
}

const ENTITY_TAG = /^(?:W\/)?"([1-9][0-9]{0,15})"$/;

/**
 * The version an `If-Match` header names (`W/"3"`, the ETag this server sends; the strong form `"3"` too).
 * @throws MalformedInputError for anything else (a list, `*`, a non-numeric tag).
 */
export function parseIfMatch(header: string): number {
  const match = ENTITY_TAG.exec(header.trim());
  if (match === null) throw new MalformedInputError(`If-Match '${header.slice(0, 40)}' is not a version ETag W/"<versionId>"`);
  return Number(match[1]);
}

/** `DELETE [base]/Type/id`. */
export function deleteOperation(resourceType: string, id: string): FhirOperation {
  return { method: 'DELETE', resourceType: checkType(resourceType, 'the url'), id: checkId(id, 'the url'), where: 'the url', index: 0 };
}
