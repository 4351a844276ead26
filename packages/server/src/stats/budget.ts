/**
 * Privacy budget accounting, shared by the cloud and every hospital: ε is kept in integer millionths so that sums
 * are exact, and a spend is one conditional UPDATE (`spent + ε ≤ budget`), atomic on both engines, so two
 * concurrent queries can never both fit into the last of a budget. Sequential composition: a query set's queries
 * together are ε-DP with ε the sum of theirs.
 */
import { AccessDeniedError, LimitExceededError } from '@medshare/crypto';
import type { Queryable } from '@medshare/db';

/** ε → integer millionths (RangeError for a non-positive or absurd ε, which parsing excludes anyway). */
export function epsilonToMicros(epsilon: number): number {
  if (!(epsilon > 0 && epsilon <= 1_000)) throw new RangeError('epsilon must be in (0, 1000]');
  return Math.round(epsilon * 1_000_000);
}

/** What a budget looks like after a spend. */
export interface BudgetState {
  querySet: string;
  budget: number;
  spent: number;
  remaining: number;
}

const state = (querySet: string, budgetMicros: number, spentMicros: number): BudgetState => ({
  querySet,
  budget: budgetMicros / 1e6,
  spent: spentMicros / 1e6,
  remaining: (budgetMicros - spentMicros) / 1e6,
});

/**
 * Spends `micros` from the budget row selected by `where` (column = value pairs) in `table`. Throws
 * AccessDeniedError when no budget was set for the query set, LimitExceededError when it would be exceeded
 * (nothing is spent). `who` names the accountant in messages.
 */
export async function spendBudget(
  tx: Queryable,
  table: 'stats_budgets' | 'stats_hospital_budgets',
  where: Record<string, string>,
  querySet: string,
  micros: number,
  who: string,
): Promise<BudgetState> {
  const keys = Object.keys(where);
  const condition = (first: number) => keys.map((k, i) => `${k} = $${i + first}`).join(' AND ');
  const values = keys.map((k) => where[k]);
  const updated = await tx.query<{ budget_micros: string; spent_micros: string }>(
    `UPDATE ${table} SET spent_micros = spent_micros + $1 WHERE ${condition(2)} AND spent_micros + $1 <= budget_micros RETURNING budget_micros, spent_micros`,
    [micros, ...values],
  );
  const row = updated.rows[0];
  if (row !== undefined) return state(querySet, Number(row.budget_micros), Number(row.spent_micros));
  const current = (
    await tx.query<{ budget_micros: string; spent_micros: string }>(`SELECT budget_micros, spent_micros FROM ${table} WHERE ${condition(1)}`, values)
  ).rows[0];
  if (current === undefined) throw new AccessDeniedError(`${who}: no privacy budget is set for query set ${querySet}`);
  const now = state(querySet, Number(current.budget_micros), Number(current.spent_micros));
  throw new LimitExceededError(
    `${who}: the privacy budget of query set ${querySet} is exhausted: ε ${now.spent} of ${now.budget} spent, ${now.remaining.toFixed(6).replace(/\.?0+$/, '')} left, this query needs ${micros / 1e6}`,
  );
}

/** Sets (or raises/lowers) a budget total; never below what is spent (RangeError). */
export async function setBudget(
  tx: Queryable,
  table: 'stats_budgets' | 'stats_hospital_budgets',
  where: Record<string, string>,
  budget: number,
): Promise<void> {
  const micros = epsilonToMicros(budget);
  const keys = Object.keys(where);
  const updated = await tx.query(
    `INSERT INTO ${table} (${keys.join(', ')}, budget_micros) VALUES (${keys.map((_, i) => `$${i + 2}`).join(', ')}, $1)
     ON CONFLICT (${keys.join(', ')}) DO UPDATE SET budget_micros = $1 WHERE ${table}.spent_micros <= $1 RETURNING budget_micros`,
    [micros, ...keys.map((k) => where[k])],
  );
  if (updated.rows.length === 0) throw new RangeError('a budget cannot be set below what is already spent');
}

/** The current budget of a query set, or undefined. */
export async function readBudget(
  db: Queryable,
  table: 'stats_budgets' | 'stats_hospital_budgets',
  where: Record<string, string>,
  querySet: string,
): Promise<BudgetState | undefined> {
  const keys = Object.keys(where);
  const row = (
    await db.query<{ budget_micros: string; spent_micros: string }>(
      `SELECT budget_micros, spent_micros FROM ${table} WHERE ${keys.map((k, i) => `${k} = $${i + 1}`).join(' AND ')}`,
      keys.map((k) => where[k]),
    )
  ).rows[0];
  return row === undefined ? undefined : state(querySet, Number(row.budget_micros), Number(row.spent_micros));
}
