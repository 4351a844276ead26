/**
 * HTTP clients of the statistics API: a researcher's (submit, release, budget) and a hospital's agent, which runs
 * the hospital's half of a query against the cloud — fetch the ticket, contribute its encrypted histogram, then,
 * once every member has contributed, fetch the contributions and post its partial decryption of their total.
 */
import { curve, MedShareError, threshold, UnavailableError } from '@medshare/crypto';
import { call, sessionCall, type Session } from '../sdk/client.ts';
import type { BudgetState } from './budget.ts';
import type { QueryStatus, Release } from './aggregator.ts';
import type { StatsResource } from './evaluate.ts';
import type { Contribution, QueryTicket, StatsHospital } from './hospital.ts';

const bytes = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));
const text = (value: Uint8Array) => Buffer.from(value).toString('base64');

/** A researcher's view of the statistics API, as a logged-in session carrying role:researcher (DPoP-bound). */
export class StatsClient {
  readonly base: URL;
  constructor(private readonly session: Session) {
    this.base = session.urls.cloud;
  }

  /** Submits a query; refused (403/413 as typed errors) outside the allow-list or over budget. */
  submit(query: unknown): Promise<{ queryId: string; queryHash: string; budget: BudgetState }> {
    return sessionCall(this.session, this.base, 'POST', '/stats/queries', { body: { query } });
  }

  status(queryId: string): Promise<QueryStatus> {
    return call(this.base, 'GET', `/stats/queries/${queryId}`);
  }

  release(queryId: string): Promise<Release> {
    return sessionCall(this.session, this.base, 'POST', `/stats/queries/${queryId}/release`);
  }

  budget(querySet: string): Promise<BudgetState> {
    return sessionCall(this.session, this.base, 'GET', `/stats/budgets/${querySet}`);
  }

  /** The consortium, once its key generation is done (UnavailableError until then). */
  consortium(): Promise<{ publicKey: string; members: { code: string; index: number }[] }> {
    return call(this.base, 'GET', '/stats/consortium');
  }

  /**
   * Submits a query and waits while the hospitals' agents contribute and decrypt: once every member has contributed
   * and t have posted partial decryptions, releases it. UnavailableError after `timeoutMs` naming who is missing.
   */
  async run(query: unknown, options: { pollMs?: number; timeoutMs?: number } = {}): Promise<Release> {
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    const pause = () => new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 500));
    let consortium: Awaited<ReturnType<StatsClient['consortium']>>;
    for (;;) {
      try {
        consortium = await this.consortium();
        break;
      } catch (error) {
        // The hospitals' agents may still be generating the key.
        if (!(error instanceof MedShareError && error.code === 'UNAVAILABLE') || Date.now() > deadline) throw error;
        await pause();
      }
    }
    await curve.initCurve();
    const t = threshold.decodePublicKey(bytes(consortium.publicKey)).t;
    const members = consortium.members.map((m) => m.code);
    const { queryId } = await this.submit(query);
    for (;;) {
      const status = await this.status(queryId);
      const missing = members.filter((m) => !status.contributors.includes(m));
      if (missing.length === 0 && status.partials.length >= t) return this.release(queryId);
      if (Date.now() > deadline) {
        throw new UnavailableError(
          `query ${queryId}: ${missing.length > 0 ? `no contribution from ${missing.join(', ')}` : `${status.partials.length} of ${t} partial decryptions (${status.partials.join(', ') || 'none'})`}`,
        );
      }
      await pause();
    }
  }
}

/** A hospital's agent talking to the cloud's statistics API. */
export class HospitalStatsClient {
  readonly base: URL;
  constructor(
    baseUrl: string | URL,
    private readonly hospital: StatsHospital,
  ) {
    this.base = new URL(baseUrl);
  }

  /** Evaluates the query on `resources` (this hospital's own records) and posts the signed encrypted histogram. */
  async contribute(queryId: string, resources: Iterable<StatsResource>): Promise<void> {
    const ticket = await call<QueryTicket>(this.base, 'GET', `/stats/queries/${queryId}/ticket`);
    const c = await this.hospital.contribute(ticket, resources);
    await call(this.base, 'POST', `/stats/queries/${queryId}/contributions`, {
      body: { hospital: c.hospital, ciphertext: text(c.ciphertext), signature: text(c.signature), proof: text(c.proof) },
    });
  }

  /** Fetches every contribution, checks and adds them here, and posts this hospital's partial decryption of the total. */
  async decrypt(queryId: string): Promise<void> {
    const ticket = await call<QueryTicket>(this.base, 'GET', `/stats/queries/${queryId}/ticket`);
    const { contributions } = await call<{ contributions: { hospital: string; ciphertext: string; signature: string }[] }>(
      this.base,
      'GET',
      `/stats/queries/${queryId}/contributions`,
    );
    const decoded: Contribution[] = contributions.map((c) => ({ hospital: c.hospital, ciphertext: bytes(c.ciphertext), signature: bytes(c.signature) }));
    const p = await this.hospital.decrypt(ticket, decoded);
    await call(this.base, 'POST', `/stats/queries/${queryId}/partials`, {
      body: { hospital: p.hospital, partial: text(p.partial), signature: text(p.signature) },
    });
  }
}
