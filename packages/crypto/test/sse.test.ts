/**
 * Searchable encryption (Mitra with per-writer sub-indexes, docs/crypto.md §12), tested against what the cloud
 * holds: a map from label to value, and the labels each search sends. Correctness against a plaintext oracle on
 * random histories; forward and backward privacy as views of that cloud; unauthorised keys; tamper; hostile input.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import * as sse from '../src/sse/index.ts';
import { IntegrityError, LimitExceededError, MalformedInputError } from '../src/errors.ts';
import { reseal, utf8 } from './helpers.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** The cloud's side: rows by label, and a log of every label a search asked for. */
class CloudModel {
  readonly rows = new Map<string, Uint8Array>();
  readonly states = new Map<string, Uint8Array>();
  store(rows: readonly sse.IndexRow[]): void {
    for (const r of rows) {
      assert.ok(!this.rows.has(hex(r.label)), 'labels never collide');
      this.rows.set(hex(r.label), r.value);
    }
  }
  answer(labels: readonly Uint8Array[]): Array<Uint8Array | undefined> {
    return labels.map((l) => this.rows.get(hex(l)));
  }
}

/** A writer of one sub-index: key, state kept sealed at the cloud like the gateway does. */
class Writer {
  state: sse.WriterState = sse.EMPTY_STATE;
  constructor(
    readonly key: Uint8Array,
    readonly context: string,
    private readonly cloud: CloudModel,
  ) {}
  write(updates: sse.IndexUpdate[]): sse.RecordRow[] {
    const before = this.cloud.states.get(this.context);
    const current = before === undefined ? sse.EMPTY_STATE : sse.openState(this.key, this.context, before, this.state.version);
    const { rows, state } = sse.update(this.key, current, updates);
    this.cloud.store(rows);
    this.cloud.states.set(this.context, sse.sealState(this.key, this.context, state));
    this.state = state;
    return rows;
  }
}

/** A reader holding a sub-index's key: opens the sealed state, sends labels, resolves. */
function search(cloud: CloudModel, key: Uint8Array, context: string, keyword: string): { ids: string[]; labels: Uint8Array[] } {
  const sealed = cloud.states.get(context);
  const state = sealed === undefined ? sse.EMPTY_STATE : sse.openState(key, context, sealed);
  const q = sse.query(key, state, keyword);
  const { recordIds, missing } = q.resolve(cloud.answer(q.labels));
  assert.deepEqual(missing, []);
  return { ids: recordIds.sort(), labels: q.labels };
}

const keyword = fc.constantFrom('type:Observation', 'type:Condition', 'code:http://loinc.org|2093-3', 'date:y:2020', 'status:final', 'word:chest', 'wörd:ü');
const recordId = fc.constantFrom('r1', 'r2', 'r3', 'record-4', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
const op = fc.record({ writer: fc.integer({ min: 0, max: 2 }), keyword, recordId, operation: fc.constantFrom<sse.Operation>('add', 'add', 'delete') });

describe('sse: Mitra with per-writer sub-indexes', () => {
  test('correctness: every search equals the plaintext oracle on random histories of three writers', () => {
    fc.assert(
      fc.property(fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), { maxLength: 12 }), (batches) => {
        const cloud = new CloudModel();
        const writers = [0, 1, 2].map((i) => new Writer(sse.generateIndexKey(), `patient|lab|1|1|hospital-${i}`, cloud));
        const oracle = [0, 1, 2].map(() => new Map<string, Set<string>>());
        for (const batch of batches) {
          for (const w of [0, 1, 2]) {
            const mine = batch.filter((u) => u.writer === w);
            if (mine.length === 0) continue;
            writers[w]!.write(mine);
            for (const u of mine) {
              const set = oracle[w]!.get(u.keyword) ?? new Set<string>();
              if (u.operation === 'add') set.add(u.recordId);
              else set.delete(u.recordId);
              oracle[w]!.set(u.keyword, set);
            }
          }
        }
        for (const w of [0, 1, 2]) {
          for (const kw of ['type:Observation', 'code:http://loinc.org|2093-3', 'wörd:ü', 'never-written']) {
            assert.deepEqual(search(cloud, writers[w]!.key, writers[w]!.context, kw).ids, [...(oracle[w]!.get(kw) ?? [])].sort());
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  test('forward privacy: labels of a token taken before an upload match none of its rows', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 8 }), fc.array(op, { minLength: 1, maxLength: 8 }), (first, later) => {
        const cloud = new CloudModel();
        const writer = new Writer(sse.generateIndexKey(), 'p|lab|1|1|h', cloud);
        writer.write(first);
        const tokens = ['type:Observation', 'code:http://loinc.org|2093-3', 'date:y:2020', 'status:final', 'word:chest', 'wörd:ü', 'type:Condition']
          .map((kw) => search(cloud, writer.key, writer.context, kw).labels)
          .flat()
          .map(hex);
        const newRows = writer.write(later);
        for (const row of newRows) assert.ok(!tokens.includes(hex(row.label)), 'a later row answers an earlier token');
        // Replaying every earlier label returns exactly the rows that existed then.
        assert.ok(tokens.every((l) => cloud.rows.has(l)));
      }),
      { numRuns: 50 },
    );
  });

  test('backward privacy (type II): after add+delete the record is gone, and the cloud view does not depend on which record it was', () => {
    const key = sse.generateIndexKey();
    const views = ['r-secret-A', 'r-secret-B'].map((deleted) => {
      const cloud = new CloudModel();
      const writer = new Writer(key, 'p|lab|1|1|h', cloud);
      writer.write([{ keyword: 'code:x|1', recordId: 'kept' }]);
      writer.write([{ keyword: 'code:x|1', recordId: deleted }]);
      writer.write([{ keyword: 'code:x|1', recordId: deleted, operation: 'delete' }]);
      const { ids, labels } = search(cloud, key, writer.context, 'code:x|1');
      assert.deepEqual(ids, ['kept']);
      const answered = cloud.answer(labels);
      // The cloud sees labels and masked values only: the deleted id, in any encoding, is in neither.
      const view = Buffer.concat([...labels, ...answered.map((v) => v!)]);
      for (const form of [utf8(deleted), Buffer.from(deleted).toString('base64'), hex(utf8(deleted))]) assert.equal(view.indexOf(form), -1);
      return { labels: labels.map(hex), valueBytes: answered.map((v) => v!.length) };
    });
    // What the token asks for is the same in both worlds: labels depend on key, keyword and counter only.
    assert.deepEqual(views[0], views[1]);
  });

  test('backward privacy: a deletion entry is indistinguishable from an addition in the rows (op byte masked)', () => {
    const key = sse.generateIndexKey();
    const { rows } = sse.update(
      key,
      sse.EMPTY_STATE,
      Array.from({ length: 400 }, (_, i) => ({ keyword: `w${i}`, recordId: 'same', operation: i % 2 === 0 ? 'add' : ('delete' as const) })),
    );
    // If the first value byte leaked the operation it would take at most 2 values; masked it spreads over ~200.
    const firstBytes = (parity: number) => new Set(rows.filter((_, i) => i % 2 === parity).map((r) => r.value[0]));
    assert.ok(firstBytes(0).size > 50 && firstBytes(1).size > 50);
  });

  test('unauthorised reader: another key (another writer, epoch or a guess) finds nothing in the cloud rows', () => {
    const cloud = new CloudModel();
    const writer = new Writer(sse.generateIndexKey(), 'p|lab|1|1|h', cloud);
    writer.write(['code:http://loinc.org|2093-3', 'type:Observation'].flatMap((kw) => ['a', 'b', 'c'].map((r) => ({ keyword: kw, recordId: r }))));
    const sealed = cloud.states.get(writer.context)!;
    for (const wrongKey of [sse.generateIndexKey(), new Uint8Array(32), sse.deriveIndexKey(writer.key, 'p|lab|2|1|h')]) {
      assert.throws(() => sse.openState(wrongKey, writer.context, sealed), IntegrityError);
      // Even knowing the counts (3 each), the labels of another key hit no stored row.
      const q = sse.query(wrongKey, { version: 1, counts: new Map([['code:http://loinc.org|2093-3', 3]]) }, 'code:http://loinc.org|2093-3');
      assert.deepEqual(cloud.answer(q.labels), [undefined, undefined, undefined]);
    }
  });

  test('scan: rows and sealed state contain no keyword, record id or date in any recognisable form', () => {
    const cloud = new CloudModel();
    const writer = new Writer(sse.generateIndexKey(), 'p|lab|1|1|h', cloud);
    const keywords = ['code:http://loinc.org|2093-3', 'type:Observation', 'date:d:2020-03-15', 'word:cholesterol'];
    writer.write(keywords.map((kw) => ({ keyword: kw, recordId: 'record-0123456789' })));
    const blob = Buffer.concat([...[...cloud.rows.keys()].map((l) => Buffer.from(l, 'hex')), ...cloud.rows.values(), cloud.states.get(writer.context)!]);
    const needles = [...keywords, '2093-3', 'loinc', 'Observation', '2020', 'cholesterol', 'record-0123456789'];
    for (const n of needles) {
      for (const form of [
        utf8(n),
        utf8(n.toLowerCase()),
        Buffer.from(n).toString('base64').replace(/=+$/, ''),
        createHash('sha256').update(n).digest().subarray(0, 8),
      ]) {
        assert.equal(blob.indexOf(form), -1, `found a form of '${n}'`);
      }
    }
  });

  test('rotation: a new epoch key derives unrelated labels; tokens of the old epoch match none of its rows', () => {
    const cloud = new CloudModel();
    const secret = sse.generateIndexKey();
    const old = new Writer(sse.deriveIndexKey(secret, 'p|lab|1|1|h'), 'p|lab|1|1|h', cloud);
    old.write([{ keyword: 'status:final', recordId: 'r1' }]);
    const oldState = old.state;
    const next = new Writer(sse.deriveIndexKey(secret, 'p|lab|1|2|h'), 'p|lab|1|2|h', cloud);
    next.write([{ keyword: 'status:final', recordId: 'r2' }]);
    // A reader holding only the old key, with counts as high as it likes, never reaches r2.
    const q = sse.query(old.key, { version: 9, counts: new Map([['status:final', 50]]) }, 'status:final');
    const answer = cloud.answer(q.labels);
    assert.deepEqual(q.resolve(answer).recordIds, ['r1']);
    assert.throws(() => sse.openState(old.key, old.context, cloud.states.get(next.context)!), IntegrityError);
    assert.equal(oldState.counts.get('status:final'), 1);
  });

  describe('tamper and hostile input', () => {
    const cloud = new CloudModel();
    const key = sse.generateIndexKey();
    const writer = new Writer(key, 'p|lab|1|1|h', cloud);
    writer.write(['a', 'b', 'c'].map((r) => ({ keyword: 'kw', recordId: `record-${r}` })));

    test('a row moved under another label, or a mangled format byte, is an IntegrityError', () => {
      const q = sse.query(key, writer.state, 'kw');
      const values = cloud.answer(q.labels) as Uint8Array[];
      assert.throws(() => q.resolve([values[1]!, values[0]!, values[2]!]), IntegrityError);
      for (const offset of [1, 40, 47]) {
        const altered = values.map((v) => v.slice());
        altered[0]![offset]! ^= 0x80;
        assert.throws(() => q.resolve(altered), IntegrityError);
      }
      assert.throws(() => q.resolve([values[0]!, values[1]!, new Uint8Array(48)]), IntegrityError);
    });

    test('answers of the wrong shape are MalformedInputError; a withheld row is reported missing', () => {
      const q = sse.query(key, writer.state, 'kw');
      const values = cloud.answer(q.labels) as Uint8Array[];
      assert.throws(() => q.resolve(values.slice(0, 2)), MalformedInputError);
      assert.throws(() => q.resolve([values[0]!, values[1]!, values[2]!.subarray(0, 47)]), MalformedInputError);
      assert.throws(() => q.resolve([values[0]!, values[1]!, new Uint8Array(4096)]), MalformedInputError);
      assert.deepEqual(q.resolve([values[0]!, undefined, values[2]!]), { recordIds: ['record-a', 'record-c'], missing: [2] });
    });

    test('sealed state: altered (checksum resealed), truncated, foreign context, stale version or wrong key', () => {
      const sealed = cloud.states.get(writer.context)!;
      assert.throws(
        () =>
          sse.openState(
            key,
            writer.context,
            reseal(sealed, (b) => {
              b[20]! ^= 1;
              return b;
            }),
          ),
        IntegrityError,
      );
      assert.throws(
        () =>
          sse.openState(
            key,
            writer.context,
            reseal(sealed, (b) => b.subarray(0, 20)),
          ),
        IntegrityError,
      );
      assert.throws(() => sse.openState(key, writer.context, sealed.subarray(0, 30)), IntegrityError);
      assert.throws(() => sse.openState(key, writer.context, utf8('not a state')), MalformedInputError);
      assert.throws(() => sse.openState(key, 'p|lab|1|1|other-hospital', sealed), IntegrityError);
      assert.throws(() => sse.openState(key, writer.context, sealed, 2), IntegrityError);
      assert.equal(sse.openState(key, writer.context, sealed, 1).counts.get('kw'), 3);
    });

    test('the sealed state is padded: 1 and 40 keywords give the same size', () => {
      const one = sse.sealState(key, 'c', { version: 1, counts: new Map([['k', 1]]) });
      const forty = sse.sealState(key, 'c', { version: 1, counts: new Map(Array.from({ length: 40 }, (_, i) => [`keyword-${i}`, i + 1])) });
      assert.equal(one.length, forty.length);
    });

    test('limits: keys, keywords, record ids and counts out of range are typed errors', () => {
      assert.throws(() => sse.query(new Uint8Array(31), writer.state, 'kw'), MalformedInputError);
      assert.throws(() => sse.query(key, writer.state, ''), MalformedInputError);
      assert.throws(() => sse.query(key, writer.state, 'x'.repeat(513)), LimitExceededError);
      assert.throws(() => sse.query(key, { version: 1, counts: new Map([['kw', sse.MAX_COUNT + 1]]) }, 'kw'), LimitExceededError);
      assert.throws(() => sse.update(key, sse.EMPTY_STATE, [{ keyword: 'kw', recordId: 'x'.repeat(47) }]), LimitExceededError);
      assert.throws(() => sse.update(key, { version: 1, counts: new Map([['kw', sse.MAX_COUNT]]) }, [{ keyword: 'kw', recordId: 'r' }]), LimitExceededError);
      assert.throws(() => sse.deriveIndexKey(new Uint8Array(5), 'c'), MalformedInputError);
    });
  });
});
