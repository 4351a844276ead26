/**
 * One statistics query through every step in one process: the cloud accepts it, each hospital contributes from
 * its own records, the first t hospitals (or those named) decrypt the total, the cloud releases. The CLI's
 * single-machine `medshare stats run` and the benchmark use it; across processes the same steps go over HTTP
 * (client.ts).
 */
import type { StatsAggregator, Release } from './aggregator.ts';
import type { StatsResource } from './evaluate.ts';
import type { StatsHospital } from './hospital.ts';

/** A hospital agent with the records it evaluates the query on. */
export interface LocalHospital {
  agent: StatsHospital;
  resources: () => Iterable<StatsResource>;
}

/** Runs `query` for `requester` and returns the release (whatever submit, contribute, decrypt or release throw). */
export async function runLocalQuery(
  cloud: StatsAggregator,
  hospitals: readonly LocalHospital[],
  requester: string,
  query: unknown,
  decryptors?: readonly string[],
): Promise<Release> {
  const { ticket } = await cloud.submit(requester, query);
  for (const h of hospitals) await cloud.addContribution(ticket.queryId, await h.agent.contribute(ticket, h.resources()));
  const contributions = await cloud.contributions(ticket.queryId);
  const chosen = decryptors ? hospitals.filter((h) => decryptors.includes(h.agent.code)) : hospitals.slice(0, cloud.consortium.publicKey.t);
  for (const h of chosen) await cloud.addPartial(ticket.queryId, await h.agent.decrypt(ticket, contributions));
  return cloud.release(ticket.queryId);
}

/** A release as text lines: one per cell, then the noise, the budget and who took part. */
export function formatRelease(release: Release): string[] {
  const lines = release.cells.map((cell) => {
    const group =
      Object.entries(cell.group)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || 'all';
    const count = cell.count === null ? `suppressed (< ${release.suppressedBelow})` : String(cell.count);
    const sum =
      cell.sum === undefined
        ? ''
        : cell.sum === null
          ? ''
          : `  sum ${(cell.sum / (release.scale ?? 1)).toFixed(1)}  mean ${(cell.sum / (release.scale ?? 1) / cell.count!).toFixed(2)}`;
    return `${group.padEnd(28)} ${count}${sum}`;
  });
  lines.push(
    `noise: discrete Laplace, σ ≈ ${release.noise.countStdDev.toFixed(2)} per count${release.noise.sumStdDev === undefined ? '' : `, ${(release.noise.sumStdDev / (release.scale ?? 1)).toFixed(2)} per sum`}`,
  );
  lines.push(`budget ${release.budget.querySet}: ε ${release.budget.spent} of ${release.budget.budget} spent, ${release.budget.remaining} left`);
  lines.push(
    `contributed: ${release.contributors.join(', ')}; decrypted by: ${release.decryptedBy.join(', ')}${release.rejected.length ? `; rejected (proof failed): ${release.rejected.join(', ')}` : ''}`,
  );
  return lines;
}
