/**
 * How many password guesses the throttle (account/limiter.ts, DEFAULT_LIMITS) leaves an attacker in a day, on a
 * simulated clock: she tries again the moment she may, and every guess fails. These figures are the ones stated in
 * docs/identity.md; the test fails if the limits change them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttemptLimiter, DEFAULT_LIMITS, MemoryAttemptStore } from '../src/index.ts';

const DAY_MS = 24 * 3600 * 1000;

/**
 * Guesses in one day by an attacker at `addresses` addresses on `accounts` accounts, who guesses the moment the
 * throttle lets her (a refused attempt costs her nothing, so she may as well poll; the simulation jumps to the
 * exact moment instead).
 */
async function guessesPerDay(accounts: number, addresses: number): Promise<{ perAccount: number[]; total: number }> {
  let nowMs = 0;
  const limiter = new AttemptLimiter(new MemoryAttemptStore(1_000_000, () => nowMs), DEFAULT_LIMITS, () => nowMs);
  const perAccount = new Array<number>(accounts).fill(0);
  const pairs = Array.from({ length: accounts * addresses }, (_, i) => ({
    account: `user${i % accounts}`,
    index: i % accounts,
    client: `10.0.0.${Math.floor(i / accounts)}`,
    at: 0,
  }));
  for (;;) {
    const pair = pairs.reduce((a, b) => (b.at < a.at ? b : a));
    if (pair.at >= DAY_MS) break;
    nowMs = pair.at;
    const wait = await limiter.wait(pair.account, pair.client);
    if (wait > 0) {
      pair.at = nowMs + wait;
      continue;
    }
    await limiter.check(pair.account, pair.client);
    await limiter.fail(pair.account, pair.client);
    perAccount[pair.index]!++;
  }
  return { perAccount, total: perAccount.reduce((a, b) => a + b, 0) };
}

test('one address against one account: 35 guesses a day', async () => {
  const { total } = await guessesPerDay(1, 1);
  assert.equal(total, 35);
});

test('one address spraying 10 accounts: 50 guesses a day in all (the per-address count binds first)', async () => {
  const { total, perAccount } = await guessesPerDay(10, 1);
  assert.equal(total, 50);
  assert.ok(Math.max(...perAccount) <= 35);
});

test("each further address adds at most one address's budget on an account (35 a day)", async () => {
  const { total } = await guessesPerDay(1, 4);
  assert.equal(total, 4 * 35);
});
