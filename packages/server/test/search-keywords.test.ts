/**
 * The searchable index's keywords (src/search/keywords.ts): what a resource is indexed under, range queries by
 * decomposition (the buckets cover exactly the days asked for), FHIR query parsing (hostile values refused), and the
 * patient's desensitisation rules (an excluded word is never a keyword).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MalformedInputError, LimitExceededError } from '@medshare/crypto';
import { coverDays, dateKeywords, indexRuleDigest, keywordsOf, parseIndexRules, parseQuery, wordsOf } from '../src/search/keywords.ts';

const DAY_MS = 86_400_000;
const dayOf = (n: number) => new Date(Date.UTC(1995, 0, 1) + n * DAY_MS).toISOString().slice(0, 10);

describe('search keywords', () => {
  test('range decomposition: the year/month/day buckets of [from, to] hold exactly its days, none twice', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4000 }), fc.integer({ min: 0, max: 1200 }), (start, length) => {
        const from = dayOf(start);
        const to = dayOf(start + length);
        const buckets = coverDays(from, to);
        // Every day of a wider window is in exactly as many buckets as it is in the range (1 or 0).
        for (let n = start - 40; n <= start + length + 40; n++) {
          const inBuckets = dateKeywords(dayOf(n)).filter((k) => buckets.includes(k)).length;
          assert.equal(inBuckets, n >= start && n <= start + length ? 1 : 0, `${dayOf(n)} in [${from}, ${to}]`);
        }
        // Few buckets: at most 2 × (11 months + 30 days) around whole years.
        assert.ok(buckets.length <= 2 * (11 + 30) + Math.ceil(length / 365) + 1);
      }),
      { numRuns: 150 },
    );
  });

  test('a resource is indexed under type, each coding (with and without system), status, date buckets and note words', () => {
    const keywords = keywordsOf({
      resourceType: 'Observation',
      id: 'o1',
      status: 'final',
      effectiveDateTime: '2020-03-15T10:00:00+02:00',
      code: {
        coding: [
          { system: 'http://loinc.org', code: '2093-3' },
          { system: 'http://snomed.info/sct', code: '166830008' },
        ],
      },
      note: [{ text: 'Fasting sample; patient reported chest pain.' }],
    });
    for (const k of [
      'type:Observation',
      'code:http://loinc.org|2093-3',
      'code-any:2093-3',
      'code:http://snomed.info/sct|166830008',
      'status:final',
      'date:y:2020',
      'date:m:2020-03',
      'date:d:2020-03-15',
      'word:fasting',
      'word:chest',
      'word:pain',
    ])
      assert.ok(keywords.includes(k), k);
    assert.ok(!keywords.includes('word:; '));
  });

  test('queries: parameters are ANDed, comma values ORed, the exact test applies FHIR semantics', () => {
    const q = parseQuery('Observation', new URLSearchParams('code=http://loinc.org|2093-3,8480-6&date=ge2020-03-15&date=lt2020-04&status=final'));
    assert.deepEqual(
      q.groups.map((g) => g.parameter),
      ['code', 'date', 'date', 'status'],
    );
    assert.deepEqual(q.groups[0]!.anyOf, ['code:http://loinc.org|2093-3', 'code-any:8480-6']);
    const obs = (code: string, day: string, status = 'final') => ({
      resourceType: 'Observation',
      id: 'x',
      status,
      effectiveDateTime: day,
      code: { coding: [{ system: 'http://loinc.org', code }] },
    });
    assert.equal(q.matches(obs('2093-3', '2020-03-15')), true);
    assert.equal(q.matches(obs('8480-6', '2020-03-31')), true);
    assert.equal(q.matches(obs('2093-3', '2020-04-01')), false);
    assert.equal(q.matches(obs('2093-3', '2020-03-14')), false);
    assert.equal(q.matches(obs('2093-3', '2020-03-20', 'amended')), false);
    assert.equal(q.matches({ ...obs('2093-3', '2020-03-20'), resourceType: 'DiagnosticReport' }), false);
    assert.deepEqual(parseQuery('Observation', new URLSearchParams('')).groups, [{ parameter: '_type', anyOf: ['type:Observation'] }]);
  });

  test('hostile queries are typed errors: unknown parameters, bad dates and prefixes, too many values, bad types', () => {
    for (const bad of ['foo=1', 'code:text=abc', 'date=2020-13-01', 'date=2020-02-30', 'date=ne2020', 'date=ge', 'code=|', '_content=a b', 'code=,']) {
      assert.throws(() => parseQuery('Observation', new URLSearchParams(bad)), MalformedInputError, bad);
    }
    assert.throws(() => parseQuery('Observation', new URLSearchParams(`code=${Array.from({ length: 65 }, (_, i) => i).join(',')}`)), LimitExceededError);
    assert.throws(() => parseQuery('observation', new URLSearchParams('')), MalformedInputError);
    assert.throws(() => parseQuery('Observation', new URLSearchParams(`code=${'x'.repeat(257)}`)), MalformedInputError);
  });

  test('desensitisation rules: on random notes, an excluded word or (with excludeNumbers) a word with a digit is never a keyword; every other word is', () => {
    const word = fc.stringMatching(/^[a-z0-9]{3,12}$/);
    fc.assert(
      fc.property(fc.array(word, { minLength: 1, maxLength: 30 }), fc.array(word, { maxLength: 10 }), fc.boolean(), (notes, excludedExtra, numbers) => {
        const excluded = [...notes.filter((_, i) => i % 3 === 0), ...excludedExtra];
        const salt = 'c2FsdHNhbHRzYWx0c2FsdA';
        const rules = parseIndexRules({ salt, excludedWords: excluded.map((w) => indexRuleDigest(salt, w)), excludeNumbers: numbers });
        const keywords = keywordsOf({ resourceType: 'Observation', id: 'o', note: [{ text: notes.join(' ') }] }, rules);
        for (const w of wordsOf(notes.join(' '))) {
          const out = excluded.includes(w) || (numbers && /\d/.test(w));
          assert.equal(keywords.includes(`word:${w}`), !out, w);
        }
      }),
      { numRuns: 200 },
    );
  });

  test('hostile index rules are typed errors: wrong salt, digests, flags, extra fields, too many words', () => {
    const salt = 'A'.repeat(22);
    for (const bad of [
      null,
      [],
      'rules',
      { salt, excludedWords: [] },
      { salt: 'short', excludedWords: [], excludeNumbers: false },
      { salt, excludedWords: ['hepatitis'], excludeNumbers: false },
      { salt, excludedWords: [], excludeNumbers: 1 },
      { salt, excludedWords: [], excludeNumbers: false, words: ['x'] },
    ]) {
      assert.throws(() => parseIndexRules(bad), MalformedInputError, JSON.stringify(bad));
    }
    assert.throws(
      () => parseIndexRules({ salt, excludedWords: Array.from({ length: 1001 }, (_, i) => indexRuleDigest(salt, `w${i}`)), excludeNumbers: false }),
      LimitExceededError,
    );
  });
});
