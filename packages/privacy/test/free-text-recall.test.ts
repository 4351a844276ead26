import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Deidentifier, profileConfig } from '../src/index.ts';
import { readSentences, scorePhi } from './phi-eval.ts';

// The labelled set: MedShare's own sentence templates filled with Synthea patients' and
// practitioners' identifiers (fixtures/make-phi-sentences.ts); docs/privacy.md reports these
// figures per kind and says what the set does not show.
test("free text: recall of identifier spans >= 0.95 with >= 0.95 of ordinary words kept, without the record's own dictionary", () => {
  const engine = new Deidentifier(profileConfig('safe-harbor', { cryptoHashKey: 'a', dateShiftKey: 'b' }));
  const sentences = readSentences();
  assert.ok(sentences.length >= 400);
  const scores = scorePhi(sentences, engine.namesFor([]));
  const table = Object.entries(scores.byKind)
    .map(([kind, k]) => `${kind} ${k.removed}/${k.spans}`)
    .join(', ');
  assert.ok(scores.recall >= 0.95, `recall ${scores.recall.toFixed(3)} (${table})`);
  assert.ok(scores.words.kept / scores.words.total >= 0.95, `words kept ${scores.words.kept}/${scores.words.total}`);
  for (const kind of ['DATE', 'PHONE', 'SSN', 'EMAIL', 'IP', 'ZIP', 'AGE'])
    assert.equal(scores.byKind[kind]!.removed, scores.byKind[kind]!.spans, `${kind}: ${table}`);
});
