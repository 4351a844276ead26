/**
 * The cloud's HTTP API (Fastify). Every route needs a platform SSO token bound to the caller's device key and a
 * DPoP proof of that key for the request (identity's dpop/verify.ts, checked before the body is read); bodies are JSON with schemas and limits.
 * Reading and searching records also need a SMART scope for their category (scopes.ts).
 *
 *   PUT    /patients/:patient                      (patient) { publicKeys }        register her signed key bundle
 *   GET    /patients/:patient/records?category=    (patient, or a delegated reader) record metadata
 *   POST   /patients/:patient/read                 (reader) { category, recordIds? } converted ciphertexts
 *   POST   /patients/:patient/emergency-read       (role:emergency) { category, reason, recordIds? } converted ciphertexts
 *          (both as JSON with base64, or with `Accept: application/octet-stream` as a binary record stream)
 *   POST   /patients/:patient/own-records          (patient) { category } her ciphertexts as stored (she decrypts them)
 *   POST   /patients/:patient/search/indexes       (reader) { category, reason? } sub-index keys (converted) and states
 *   POST   /patients/:patient/search               (reader) { category, labels, reason? } the index values of labels
 *   POST   /patients/:patient/delegations          (patient) { reencryptionKey, emergency? }
 *   GET    /patients/:patient/delegations          (patient)
 *   DELETE /patients/:patient/delegations/:id      (patient) revoke
 *   GET    /patients/:patient/access-log           (patient)
 *   GET    /patients/:patient/platform-emergency   (patient) the platform's emergency policy and her consent
 *   PUT    /patients/:patient/platform-emergency   (patient) { allowed } give or withdraw that consent
 *   GET    /patients/:patient/writers              (patient) the hospitals that may write into her record
 *   PUT    /patients/:patient/writers/:hospital    (patient) allow a hospital to write (enrol her and upload)
 *   DELETE /patients/:patient/writers/:hospital    (patient) withdraw that permission
 *   PUT    /patients/:patient/findable             (patient) { allowed } consent to lookup by business identifier
 *   GET    /patients/:patient/public-keys          (gateway) her signed key bundle, the platform emergency policy, her index rules
 *   GET|PUT /patients/:patient/index-rules         (patient) the desensitisation rules of her notes' words in the index
 *   POST   /patients/:patient/uploads              (gateway) { records, capsules, index? } ciphertexts (and index rows) of one upload, atomically
 *   POST   /patients/:patient/index-states         (gateway) { categories } its own sub-indexes' epochs, sealed states, versions
 *   POST   /receipts                               (gateway) { entries, waitMs? } inclusion bundles of ledger entries, witnessed
 *                                                   (or, after waitMs, only log-signed: the gateway keeps them pending)
 *   GET    /patients/:patient/research-consent     (patient) whether she consents to de-identified research release
 *   PUT    /patients/:patient/research-consent     (patient) { allowed } give or withdraw it
 *   POST   /patients/:patient/research-exports     (gateway) { profile, digest, resources } record a release (403 without consent)
 *   GET    /patients/:patient/writable             (gateway) 204 if the token's hospital may write for her, else 403
 *   POST   /patients/:patient/identifiers          (gateway) { digests } keyed hashes of her business identifiers
 *   POST   /identifier-lookup                      (any staff, through their gateway) { digest } pseudonyms of consenting patients
 *
 * The gateway routes take `role:gateway` tokens of any hospital on the cloud's trust list; the record source is
 * the token's hospital. They carry ciphertexts, hashed record ids and emergency capsules/grants only.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MalformedInputError } from '@medshare/crypto';
import { senderConstrained, type SenderConstrainedVerifier } from '@medshare/identity';
import type { CategoryMapping } from '../gateway/fhir.ts';
import { authenticate, patientParam, requireRole, useProblems, type Caller } from '../http.ts';
import { requireRecordScope } from '../scopes.ts';
import { decodeIndexWrites, encodeWriterStates, INDEX_WRITES_SCHEMA, type IndexWireWrite } from './index-wire.ts';
import { recordFrames, RECORD_STREAM_TYPE } from './record-stream.ts';
import { MAX_SEARCH_LABELS } from './search-store.ts';
import type { NewCapsule, NewRecord } from './store.ts';
import { MAX_RECEIPT_WAIT_MS, type CloudService, type ConvertedRecord } from './service.ts';

export interface CloudPluginOptions {
  readonly cloud: CloudService;
  /** Checks the caller's DPoP-bound token and proof. */
  readonly verifier: SenderConstrainedVerifier;
  /** Resource type → category, for SMART scopes. */
  readonly categories: CategoryMapping;
}

const BASE64 = '^[A-Za-z0-9+/]*={0,2}$';
const CATEGORY = { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,63}$' };
const RECORD_ID = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' };
const patientParams = { type: 'object', required: ['patient'], properties: { patient: { type: 'string', maxLength: 100 } } };
const SMALL_BODY = 256 * 1024;
const REASON = { type: 'string', minLength: 1, maxLength: 500 };
/** A gateway upload: a 32 MiB FHIR bundle becomes ~45 MB of base64 ciphertexts plus grants. */
export const CLOUD_UPLOAD_BODY_LIMIT = 96 * 1024 * 1024;
const MAX_UPLOAD_RECORDS = 20_000;
const HEX_ID = { type: 'string', pattern: '^[0-9a-f]{32}$' };
const B64 = (maxLength: number) => ({ type: 'string', maxLength, pattern: BASE64 });
const uploadBody = {
  type: 'object',
  required: ['records', 'capsules'],
  additionalProperties: false,
  properties: {
    records: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_UPLOAD_RECORDS,
      items: {
        type: 'object',
        required: ['recordId', 'category', 'ciphertext'],
        additionalProperties: false,
        properties: {
          recordId: RECORD_ID,
          category: CATEGORY,
          ciphertext: B64(48 * 1024 * 1024),
          emergency: {
            type: 'object',
            required: ['capsuleId', 'grant'],
            additionalProperties: false,
            properties: { capsuleId: HEX_ID, grant: B64(64 * 1024) },
          },
          // Proof-of-storage tag set: a 96-byte KZG commitment per chunk of 31,744 bytes by default (storage-audit/).
          storage: { type: 'object', required: ['tags'], additionalProperties: false, properties: { tags: B64(4 * 1024 * 1024) } },
        },
      },
    },
    capsules: {
      type: 'array',
      maxItems: MAX_UPLOAD_RECORDS,
      items: {
        type: 'object',
        required: ['capsuleId', 'category', 'policy', 'capsule'],
        additionalProperties: false,
        properties: { capsuleId: HEX_ID, category: CATEGORY, policy: { type: 'string', minLength: 1, maxLength: 4096 }, capsule: B64(256 * 1024) },
      },
    },
    index: INDEX_WRITES_SCHEMA,
  },
};

interface UploadBody {
  records: Array<{ recordId: string; category: string; ciphertext: string; emergency?: { capsuleId: string; grant: string }; storage?: { tags: string } }>;
  capsules: Array<{ capsuleId: string; category: string; policy: string; capsule: string }>;
  index?: IndexWireWrite[];
}

const decode = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));
const encode = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/**
 * A read's answer: with `Accept: application/octet-stream`, the binary record stream (record-stream.ts), each payload
 * written as stored, a large one chunk row by chunk row as the socket drains (Readable.from pulls the next piece
 * only when the response has room); otherwise JSON with base64 ciphertexts (small records, simple clients: a large
 * record is joined in memory first).
 */
async function answerRecords(request: FastifyRequest, reply: FastifyReply, converted: readonly ConvertedRecord[]) {
  if ((request.headers.accept ?? '').split(',').some((type) => type.trim().split(';')[0] === RECORD_STREAM_TYPE)) {
    // A chunk that fails to read after the answer has begun can only cut the stream short: Fastify logs the error
    // and destroys the response, and the reader refuses the stream as truncated.
    return reply.type(RECORD_STREAM_TYPE).send(Readable.from(recordFrames(converted), { objectMode: false }));
  }
  const joined = await Promise.all(converted.map((r) => r.joined()));
  return reply.send({ records: converted.map((r, i) => ({ recordId: r.recordId, ciphertext: encode(joined[i]!) })) });
}

/** The Fastify plugin; register it with prefix `/cloud`. */
export async function cloudPlugin(app: FastifyInstance, options: CloudPluginOptions): Promise<void> {
  useProblems(app);
  const { cloud, verifier, categories } = options;
  senderConstrained(app, verifier);
  const caller = (request: Parameters<typeof authenticate>[1]) => authenticate(verifier, request);
  /**
   * A patient's yes/no consent (findable, platform emergency, research) is set by one kind of route: PUT `{ allowed }` on
   * her path, answered with what the service returns. One helper registers each, so their schema and limits stay alike.
   */
  const putAllowedSetting = (path: string, set: (who: Caller, patient: string, allowed: boolean) => Promise<unknown>): void => {
    app.put<{ Params: { patient: string }; Body: { allowed: boolean } }>(
      path,
      {
        bodyLimit: SMALL_BODY,
        schema: {
          params: patientParams,
          body: { type: 'object', required: ['allowed'], additionalProperties: false, properties: { allowed: { type: 'boolean' } } },
        },
      },
      async (request) => {
        const who = await caller(request);
        return set(who, patientParam(request.params.patient), request.body.allowed);
      },
    );
  };

  app.put<{ Params: { patient: string }; Body: { publicKeys: string } }>(
    '/patients/:patient',
    {
      bodyLimit: SMALL_BODY,
      schema: {
        params: patientParams,
        body: {
          type: 'object',
          required: ['publicKeys'],
          additionalProperties: false,
          properties: { publicKeys: { type: 'string', maxLength: 200_000, pattern: BASE64 } },
        },
      },
    },
    async (request, reply) => {
      const who = await caller(request);
      const { created } = await cloud.registerPatient(who, patientParam(request.params.patient), decode(request.body.publicKeys));
      return reply.status(created ? 201 : 200).send({ patient: request.params.patient, replaced: !created });
    },
  );

  app.get<{ Params: { patient: string } }>('/patients/:patient/repeated-attribute-policies', { schema: { params: patientParams } }, async (request) => {
    const who = await caller(request);
    return { policies: await cloud.repeatedAttributePolicies(who, patientParam(request.params.patient)) };
  });

  app.get<{ Params: { patient: string }; Querystring: { category?: string } }>(
    '/patients/:patient/records',
    {
      schema: { params: patientParams, querystring: { type: 'object', additionalProperties: false, properties: { category: CATEGORY } } },
    },
    async (request) => {
      const who = await caller(request);
      requireRecordScope(who, request.query.category, 's', categories);
      return { records: await cloud.listRecords(who, patientParam(request.params.patient), request.query.category) };
    },
  );

  app.post<{ Params: { patient: string }; Body: { category: string; recordIds?: string[] } }>(
    '/patients/:patient/read',
    {
      bodyLimit: SMALL_BODY,
      schema: {
        params: patientParams,
        body: {
          type: 'object',
          required: ['category'],
          additionalProperties: false,
          properties: { category: CATEGORY, recordIds: { type: 'array', maxItems: 1000, items: RECORD_ID } },
        },
      },
    },
    async (request, reply) => {
      const who = await caller(request);
      requireRecordScope(who, request.body.category, 'r', categories);
      const converted = await cloud.read(who, patientParam(request.params.patient), request.body.category, { recordIds: request.body.recordIds });
      return answerRecords(request, reply, converted);
    },
  );

  app.post<{ Params: { patient: string }; Body: { category: string } }>(
    '/patients/:patient/own-records',
    {
      bodyLimit: SMALL_BODY,
      schema: { params: patientParams, body: { type: 'object', required: ['category'], additionalProperties: false, properties: { category: CATEGORY } } },
    },
    async (request) => {
      const who = await caller(request);
      requireRecordScope(who, request.body.category, 'r', categories);
      const stored = await cloud.ownRecords(who, patientParam(request.params.patient), request.body.category);
      return { records: stored.map((r) => ({ recordId: r.recordId, ciphertext: encode(r.ciphertext) })) };
    },
  );

  app.post<{ Params: { patient: string }; Body: { category: string; reason: string; recordIds?: string[] } }>(
    '/patients/:patient/emergency-read',
    {
      bodyLimit: SMALL_BODY,
      schema: {
        params: patientParams,
        body: {
          type: 'object',
          required: ['category', 'reason'],
          additionalProperties: false,
          properties: { category: CATEGORY, reason: REASON, recordIds: { type: 'array', maxItems: 1000, items: RECORD_ID } },
        },
      },
    },
    async (request, reply) => {
      const who = await caller(request);
      requireRecordScope(who, request.body.category, 'r', categories);
      const converted = await cloud.read(who, patientParam(request.params.patient), request.body.category, {
        reason: request.body.reason,
        recordIds: request.body.recordIds,
      });
      return answerRecords(request, reply, converted);
    },
  );

  // Searchable index (docs/platform.md § Search): the reader's sub-index keys (converted) and states, then label lookups.
  app.post<{ Params: { patient: string }; Body: { category: string; reason?: string } }>(
    '/patients/:patient/search/indexes',
    {
      bodyLimit: SMALL_BODY,
      schema: {
        params: patientParams,
        body: { type: 'object', required: ['category'], additionalProperties: false, properties: { category: CATEGORY, reason: REASON } },
      },
    },
    async (request) => {
      const who = await caller(request);
      requireRecordScope(who, request.body.category, 's', categories);
      const subs = await cloud.searchIndexes(who, patientParam(request.params.patient), request.body.category, request.body.reason);
      return { subIndexes: subs.map((s) => ({ ...s, keyCapsule: encode(s.keyCapsule), state: encode(s.state) })) };
    },
  );

  app.post<{ Params: { patient: string }; Body: { category: string; labels: string[]; reason?: string } }>(
    '/patients/:patient/search',
    {
      bodyLimit: 8 * 1024 * 1024,
      schema: {
        params: patientParams,
        body: {
          type: 'object',
          required: ['category', 'labels'],
          additionalProperties: false,
          properties: {
            category: CATEGORY,
            reason: REASON,
            labels: { type: 'array', maxItems: MAX_SEARCH_LABELS, items: { type: 'string', minLength: 24, maxLength: 24, pattern: BASE64 } },
          },
        },
      },
    },
    async (request) => {
      const who = await caller(request);
      requireRecordScope(who, request.body.category, 's', categories);
      const values = await cloud.searchRows(
        who,
        patientParam(request.params.patient),
        request.body.category,
        request.body.labels.map(decode),
        request.body.reason,
      );
      return { values: values.map((v) => (v === undefined ? null : encode(v))) };
    },
  );

  app.post<{ Params: { patient: string }; Body: { reencryptionKey: string; emergency?: boolean } }>(
    '/patients/:patient/delegations',
    {
      bodyLimit: SMALL_BODY,
      schema: {
        params: patientParams,
        body: {
          type: 'object',
          required: ['reencryptionKey'],
          additionalProperties: false,
          properties: { reencryptionKey: { type: 'string', maxLength: 200_000, pattern: BASE64 }, emergency: { type: 'boolean' } },
        },
      },
    },
    async (request, reply) => {
      const who = await caller(request);
      return reply
        .status(201)
        .send(await cloud.delegate(who, patientParam(request.params.patient), decode(request.body.reencryptionKey), request.body.emergency ?? false));
    },
  );

  app.get<{ Params: { patient: string } }>('/patients/:patient/delegations', { schema: { params: patientParams } }, async (request) => {
    const who = await caller(request);
    return { delegations: await cloud.delegations(who, patientParam(request.params.patient)) };
  });

  app.delete<{ Params: { patient: string; id: string } }>(
    '/patients/:patient/delegations/:id',
    {
      schema: {
        params: {
          type: 'object',
          required: ['patient', 'id'],
          properties: { patient: { type: 'string', maxLength: 100 }, id: { type: 'string', maxLength: 100 } },
        },
      },
    },
    async (request, reply) => {
      const who = await caller(request);
      if (!/^[0-9a-f]{32}$/.test(request.params.id)) throw new MalformedInputError('a delegation id is 32 hex digits');
      await cloud.revoke(who, patientParam(request.params.patient), request.params.id);
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { patient: string } }>('/patients/:patient/access-log', { schema: { params: patientParams } }, async (request) => {
    const who = await caller(request);
    return { entries: await cloud.accessLog(who, patientParam(request.params.patient)) };
  });

  const writerParams = {
    type: 'object',
    required: ['patient', 'hospital'],
    properties: { patient: { type: 'string', maxLength: 100 }, hospital: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' } },
  };
  app.get<{ Params: { patient: string } }>('/patients/:patient/writers', { schema: { params: patientParams } }, async (request) => {
    const who = await caller(request);
    return { writers: await cloud.writers(who, patientParam(request.params.patient)) };
  });

  app.put<{ Params: { patient: string; hospital: string } }>('/patients/:patient/writers/:hospital', { schema: { params: writerParams } }, async (request) => {
    const who = await caller(request);
    return { writers: await cloud.allowWriter(who, patientParam(request.params.patient), request.params.hospital) };
  });

  app.delete<{ Params: { patient: string; hospital: string } }>(
    '/patients/:patient/writers/:hospital',
    { schema: { params: writerParams } },
    async (request) => {
      const who = await caller(request);
      return { writers: await cloud.removeWriter(who, patientParam(request.params.patient), request.params.hospital) };
    },
  );

  putAllowedSetting('/patients/:patient/findable', (who, patient, allowed) => cloud.setFindable(who, patient, allowed));

  app.get<{ Params: { patient: string } }>('/patients/:patient/platform-emergency', { schema: { params: patientParams } }, async (request) => {
    const who = await caller(request);
    return cloud.platformEmergency(who, patientParam(request.params.patient));
  });

  putAllowedSetting('/patients/:patient/platform-emergency', (who, patient, allowed) => cloud.setPlatformEmergency(who, patient, allowed));

  app.get<{ Params: { patient: string } }>('/patients/:patient/public-keys', { schema: { params: patientParams } }, async (request) => {
    const who = await caller(request);
    requireRole(who, 'gateway');
    const keys = await cloud.publicKeyBundle(patientParam(request.params.patient));
    return {
      publicKeys: encode(keys),
      emergencyPolicy: cloud.emergencyPolicy ?? null,
      indexRules: (await cloud.indexRules(patientParam(request.params.patient))) ?? null,
    };
  });

  app.get<{ Params: { patient: string } }>('/patients/:patient/index-rules', { schema: { params: patientParams } }, async (request) => {
    const who = await caller(request);
    return { indexRules: (await cloud.ownIndexRules(who, patientParam(request.params.patient))) ?? null };
  });

  app.put<{ Params: { patient: string }; Body: unknown }>(
    '/patients/:patient/index-rules',
    { bodyLimit: SMALL_BODY, schema: { params: patientParams } },
    async (request) => {
      const who = await caller(request);
      return { indexRules: await cloud.setIndexRules(who, patientParam(request.params.patient), request.body) };
    },
  );

  app.post<{ Params: { patient: string }; Body: UploadBody }>(
    '/patients/:patient/uploads',
    {
      bodyLimit: CLOUD_UPLOAD_BODY_LIMIT,
      schema: { params: patientParams, body: uploadBody },
    },
    async (request, reply) => {
      const who = await caller(request);
      requireRole(who, 'gateway');
      const records = request.body.records.map((r): NewRecord => ({
        recordId: r.recordId,
        category: r.category,
        ciphertext: decode(r.ciphertext),
        ...(r.emergency ? { emergency: { capsuleId: r.emergency.capsuleId, grant: decode(r.emergency.grant) } } : {}),
        ...(r.storage ? { storage: { tags: decode(r.storage.tags) } } : {}),
      }));
      const capsules = request.body.capsules.map((c): NewCapsule => ({
        capsuleId: c.capsuleId,
        category: c.category,
        policy: c.policy,
        capsule: decode(c.capsule),
      }));
      const { stored, ledgerEntries } = await cloud.upload(
        who,
        patientParam(request.params.patient),
        records,
        capsules,
        decodeIndexWrites(request.body.index ?? []),
      );
      return reply.status(stored > 0 ? 201 : 200).send({ stored, ledgerEntries });
    },
  );

  app.post<{ Params: { patient: string }; Body: { categories: string[] } }>(
    '/patients/:patient/index-states',
    {
      bodyLimit: SMALL_BODY,
      schema: {
        params: patientParams,
        body: {
          type: 'object',
          required: ['categories'],
          additionalProperties: false,
          properties: { categories: { type: 'array', maxItems: 256, uniqueItems: true, items: CATEGORY } },
        },
      },
    },
    async (request) => {
      const who = await caller(request);
      requireRole(who, 'gateway');
      return { states: encodeWriterStates(await cloud.indexStates(who, patientParam(request.params.patient), request.body.categories)) };
    },
  );

  app.post<{ Body: { entries: number[]; waitMs?: number } }>(
    '/receipts',
    {
      schema: {
        body: {
          type: 'object',
          required: ['entries'],
          additionalProperties: false,
          properties: {
            entries: { type: 'array', maxItems: MAX_UPLOAD_RECORDS, items: { type: 'integer', minimum: 0, maximum: 2 ** 40 } },
            waitMs: { type: 'integer', minimum: 0, maximum: MAX_RECEIPT_WAIT_MS },
          },
        },
      },
    },
    async (request) => {
      requireRole(await caller(request), 'gateway');
      return { bundles: await cloud.receipts(request.body.entries, request.body.waitMs) };
    },
  );

  app.get<{ Params: { patient: string } }>('/patients/:patient/research-consent', { schema: { params: patientParams } }, async (request) => {
    const who = await caller(request);
    return cloud.researchConsent(who, patientParam(request.params.patient));
  });

  putAllowedSetting('/patients/:patient/research-consent', (who, patient, allowed) => cloud.setResearchConsent(who, patient, allowed));

  app.post<{ Params: { patient: string }; Body: { profile: string; digest: string; resources: number } }>(
    '/patients/:patient/research-exports',
    {
      bodyLimit: SMALL_BODY,
      schema: {
        params: patientParams,
        body: {
          type: 'object',
          required: ['profile', 'digest', 'resources'],
          additionalProperties: false,
          properties: {
            profile: CATEGORY,
            digest: { type: 'string', pattern: '^sha256:[0-9a-f]{64}$' },
            resources: { type: 'integer', minimum: 1, maximum: 1_000_000 },
          },
        },
      },
    },
    async (request, reply) => {
      const who = await caller(request);
      return reply.status(201).send({ ledgerIndex: await cloud.recordResearchExport(who, patientParam(request.params.patient), request.body) });
    },
  );

  app.get<{ Params: { patient: string } }>('/patients/:patient/writable', { schema: { params: patientParams } }, async (request, reply) => {
    const who = await caller(request);
    requireRole(who, 'gateway');
    await cloud.requireWriter(patientParam(request.params.patient), who.token.hospital);
    return reply.status(204).send();
  });

  const DIGEST = { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' };
  app.post<{ Params: { patient: string }; Body: { digests: string[] } }>(
    '/patients/:patient/identifiers',
    {
      bodyLimit: SMALL_BODY,
      schema: {
        params: patientParams,
        body: { type: 'object', required: ['digests'], additionalProperties: false, properties: { digests: { type: 'array', maxItems: 1000, items: DIGEST } } },
      },
    },
    async (request, reply) => {
      const who = await caller(request);
      requireRole(who, 'gateway');
      await cloud.indexIdentifiers(who, patientParam(request.params.patient), request.body.digests);
      return reply.status(204).send();
    },
  );

  app.post<{ Body: { digest: string } }>(
    '/identifier-lookup',
    {
      bodyLimit: SMALL_BODY,
      schema: { body: { type: 'object', required: ['digest'], additionalProperties: false, properties: { digest: DIGEST } } },
    },
    async (request) => {
      const who = await caller(request);
      requireRecordScope(who, categories.byType.Patient ?? categories.fallback, 's', categories);
      return { patients: await cloud.lookupIdentifier(who, request.body.digest) };
    },
  );
}
