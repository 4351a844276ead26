/** Cross-hospital statistics under threshold homomorphic encryption (docs/platform.md § Statistics, docs/crypto.md). */
export { DEFAULT_ALLOW_LIST, parseQuery, queryHash, groupsOf, cellCount, type AllowList, type StatsQuery } from './query.ts';
export { evaluateQuery, type StatsResource } from './evaluate.ts';
export { formConsortium, consortiumFromJson, consortiumToJson, type Consortium, type MemberSecrets } from './consortium.ts';
export { StatsHospital, noisyHistogram, cellBits, type Contribution, type ProvenContribution, type QueryTicket, type SignedPartial } from './hospital.ts';
export { StatsAggregator, DEFAULT_RELEASE_RULES, type Release, type ReleasedCell, type ReleaseRules, type QueryStatus } from './aggregator.ts';
export { statsPlugin } from './plugin.ts';
export { StatsClient, HospitalStatsClient } from './client.ts';
export type { BudgetState } from './budget.ts';
export { runLocalQuery, formatRelease, type LocalHospital } from './local.ts';
export { StatsAgent, type StatsAgentOptions, type AgentStatus } from './agent.ts';
export { StatsDkgBoard, type BoardState } from './dkg-board.ts';
