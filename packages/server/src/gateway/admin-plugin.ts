/**
 * The hospital administrator's view of its gateway and witness, behind this hospital's administrator credential
 * (no other hospital's, no user's token), problem+json errors. Register it with prefix `/gateway/admin`.
 *
 *   GET /receipts?limit=&before=   { hospital, witness, receipts, trustProblem? }: the upload receipts, newest first
 *                                  (at most `limit`, default 100, of entries below `before`), each checked again
 *                                  as listed (receipts.ts), and the witness's state (ledger.ts WitnessState)
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { useProblems } from '../http.ts';
import type { HospitalWitness } from '../ledger.ts';
import { listReceipts, MAX_RECEIPTS_LISTED } from './receipt-listing.ts';
import type { Database } from '@medshare/db';

export interface GatewayAdminPluginOptions {
  readonly db: Database;
  readonly hospital: string;
  readonly witness: HospitalWitness;
  /** Throws AccessDeniedError unless the request carries this hospital's administrator credential. */
  readonly requireAdmin: (request: FastifyRequest) => void;
}

const LIST_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_RECEIPTS_LISTED, default: 100 }, before: { type: 'integer', minimum: 0, maximum: 2 ** 40 } },
} as const;

/** The Fastify plugin. */
export async function gatewayAdminPlugin(app: FastifyInstance, options: GatewayAdminPluginOptions): Promise<void> {
  useProblems(app);
  const { db, hospital, witness } = options;
  // The credential is checked before the query string is validated: a caller without it learns nothing of the route.
  app.addHook('onRequest', async (request) => options.requireAdmin(request));
  app.get<{ Querystring: { limit: number; before?: number } }>('/receipts', { schema: { querystring: LIST_QUERY } }, async (request, reply) => {
    const [listing, state] = await Promise.all([
      listReceipts(db, hospital, () => witness.receiptTrust(), {
        limit: request.query.limit,
        ...(request.query.before === undefined ? {} : { before: request.query.before }),
      }),
      witness.state(),
    ]);
    return reply.header('cache-control', 'no-store').send({ hospital, witness: state, ...listing });
  });
}
