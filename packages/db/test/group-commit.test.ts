import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupCommit } from '../src/index.ts';

test("group commit: concurrent callers each get their own item's result, batched in arrival order, at most maxBatch a write", async () => {
  const writes: number[][] = [];
  const commit = new GroupCommit<number, string>(async (items) => {
    writes.push([...items]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    return items.map((n) => `result of ${n}`);
  }, 3);
  // Five in one tick, two more while the first write runs: they queue behind 4 and 5, three a write.
  const first = [1, 2, 3, 4, 5].map((n) => commit.add(n));
  await new Promise((resolve) => setImmediate(resolve));
  const later = [6, 7].map((n) => commit.add(n));
  assert.deepEqual(
    await Promise.all([...first, ...later]),
    [1, 2, 3, 4, 5, 6, 7].map((n) => `result of ${n}`),
  );
  assert.deepEqual(writes, [[1, 2, 3], [4, 5, 6], [7]]);
  // A lone caller after the burst gets a write of its own.
  assert.equal(await commit.add(8), 'result of 8');
  assert.deepEqual(writes.at(-1), [8]);
});

test('group commit: a failed write rejects only the callers it carried; the next batch is still written', async () => {
  const commit = new GroupCommit<number, number>(async (items) => {
    if (items.includes(2)) throw new Error('write failed');
    return items.map((n) => n * 10);
  }, 2);
  const settled = await Promise.allSettled([1, 2, 3, 4].map((n) => commit.add(n)));
  assert.deepEqual(
    settled.map((s) => s.status),
    ['rejected', 'rejected', 'fulfilled', 'fulfilled'],
  );
  assert.deepEqual(
    settled.slice(2).map((s) => (s as PromiseFulfilledResult<number>).value),
    [30, 40],
  );
  assert.equal((settled[0] as PromiseRejectedResult).reason.message, 'write failed');
});
