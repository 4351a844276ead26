/** SMART scopes: v1 and v2 syntax, granular category criteria, and what they grant in MedShare's record categories. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkScopes, grantsCategory, parseSmartScope } from '../src/index.ts';

const MAPPING: Record<string, string> = { Observation: 'lab', DiagnosticReport: 'lab', ImagingStudy: 'imaging' };
const inCategory = (type: string, category: string) => (MAPPING[type] ?? 'clinical') === category;
const grants = (scopes: string[], category: string, interaction: 'r' | 's' = 'r', contexts: Array<'patient' | 'user' | 'system'> = ['user']) =>
  grantsCategory(scopes, contexts, category, interaction, inCategory);

test('v1 and v2 scopes parse; v1 read is rs, write is cud', () => {
  assert.deepEqual([...parseSmartScope('user/Observation.read')!.interactions].sort(), ['r', 's']);
  assert.deepEqual([...parseSmartScope('user/Observation.write')!.interactions].sort(), ['c', 'd', 'u']);
  assert.deepEqual([...parseSmartScope('patient/*.cruds')!.interactions].sort(), ['c', 'd', 'r', 's', 'u']);
  assert.deepEqual(parseSmartScope('user/Observation.rs?category=laboratory')!.categories, ['laboratory']);
  assert.deepEqual(parseSmartScope('user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory')!.categories, [
    'laboratory',
  ]);
  checkScopes(['user/Observation.rs?category=laboratory', 'openid', 'user/*.read']);
});

test('malformed scopes are refused', () => {
  for (const bad of [
    'user/Observation',
    'user/observation.rs',
    'doctor/*.rs',
    'user/Observation.sr',
    'user/Observation.',
    'user/Observation.read?category=laboratory',
    'user/Observation.rs?code=123',
    'user/Observation.rs?category=',
    'user/Observation.rs?category=a=b',
    `user/Observation.rs?category=${'x'.repeat(300)}`,
  ]) {
    assert.equal(parseSmartScope(bad), undefined, bad);
    assert.throws(() => checkScopes([bad]), { code: 'MALFORMED' }, bad);
  }
});

test('a scope grants a category through the resource types that go into it, the interaction and the context', () => {
  assert.equal(grants(['user/Observation.rs'], 'lab'), true);
  assert.equal(grants(['user/Observation.rs'], 'imaging'), false);
  assert.equal(grants(['user/Patient.r'], 'lab'), false, "the issue's case");
  assert.equal(grants(['user/Observation.s'], 'lab', 'r'), false, 'search is not read');
  assert.equal(grants(['patient/*.rs'], 'lab'), false, 'another context');
  assert.equal(grants(['patient/*.rs'], 'lab', 'r', ['patient']), true);
  assert.equal(grants(['user/*.rs'], 'clinical'), true);
  assert.equal(grants(['user/Condition.rs'], 'clinical'), true, 'an unmapped type goes into the fallback');
  assert.equal(grants(['user/Observation.rs?category=laboratory'], 'lab'), true);
  assert.equal(grants(['user/Observation.rs?category=vital-signs'], 'lab'), false);
  assert.equal(grants(['user/*.rs?category=imaging'], 'imaging'), true);
});

test('random scope text never throws and never grants without a matching scope', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (text) => {
      const parsed = parseSmartScope(text);
      if (!text.startsWith('user/')) assert.equal(grants([text], 'lab'), false);
      return parsed === undefined || ['patient', 'user', 'system'].includes(parsed.context);
    }),
  );
});
