/**
 * The cloud's statistics API (Fastify; register with prefix `/stats`). Researchers authenticate with a platform
 * SSO token (role:researcher); hospitals authenticate what they send by their consortium signature, which the
 * service checks, so a forged contribution or partial is refused and a failing proof is blamed on its signer only.
 *
 *   GET  /dkg                                  the key generation's board: the ceremony, every signed message, the outcome
 *   POST /dkg/messages             (member)   one signed message of one phase (dkg-wire.ts)
 *   GET  /consortium                         the threshold public key and the members' verify keys (503 until formed)
 *   GET  /queries                              the queries not released yet and their progress (what the agents poll)
 *   POST /queries                  (researcher) { query }            → 201 { queryId, queryHash, budget }
 *   GET  /queries/:id                          progress, and the release once made
 *   GET  /queries/:id/ticket                   the query for the hospitals to evaluate
 *   POST /queries/:id/contributions (hospital) { hospital, ciphertext, signature, proof }   (proof: range proof, checked)
 *   GET  /queries/:id/contributions            every contribution (ciphertexts: the hospitals add them themselves)
 *   POST /queries/:id/partials      (hospital) { hospital, partial, signature }
 *   POST /queries/:id/release      (researcher) the noisy totals, small cells suppressed, budget shown
 *   GET  /budgets/:querySet        (researcher) the query set's privacy budget
 */
import type { FastifyInstance } from 'fastify';
import type { SenderConstrainedVerifier } from '@medshare/identity';
import { authenticate, requireRole, useProblems } from '../http.ts';
import type { StatsAggregator } from './aggregator.ts';
import { consortiumToJson } from './consortium.ts';
import type { StatsDkgBoard } from './dkg-board.ts';
import { DKG_PHASES, type DkgMessage } from './dkg-wire.ts';

export interface StatsPluginOptions {
  readonly stats: StatsAggregator;
  /** The key generation's bulletin board (absent: the consortium was given, no key is generated here). */
  readonly board?: StatsDkgBoard;
  /** Checks the caller's DPoP-bound token and proof. */
  readonly verifier: SenderConstrainedVerifier;
}

const BASE64 = { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' } as const;
const HOSPITAL = { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' } as const;
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{8,64}$' } } } as const;
/**
 * A 65,536-cell ciphertext is 6 MiB, 8 MiB in base64. A contribution with its range proofs: the query language's
 * largest (600 cells, 12,000 bit proofs) is 2.7 MiB, 3.7 MiB in base64.
 */
const CIPHERTEXT_BODY = 9 * 1024 * 1024;

const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));
const text = (value: Uint8Array) => Buffer.from(value).toString('base64');

/** The Fastify plugin of the cloud's statistics service. */
export async function statsPlugin(app: FastifyInstance, options: StatsPluginOptions): Promise<void> {
  useProblems(app);
  const { stats, verifier, board } = options;
  const researcher = async (request: Parameters<typeof authenticate>[1]) => {
    const caller = await authenticate(verifier, request);
    requireRole(caller, 'researcher');
    return caller;
  };

  app.get('/consortium', async () => consortiumToJson(stats.consortium));

  if (board !== undefined) {
    app.get('/dkg', async () => board.state());
    app.post<{ Body: DkgMessage }>(
      '/dkg/messages',
      {
        bodyLimit: 256 * 1024,
        schema: {
          body: {
            type: 'object',
            required: ['ceremony', 'phase', 'sender', 'body', 'signature'],
            additionalProperties: false,
            properties: {
              ceremony: { type: 'string', maxLength: 64 },
              phase: { type: 'string', enum: [...DKG_PHASES] },
              sender: HOSPITAL,
              body: { type: 'object' },
              signature: { ...BASE64, maxLength: 200 },
            },
          },
        },
      },
      async (request, reply) => {
        await board.post(request.body);
        return reply.status(201).send({ phase: request.body.phase, sender: request.body.sender });
      },
    );
  }

  app.get('/queries', async () => ({ queries: await stats.openQueries() }));

  app.post<{ Body: { query: unknown } }>(
    '/queries',
    {
      bodyLimit: 64 * 1024,
      schema: { body: { type: 'object', required: ['query'], additionalProperties: false, properties: { query: { type: 'object' } } } },
    },
    async (request, reply) => {
      const caller = await researcher(request);
      const { ticket, queryHash, budget } = await stats.submit(caller.pseudonym, request.body.query);
      return reply.status(201).send({ queryId: ticket.queryId, queryHash, budget });
    },
  );

  app.get<{ Params: { id: string } }>('/queries/:id', { schema: { params: idParams } }, async (request) => stats.status(request.params.id));

  app.get<{ Params: { id: string } }>('/queries/:id/ticket', { schema: { params: idParams } }, async (request) => stats.ticket(request.params.id));

  const signedBody = (field: string, extra: string[] = []) => ({
    type: 'object',
    required: ['hospital', field, 'signature', ...extra],
    additionalProperties: false,
    properties: {
      hospital: HOSPITAL,
      [field]: { ...BASE64, maxLength: CIPHERTEXT_BODY },
      signature: { ...BASE64, maxLength: 200 },
      ...Object.fromEntries(extra.map((name) => [name, { ...BASE64, maxLength: CIPHERTEXT_BODY }])),
    },
  });

  app.post<{ Params: { id: string }; Body: { hospital: string; ciphertext: string; signature: string; proof: string } }>(
    '/queries/:id/contributions',
    {
      bodyLimit: CIPHERTEXT_BODY,
      schema: { params: idParams, body: signedBody('ciphertext', ['proof']) },
    },
    async (request, reply) => {
      const { hospital, ciphertext, signature, proof } = request.body;
      await stats.addContribution(request.params.id, { hospital, ciphertext: bytes(ciphertext), signature: bytes(signature), proof: bytes(proof) });
      return reply.status(201).send({ hospital });
    },
  );

  app.get<{ Params: { id: string } }>('/queries/:id/contributions', { schema: { params: idParams } }, async (request) => ({
    contributions: (await stats.contributions(request.params.id)).map((c) => ({
      hospital: c.hospital,
      ciphertext: text(c.ciphertext),
      signature: text(c.signature),
    })),
  }));

  app.post<{ Params: { id: string }; Body: { hospital: string; partial: string; signature: string } }>(
    '/queries/:id/partials',
    {
      bodyLimit: CIPHERTEXT_BODY,
      schema: { params: idParams, body: signedBody('partial') },
    },
    async (request, reply) => {
      const { hospital, partial, signature } = request.body;
      await stats.addPartial(request.params.id, { hospital, partial: bytes(partial), signature: bytes(signature) });
      return reply.status(201).send({ hospital });
    },
  );

  app.post<{ Params: { id: string } }>('/queries/:id/release', { schema: { params: idParams } }, async (request) => {
    await researcher(request);
    return stats.release(request.params.id);
  });

  app.get<{ Params: { querySet: string } }>(
    '/budgets/:querySet',
    {
      schema: { params: { type: 'object', required: ['querySet'], properties: { querySet: HOSPITAL } } },
    },
    async (request) => {
      await researcher(request);
      return stats.budget(request.params.querySet);
    },
  );
}
