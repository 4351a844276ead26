/**
 * Public verification over HTTP: the routes an auditor, a hospital or a patient's app uses to check the log
 * without database access (remote.ts is their client). Nothing here is secret: entries hold pseudonyms, codes and
 * hashes only, checkpoints and proofs are public by design.
 *
 *   GET /keys                          the log's and witnesses' verifier keys and the quorum (to pin, not to trust blindly)
 *   GET /checkpoint                    the latest checkpoint carrying the quorum's cosignatures (text/plain note; 503 once halted)
 *   GET /entries?start=&end=           stored entries [start, end), at most 1,000 (JSON; each checked by the client)
 *   GET /proof/inclusion?index=&size=  RFC 9162 audit path (base64, leaf side first)
 *   GET /proof/consistency?first=&second=
 *   GET /bundle/:index                 inclusion bundle of one entry against the latest witnessed checkpoint (503 while
 *                                      none covers it yet: a witness down)
 *   GET /patients/:patient/bundles     the bundles of every entry about one pseudonymous patient (her access log, proven)
 *   GET /health                        200 while the log is consistent, 503 with the alarm once it is not
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { MalformedInputError, UnavailableError } from '@medshare/crypto';
import { parseCheckpoint, parseNote } from './note.ts';
import type { CheckpointVerifier } from './keys.ts';
import type { AuditLog, StoredEntry } from './log.ts';
import { bundlesAgainst, type InclusionBundle } from './bundle.ts';

/** What the routes serve. */
export interface LedgerRoutesOptions {
  log: AuditLog;
  logKey: CheckpointVerifier;
  witnessKeys: readonly CheckpointVerifier[];
}

/** Most entries one `GET /entries` returns. */
export const MAX_ENTRIES_PER_PAGE = 1_000;

const size = { type: 'integer', minimum: 0, maximum: 2 ** 40 } as const;
const query = (names: string[]) => ({
  querystring: { type: 'object', required: names, additionalProperties: false, properties: Object.fromEntries(names.map((n) => [n, size])) },
});

const sizeOf = (note: string): number => parseCheckpoint(parseNote(note).body).size;

/** Registers the public ledger routes (under the plugin's prefix). */
export const ledgerRoutesPlugin: FastifyPluginAsync<LedgerRoutesOptions> = async (app: FastifyInstance, { log, logKey, witnessKeys }) => {
  /** The newest checkpoint the quorum cosigned (after the cosigning under way), else the newest one (the client then refuses it). */
  const witnessed = async (): Promise<string> => {
    const { alarm } = log.health();
    // A halted log vouches for nothing; its health route says why.
    if (alarm !== undefined) throw new UnavailableError(`the audit log is halted: entry ${alarm.index}: ${alarm.problem}`);
    await log.flush();
    return log.health().witnessedSize > 0 || log.quorum === 0 ? log.witnessedCheckpoint(0) : log.checkpoint();
  };

  app.get('/keys', async () => ({ log: logKey.vkey, witnesses: witnessKeys.map((k) => k.vkey), quorum: log.quorum }));

  app.get('/checkpoint', async (_request, reply) => reply.type('text/plain; charset=utf-8').send(await witnessed()));

  app.get<{ Querystring: { start: number; end: number } }>('/entries', { schema: query(['start', 'end']) }, async (request) => {
    const { start, end } = request.query;
    if (end - start > MAX_ENTRIES_PER_PAGE) throw new MalformedInputError(`at most ${MAX_ENTRIES_PER_PAGE} entries a request`);
    return { entries: (await log.storedEntries(start, Math.min(end, log.size))).map((e) => ({ index: e.index, entry: e.entry })) };
  });

  app.get<{ Querystring: { index: number; size: number } }>('/proof/inclusion', { schema: query(['index', 'size']) }, async (request) => ({
    proof: log.inclusionProof(request.query.index, request.query.size).map((h) => h.toString('base64')),
  }));

  app.get<{ Querystring: { first: number; second: number } }>('/proof/consistency', { schema: query(['first', 'second']) }, async (request) => ({
    proof: log.consistencyProof(request.query.first, request.query.second).map((h) => h.toString('base64')),
  }));

  const bundlesOf = (entries: readonly StoredEntry[], checkpoint: string): InclusionBundle[] => bundlesAgainst(log, entries, checkpoint, sizeOf(checkpoint));

  app.get<{ Params: { index: number } }>(
    '/bundle/:index',
    { schema: { params: { type: 'object', required: ['index'], properties: { index: size } } } },
    async (request): Promise<InclusionBundle> => {
      const { index } = request.params;
      const checkpoint = await witnessed();
      if (index >= log.size) throw new MalformedInputError(`entry ${index} is not in the log (${log.size} entries)`);
      // Logged but not yet witnessed (a witness down): the bundle is pending, ask again later.
      if (index >= sizeOf(checkpoint) || (log.quorum > 0 && log.health().witnessedSize <= index)) {
        throw new UnavailableError(`entry ${index} is not yet covered by a witnessed checkpoint`);
      }
      return bundlesOf([await log.entry(index)], checkpoint)[0]!;
    },
  );

  app.get<{ Params: { patient: string } }>(
    '/patients/:patient/bundles',
    { schema: { params: { type: 'object', required: ['patient'], properties: { patient: { type: 'string', pattern: '^psn:[A-Za-z0-9_-]{16,86}$' } } } } },
    async (request) => {
      const checkpoint = await witnessed();
      const covered = (await log.entriesForPatient(request.params.patient)).filter((e) => e.index < sizeOf(checkpoint));
      return { bundles: bundlesOf(covered, checkpoint) };
    },
  );

  app.get('/health', async (_request, reply) => {
    const health = log.health();
    return reply.status(health.ok ? 200 : 503).send(health);
  });
};
