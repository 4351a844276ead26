/**
 * The statistics agent's routes on its hospital's service (register with prefix `/stats-agent`):
 *
 *   GET  /keys                              its public keys (Ed25519 verify key, X25519 sealing key): what the
 *                                           cloud's board and the other hospitals check the ceremony against
 *   GET  /                                  its stage in the key generation, and the queries it declined (and why)
 *   POST /queries/:id/approve  (admin)      the hospital's administrator approves decrypting that query's total
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UnauthenticatedError } from '@medshare/crypto';
import { useProblems } from '../http.ts';
import type { StatsAgent } from './agent.ts';

export interface StatsAgentPluginOptions {
  readonly agent: StatsAgent;
  /** The hospital's administrator credential. */
  readonly adminToken: string;
}

const digest = (text: string) => createHash('sha256').update(text).digest();

export async function statsAgentPlugin(app: FastifyInstance, options: StatsAgentPluginOptions): Promise<void> {
  useProblems(app);
  const { agent } = options;
  const admin = digest(options.adminToken);
  const requireAdmin = (request: FastifyRequest) => {
    const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? '');
    if (match === null || !timingSafeEqual(digest(match[1]!), admin)) throw new UnauthenticatedError("the hospital administrator's credential is required");
  };
  app.get('/keys', async () => agent.keys);
  app.get('/', async () => agent.status());
  app.post<{ Params: { id: string } }>(
    '/queries/:id/approve',
    {
      schema: { params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{8,64}$' } } } },
    },
    async (request, reply) => {
      requireAdmin(request);
      await agent.approve(request.params.id);
      return reply.status(201).send({ queryId: request.params.id, approved: true });
    },
  );
}
