/**
 * A witness over HTTP: the c2sp.org/tlog-witness `add-checkpoint` endpoint as a Fastify plugin, mounted in each
 * hospital's domain (with the hospital's own witness key and database). Status codes are the spec's: 404 for
 * an unknown log, 403 when no trusted log signature verifies, 400 for a malformed request, 409 with a
 * `text/x.tlog.size` body when the old size is not the witness's, 409 for the same size with another root, 422
 * for a consistency proof that does not verify. Bodies are plain text.
 *
 * `POST /chain-cosignature` (ours, not C2SP): the body is a checkpoint note; a witness with a chain key answers its
 * ECDSA cosignature for the anchor contract (0x hex) if the note is the checkpoint it last cosigned, else 409 with
 * its size; 404 without a chain key.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { IntegrityError, MedShareError, NotFoundError } from '@medshare/crypto';
import { parseAddCheckpoint } from './cosigner.ts';
import { ForkDetectedError, WitnessConflictError } from './errors.ts';
import { formatNote, parseCheckpoint, parseNote } from './note.ts';
import type { Witness } from './witness.ts';

/** The witnesses served, one per log origin. */
export interface WitnessPluginOptions {
  /** A `Witness`, or anything answering for one origin as it does (a hospital's witness opened on first request). */
  witnesses: ReadonlyArray<Pick<Witness, 'origin' | 'addCheckpoint'> & Partial<Pick<Witness, 'chainCosign'>>>;
}

function statusOf(error: unknown): number {
  if (error instanceof WitnessConflictError) return 409;
  if (error instanceof ForkDetectedError) {
    const [a, b] = error.evidence.map((note) => parseCheckpoint(parseNote(note).body).size);
    return a === b ? 409 : 422;
  }
  if (error instanceof NotFoundError) return 404;
  if (error instanceof IntegrityError) return 403;
  if (error instanceof MedShareError) return error.code === 'LIMIT' ? 413 : 400;
  // Fastify's own refusals (body too large, ...) keep their 4xx status.
  const status = (error as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 500 ? status : 500;
}

/** Registers `POST /add-checkpoint` (under the plugin's prefix). */
export const witnessPlugin: FastifyPluginAsync<WitnessPluginOptions> = async (app: FastifyInstance, options) => {
  const byOrigin = new Map(options.witnesses.map((w) => [w.origin, w]));
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_request, body, done) => done(null, body));
  app.setErrorHandler((error, _request, reply) => {
    const status = statusOf(error);
    if (error instanceof WitnessConflictError) return reply.status(409).type('text/x.tlog.size').send(`${error.witnessSize}\n`);
    const message = status === 500 ? 'internal error' : (error as Error).message;
    return reply.status(status).type('text/plain; charset=utf-8').send(`${message}\n`);
  });
  app.post('/add-checkpoint', { schema: { hide: true } }, async (request, reply) => {
    const submitted = parseAddCheckpoint(typeof request.body === 'string' ? request.body : '');
    const origin = parseCheckpoint(parseNote(submitted.note).body).origin;
    const witness = byOrigin.get(origin);
    if (witness === undefined) throw new NotFoundError(`no witness here for ${origin}`);
    const cosignature = await witness.addCheckpoint(submitted);
    // One signature line: formatNote of an empty body yields "\n— name sig\n"; drop the leading newline.
    return reply.type('text/plain; charset=utf-8').send(formatNote('', [cosignature]).slice(1));
  });
  app.post('/chain-cosignature', { schema: { hide: true } }, async (request, reply) => {
    const note = typeof request.body === 'string' ? request.body : '';
    const origin = parseCheckpoint(parseNote(note).body).origin;
    const witness = byOrigin.get(origin);
    if (witness?.chainCosign === undefined) throw new NotFoundError(`no witness here gives chain cosignatures for ${origin}`);
    // A WitnessConflictError becomes 409 with the witness's size, as for add-checkpoint (the error handler).
    return reply.type('text/plain; charset=utf-8').send(`${await witness.chainCosign(note)}\n`);
  });
};
