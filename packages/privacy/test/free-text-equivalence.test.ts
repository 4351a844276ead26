import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { Deidentifier, findPhi, profileConfig, scrubText, type NameMatcher } from '../src/index.ts';
import { EARLY_MILITARY, startSpans, UNIT_WORD_START } from '../src/deid/free-text.ts';
import { forEachMatch, groupSpans, wholeSpans } from '../src/deid/matches.ts';
import { SHARED } from './helpers.ts';
import { readPresidioSamples, readSentences } from './phi-eval.ts';

/**
 * The free-text scrubber's findings, pinned: the speed-ups of docs/privacy.md ("Throughput") —
 * guards that skip a detector, the remembered ordinary-word lookups, the dictionary's run
 * length, the bounded look-behind of span growth — must not change a single finding. The digests
 * below were taken with the scrubber before those changes, over the two labelled corpora, every
 * string (and decoded attachment) of the Synthea fixture, and 4,000 random texts built from the
 * words and characters the detectors look for (a seeded generator of its own, so the texts do
 * not depend on a library's version).
 */
const keys = { cryptoHashKey: 'a', dateShiftKey: 'b' };
const bundle = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures/synthea-carolee-trimmed.json', import.meta.url)), 'utf8')) as {
  entry: { resource: Record<string, unknown> }[];
};

function fixtureStrings(): string[] {
  return bundleStrings(bundle);
}

/** Every string of a bundle, and the decoded text of each base64 attachment. */
function bundleStrings(bundle: unknown): string[] {
  const out: string[] = [];
  const walk = (value: unknown, key: string): void => {
    if (typeof value === 'string') {
      out.push(value);
      if (key === 'data') out.push(Buffer.from(value, 'base64').toString('utf8'));
    } else if (Array.isArray(value)) for (const v of value) walk(v, key);
    else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, k);
  };
  walk(bundle, '');
  return out;
}

// What the detectors look for: street words and types, cues, titles, months, units, labels, letters that fold under /iu (ſ, K).
const TOKENS = [
  'Unit',
  'UNIT',
  'unit',
  'Apt',
  'apt.',
  'Apartment',
  'Suite',
  'Ste',
  'Flat',
  'PSC',
  'CMR',
  'Box',
  'APO',
  'FPO',
  'USS',
  'USNS',
  'uſs',
  'ſuite',
  'Kelvin',
  'Street',
  'Road',
  'Avenue',
  'Rue',
  'Via',
  'Rua',
  'Koskikatu',
  'u.',
  'corner of',
  'and',
  '&',
  'name is',
  'named',
  'called',
  'Signed',
  'Regards,',
  'in',
  'from',
  'to',
  'at',
  'near',
  'city',
  'Mr',
  'Dr.',
  'Mrs',
  'Jr.',
  'III',
  'van',
  'de',
  'May',
  'March',
  'Apr',
  'of',
  'mg',
  'days',
  'ZIP',
  'MRN:',
  'plate',
  'SSN',
  'age',
  'years',
  'y/o',
  'Maria',
  'Zoe',
  'Young',
  'Graves',
  'Reed',
  'Boston',
  'LAPPEENRANTA',
  'ΛΕΥΚΩΣΙΑ',
  'Szöllösy',
  "O'Reilly",
  'McDowell',
  'Jean-Luc',
  'patricia',
  'desrosiers',
  'errin',
  'Patient',
  'Wife',
  'Primary',
  'Care',
  'Practitioner',
  'clinic',
  'Seen',
  'www.example.com',
  'a@b.org',
  '10.0.0.1',
  '555-123-4567',
  '123-45-6789',
  '2019-03-04',
  '03/05/2019.',
  '95',
  '02134',
  '12',
  '2906',
  '7412 SL',
  '\n',
  '\n> ',
  ',',
  '.',
  ':',
  ';',
  '!',
  '?',
  '(',
  ')',
  '#',
  '-',
  "'",
];
const CHARS = 'aeiouAEIOUzZ0123456789 \t.,-ſKÉéß';

/** mulberry32: a small seeded generator, so that the texts stay the same across library versions. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomTexts(count: number, seed: number): string[] {
  const next = generator(seed);
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    const parts: string[] = [];
    const length = 1 + Math.floor(next() * 24);
    for (let j = 0; j < length; j++) {
      const r = next();
      if (r < 0.6) parts.push(TOKENS[Math.floor(next() * TOKENS.length)]!);
      else if (r < 0.8) parts.push(String(Math.floor(next() * 10 ** (1 + Math.floor(next() * 6)))));
      else parts.push(CHARS[Math.floor(next() * CHARS.length)]!);
      parts.push(next() < 0.8 ? ' ' : next() < 0.5 ? '' : ', ');
    }
    texts.push(parts.join(''));
  }
  return texts;
}

function digest(texts: string[], names: readonly NameMatcher[], scope: 'all' | 'terminology'): string {
  const hash = createHash('sha256');
  for (const text of texts) hash.update(JSON.stringify(findPhi(text, names, scope))).update('\n');
  return hash.digest('hex').slice(0, 16);
}

test('free-text equivalence: the findings on both corpora, the Synthea fixture and 4,000 random texts are the pinned ones', () => {
  const engine = new Deidentifier(profileConfig('safe-harbor', keys));
  const withRecord = engine.namesFor(bundle.entry.map((e) => e.resource));
  const builtinOnly = engine.namesFor([]);
  const sets: Record<string, string[]> = {
    presidio: readPresidioSamples().map((s) => s.text),
    sentences: readSentences().map((s) => s.text),
    fixture: fixtureStrings(),
    random: randomTexts(4000, 15),
  };
  const got: Record<string, string> = {};
  for (const [name, texts] of Object.entries(sets)) {
    got[`${name} all`] = digest(texts, withRecord, 'all');
    got[`${name} builtin`] = digest(texts, builtinOnly, 'all');
    got[`${name} terminology`] = digest(texts, withRecord, 'terminology');
  }
  assert.deepEqual(got, PINNED);
});

const PINNED: Record<string, string> = {
  'presidio all': '12f1b7e9617760c4',
  'presidio builtin': '12f1b7e9617760c4',
  'presidio terminology': 'd5a1c404a4812f5a',
  'sentences all': 'bbda6d19a303978d',
  'sentences builtin': '410e3d0018094cb3',
  'sentences terminology': '87cc30e2126ffc31',
  'fixture all': '7c48fb186e67aef0',
  'fixture builtin': '8d3589d8b9ebb331',
  'fixture terminology': '380a17d73ab3f2dc',
  'random all': '0b46a832324ade58',
  'random builtin': '0b46a832324ade58',
  'random terminology': 'bde9673d85aee553',
};

test('free-text equivalence: the unit-word start class is every character the iu pattern folds to its first letters, and the start scan finds what the pattern finds', () => {
  const firsts = /^[pucasf]$/iu;
  const inClass = /^[PpUuCcAaSsFf\u017f]$/;
  for (let c = 0; c <= 0x10ffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const ch = String.fromCodePoint(c);
    assert.equal(inClass.test(ch), firsts.test(ch), `U+${c.toString(16)}`);
  }
  const pattern = EARLY_MILITARY;
  const own = (t: string) => [...t.matchAll(pattern)].map((m) => [m.index, m.index + m[0].length]);
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 3 }), fc.nat({ max: 99999 }).map(String)), { maxLength: 20 }),
      fc.constantFrom(' ', '', ', ', '\n'),
      (parts, sep) => {
        const t = parts.join(sep);
        assert.deepEqual(startSpans(t, pattern, UNIT_WORD_START), own(t));
      },
    ),
    { numRuns: 3000 },
  );
  for (const t of [...randomTexts(4000, 16), ...readPresidioSamples().map((s) => s.text), ...fixtureStrings()])
    assert.deepEqual(startSpans(t, pattern, UNIT_WORD_START), own(t));
});

test('paragraph by paragraph: the engine scrubs a note and an annotation with blank lines to what scrubText gives the whole text (every such string of the Synthea bundles and of the Presidio corpus)', () => {
  const engine = new Deidentifier(profileConfig('safe-harbor', keys));
  const synthea = join(SHARED, 'data', 'synthea');
  const sets = readdirSync(synthea).map((file) => {
    const records = JSON.parse(readFileSync(join(synthea, file), 'utf8').replace(/^\uFEFF/, '')) as typeof bundle;
    return { names: engine.namesFor(records.entry.map((e) => e.resource)), texts: bundleStrings(records) };
  });
  sets.push({ names: engine.namesFor([]), texts: readPresidioSamples().map((s) => s.text) });
  let checked = 0;
  for (const { names, texts } of sets) for (const text of texts) if (/\n\s*\n/.test(text)) checked += checkParagraphs(engine, names, text);
  assert.ok(checked >= 900, `${checked} texts with a blank line`);
});

function checkParagraphs(engine: Deidentifier, names: readonly NameMatcher[], text: string): number {
  const whole = scrubText(text, names).text;
  // Twice: the second time every paragraph comes from the cache.
  for (let pass = 0; pass < 2; pass++) {
    const note = engine.processResource(
      {
        resourceType: 'DocumentReference',
        id: 'note',
        content: [{ attachment: { contentType: 'text/plain', data: Buffer.from(text, 'utf8').toString('base64') } }],
      } as never,
      { names },
    ) as unknown as { content: { attachment: { data: string } }[] };
    assert.equal(Buffer.from(note.content[0]!.attachment.data, 'base64').toString('utf8'), whole);
    const annotated = engine.processResource({ resourceType: 'Observation', id: 'o', note: [{ text }] } as never, { names }) as unknown as {
      note: { text: string }[];
    };
    assert.equal(annotated.note[0]!.text, whole);
  }
  return 1;
}

test('matches: forEachMatch and wholeSpans give what matchAll gives (empty matches, astral characters, a lastIndex left set), leave lastIndex as it was, and refuse a non-global pattern', () => {
  const patterns = [/a+/g, /(?:)/g, /(?:)/gu, /x*/gu, /\p{L}+/gu, /\d{2,}|(?<=\s)[A-Z]/g, /\b\w/giu, /(?<![\p{L}\p{N}])\p{Lu}\p{Ll}+/gu];
  const alphabet = fc.constantFrom('a', 'A', 'b', ' ', '1', '2', 'x', '\u{1F600}', 'é', 'Ω', '\n', 'Zoe', 'ﬀ');
  fc.assert(
    fc.property(fc.array(alphabet, { maxLength: 40 }), fc.constantFrom(...patterns), fc.nat(6), (parts, pattern, start) => {
      const text = parts.join('');
      pattern.lastIndex = start;
      const expected = [...text.matchAll(pattern)].map((m) => [m.index, m.index + m[0].length]);
      assert.equal(pattern.lastIndex, start, 'matchAll leaves its pattern alone');
      const visited: number[][] = [];
      forEachMatch(text, pattern, (m) => visited.push([m.index, m.index + m[0].length]));
      assert.deepEqual(visited, expected);
      assert.equal(pattern.lastIndex, start);
      assert.deepEqual(wholeSpans(text, pattern), expected);
      pattern.lastIndex = 0;
    }),
    { numRuns: 3000 },
  );
  assert.throws(() => forEachMatch('abc', /a/, () => {}), TypeError);
  assert.deepEqual(groupSpans('Dr. Ann Lee and Dr. Bo', /Dr\. (\w+)/g), [
    [4, 7],
    [20, 22],
  ]);
});
