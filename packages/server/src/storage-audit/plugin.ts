/**
 * The cloud's storage-audit routes for the KZG proofs of possession (Kate–Zaverucha–Goldberg, ASIACRYPT 2010;
 * docs/crypto.md §13) (Fastify; register with prefix `/cloud/storage`). Every route needs a platform
 * SSO token with role `auditor` or `gateway` (a hospital auditing the cloud itself).
 *
 *   POST /tags            { hashes: [sha256:…] } → { tagSets: [{ hash, tags }] } (base64; the auditor checks each
 *                         against the hash its record-create entry commits to)
 *   POST /audit           { challenge, kind: aggregate | per-file } → { proof } (base64; checked by the auditor)
 *   POST /audit/report    { challenge, failing: [{ hash, category }] } → { ledgerEntries } (storage-audit entries)
 */
import type { FastifyInstance } from 'fastify';
import type { TokenVerifier } from '@medshare/identity';
import { authenticateBearer as authenticate, requireRole, useProblems } from '../http.ts';
import { MAX_TAG_SETS_PER_REQUEST, type StorageAuditCloud, type StorageAuditReport } from './cloud.ts';
import { RECORD_HASH_SCHEMA, WIRE_CHALLENGE_SCHEMA, type WireChallenge } from './wire.ts';

export interface StorageAuditPluginOptions {
  readonly storage: StorageAuditCloud;
  readonly verifier: TokenVerifier;
}

/** A challenge over 100,000 records is about 9 MB of JSON. */
export const STORAGE_AUDIT_BODY_LIMIT = 16 * 1024 * 1024;
const AUDITOR_ROLES = ['auditor', 'gateway'];

/** The Fastify plugin. */
export async function storageAuditPlugin(app: FastifyInstance, options: StorageAuditPluginOptions): Promise<void> {
  useProblems(app);
  const { storage, verifier } = options;

  app.post<{ Body: { hashes: string[] } }>(
    '/tags',
    {
      bodyLimit: STORAGE_AUDIT_BODY_LIMIT,
      schema: {
        body: {
          type: 'object',
          required: ['hashes'],
          additionalProperties: false,
          properties: { hashes: { type: 'array', minItems: 1, maxItems: MAX_TAG_SETS_PER_REQUEST, items: RECORD_HASH_SCHEMA } },
        },
      },
    },
    async (request) => {
      requireRole(await authenticate(verifier, request), ...AUDITOR_ROLES);
      return { tagSets: (await storage.tagSets(request.body.hashes)).map((t) => ({ hash: t.hash, tags: Buffer.from(t.tags).toString('base64') })) };
    },
  );

  app.post<{ Body: { challenge: WireChallenge; kind: 'aggregate' | 'per-file' } }>(
    '/audit',
    {
      bodyLimit: STORAGE_AUDIT_BODY_LIMIT,
      schema: {
        body: {
          type: 'object',
          required: ['challenge', 'kind'],
          additionalProperties: false,
          properties: { challenge: WIRE_CHALLENGE_SCHEMA, kind: { type: 'string', enum: ['aggregate', 'per-file'] } },
        },
      },
    },
    async (request) => {
      requireRole(await authenticate(verifier, request), ...AUDITOR_ROLES);
      const proof = await storage.prove(request.body.challenge, request.body.kind);
      return { proof: Buffer.from(proof).toString('base64') };
    },
  );

  app.post<{ Body: StorageAuditReport }>(
    '/audit/report',
    {
      bodyLimit: STORAGE_AUDIT_BODY_LIMIT,
      schema: {
        body: {
          type: 'object',
          required: ['challenge', 'failing'],
          additionalProperties: false,
          properties: {
            challenge: WIRE_CHALLENGE_SCHEMA,
            failing: {
              type: 'array',
              maxItems: 100_000,
              items: {
                type: 'object',
                required: ['hash', 'category'],
                additionalProperties: false,
                properties: { hash: { type: 'string', pattern: '^sha256:[0-9a-f]{64}$' }, category: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' } },
              },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const caller = await authenticate(verifier, request);
      requireRole(caller, ...AUDITOR_ROLES);
      return reply.status(201).send({ ledgerEntries: await storage.report(caller, request.body) });
    },
  );
}
