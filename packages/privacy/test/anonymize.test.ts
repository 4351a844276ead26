import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import {
  anonymizeWithReport,
  earthMoversDistance,
  encode,
  Hierarchy,
  isLDiverse,
  measure,
  mondrian,
  originalClasses,
  parseCsv,
  tableFromFhir,
  utilityCurve,
  utilityPlotSvg,
  type QuasiIdentifier,
  type Table,
} from '../src/index.ts';
import { FIXTURE_ADULT, FIXTURE_BUNDLE, FIXTURE_HIERARCHIES, readJson } from './helpers.ts';

const adult = parseCsv(readFileSync(FIXTURE_ADULT, 'utf8'));
const hierarchy = (column: string) => Hierarchy.parse(readFileSync(`${FIXTURE_HIERARCHIES}/adult_hierarchy_${column}.csv`, 'utf8'));
const adultQis: QuasiIdentifier[] = ['sex', 'race', 'marital-status', 'education', 'native-country', 'workclass', 'salary-class'].map((column) => ({
  column,
  kind: 'categorical' as const,
  hierarchy: hierarchy(column),
}));
adultQis.unshift({ column: 'age', kind: 'numeric' });

function classSizes(table: Table, qis: string[]): Map<string, number> {
  const idx = qis.map((q) => table.columns.indexOf(q));
  const sizes = new Map<string, number>();
  for (const row of table.rows) {
    const key = idx.map((i) => row[i]).join('|');
    sizes.set(key, (sizes.get(key) ?? 0) + 1);
  }
  return sizes;
}

test('ARX hierarchies parse into trees; unknown values and malformed files are clear errors', () => {
  const marital = hierarchy('marital-status');
  assert.equal(marital.root.label, '*');
  assert.equal(marital.size, readFileSync(`${FIXTURE_HIERARCHIES}/adult_hierarchy_marital-status.csv`, 'utf8').trim().split('\n').length);
  assert.equal(marital.path('Married-civ-spouse').at(-1)?.label, 'Married-civ-spouse');
  assert.throws(() => marital.path('Martian'), { code: 'MALFORMED' });
  assert.throws(() => Hierarchy.parse('a;x;*\nb;y;top\n'), /does not end in the root/);
  assert.equal(readdirSync(FIXTURE_HIERARCHIES).length, 9);
});

test('strict and relaxed Mondrian are k-anonymous on the Adult subset, and NCP grows with k', () => {
  let previous = -1;
  for (const k of [2, 10, 50]) {
    for (const mode of ['strict', 'relaxed'] as const) {
      const { table, report } = anonymizeWithReport(adult, { quasiIdentifiers: adultQis, model: { k }, mode });
      assert.equal(table.rows.length, adult.rows.length);
      for (const size of classSizes(
        table,
        adultQis.map((q) => q.column),
      ).values())
        assert.ok(size >= k);
      assert.ok(report.after.highestProsecutorRisk <= 1 / k);
      assert.equal(report.after.uniqueRecordShare, 0);
      assert.ok(report.before.uniqueRecordShare > 0);
      assert.ok(report.after.discernibility >= report.before.discernibility);
      if (mode === 'strict') {
        assert.ok(report.after.ncpPercent > previous);
        previous = report.after.ncpPercent;
      }
    }
  }
});

test('l-diversity (distinct, entropy, recursive) and t-closeness hold in every class', () => {
  const sensitiveIndex = adult.columns.indexOf('occupation');
  const models = [
    { k: 5, l: { kind: 'distinct' as const, l: 3 } },
    { k: 5, l: { kind: 'entropy' as const, l: 3 } },
    { k: 5, l: { kind: 'recursive' as const, l: 3, c: 3 } },
    { k: 5, t: 0.3 },
  ];
  for (const model of models) {
    const options = { quasiIdentifiers: adultQis, sensitive: 'occupation', model };
    const { classes } = mondrian(adult, options);
    const data = encode(adult, options);
    for (const cls of classes) {
      const counts = new Float64Array(data.sensitive!.domain);
      for (const r of cls.records) counts[data.sensitive!.values[r]!]! += 1;
      if ('l' in model && model.l) assert.ok(isLDiverse(counts, cls.records.length, model.l));
      if ('t' in model) assert.ok(earthMoversDistance(counts, cls.records.length, data.sensitive!.global, false) <= 0.3 + 1e-9);
      const values = new Set(cls.records.map((r) => adult.rows[r]![sensitiveIndex]));
      if ('l' in model && model.l?.kind === 'distinct') assert.ok(values.size >= 3);
    }
  }
});

test('privacy-model arithmetic on hand-computed cases', () => {
  const counts = Float64Array.from([2, 1, 1]);
  assert.equal(isLDiverse(counts, 4, { kind: 'distinct', l: 3 }), true);
  assert.equal(isLDiverse(counts, 4, { kind: 'entropy', l: 3 }), false); // H = 1.04 < ln 3 = 1.10
  assert.equal(isLDiverse(counts, 4, { kind: 'recursive', l: 2, c: 1 }), false); // 2 < 1*(1+1) is false
  assert.equal(isLDiverse(counts, 4, { kind: 'recursive', l: 2, c: 2 }), true);
  // Li et al. 2007's salary example: {3k,4k,5k} vs 3k..11k uniform has ordered EMD 0.375
  const global = Float64Array.from(Array(9).fill(1 / 9));
  assert.ok(Math.abs(earthMoversDistance(Float64Array.from([1, 1, 1, 0, 0, 0, 0, 0, 0]), 3, global, true) - 0.375) < 1e-9);
  assert.ok(Math.abs(earthMoversDistance(Float64Array.from([1, 0]), 1, Float64Array.from([0.5, 0.5]), false) - 0.5) < 1e-9);
});

test('metrics: NCP, discernibility, class size and risk on a tiny table', () => {
  const table: Table = {
    columns: ['age', 'zip'],
    rows: [
      ['20', 'a'],
      ['30', 'a'],
      ['40', 'b'],
      ['50', 'b'],
    ],
  };
  const qis: QuasiIdentifier[] = [
    { column: 'age', kind: 'numeric' },
    { column: 'zip', kind: 'categorical', hierarchy: Hierarchy.flat(['a', 'b']) },
  ];
  const result = mondrian(table, { quasiIdentifiers: qis, model: { k: 2 } });
  const data = encode(table, { quasiIdentifiers: qis, model: { k: 2 } });
  const m = measure(data, result.classes, 2);
  assert.equal(m.classes, 2);
  assert.equal(m.discernibility, 8);
  // each class spans 10 of 30 years (1/3) and a single ZIP (0): NCP = (1/3 + 0) / 2
  assert.ok(Math.abs(m.ncpPercent - 100 / 6) < 1e-9);
  assert.equal(m.highestProsecutorRisk, 0.5);
  assert.deepEqual(
    result.table.rows.map((r) => r[0]),
    ['20-30', '20-30', '40-50', '40-50'],
  );
  const before = measure(data, originalClasses(data), 2);
  assert.equal(before.uniqueRecordShare, 1);
});

test('k is a property: any random table either fails clearly or is k-anonymous', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 99 }), fc.constantFrom('a', 'b', 'c')), { minLength: 0, maxLength: 60 }),
      fc.integer({ min: 1, max: 8 }),
      (rows, k) => {
        const table: Table = { columns: ['x', 'y'], rows: rows.map(([x, y]) => [String(x), y]) };
        const qis: QuasiIdentifier[] = [
          { column: 'x', kind: 'numeric' },
          { column: 'y', kind: 'categorical', hierarchy: Hierarchy.flat(['a', 'b', 'c']) },
        ];
        if (rows.length > 0 && rows.length < k) {
          assert.throws(() => mondrian(table, { quasiIdentifiers: qis, model: { k } }), { code: 'MALFORMED' });
          return;
        }
        for (const mode of ['strict', 'relaxed'] as const) {
          const { classes } = mondrian(table, { quasiIdentifiers: qis, model: { k }, mode });
          assert.equal(
            classes.reduce((s, c) => s + c.records.length, 0),
            rows.length,
          );
          for (const c of classes) assert.ok(c.records.length >= k);
        }
      },
    ),
    { numRuns: 150 },
  );
});

test('bad input is a clear error: unknown column, non-numeric value, bad k', () => {
  assert.throws(() => mondrian(adult, { quasiIdentifiers: [{ column: 'nope', kind: 'numeric' }], model: { k: 2 } }), /unknown column "nope"/);
  assert.throws(() => mondrian(adult, { quasiIdentifiers: [{ column: 'sex', kind: 'numeric' }], model: { k: 2 } }), /not a number/);
  assert.throws(() => mondrian(adult, { quasiIdentifiers: adultQis, model: { k: 0 } }), /k must be/);
  assert.throws(() => parseCsv('a,b\n1\n'), { code: 'MALFORMED' });
});

test('a table extracted from FHIR by FHIRPath columns can be anonymized; the plot is an SVG', async () => {
  const resources = (readJson(FIXTURE_BUNDLE)['entry'] as Record<string, unknown>[]).map((e) => e['resource']);
  const table = tableFromFhir(resources, 'Observation', { code: 'code.coding.code', year: 'effective.toString().substring(0,4)', status: 'status' });
  assert.equal(table.rows.length, 6);
  assert.ok(table.rows.every((r) => /^\d{4}$/.test(r[1] ?? '')));
  assert.throws(() => tableFromFhir(resources, 'Observation', { bad: 'code.(' }), /column bad: invalid FHIRPath/);
  const points = utilityCurve(adult, { quasiIdentifiers: adultQis, model: { k: 2 } }, [2, 10]);
  assert.equal(points.length, 4);
  const svg = await utilityPlotSvg(points);
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /NCP/);
});

test('suppression withholds outlier groups within the budget; published classes stay k-anonymous', () => {
  for (const maxSuppression of [0.01, 0.05]) {
    const options = { quasiIdentifiers: adultQis, model: { k: 10 }, maxSuppression };
    const result = mondrian(adult, options);
    assert.ok(result.suppressed.length <= Math.floor(maxSuppression * adult.rows.length));
    assert.equal(result.table.rows.length, adult.rows.length - result.suppressed.length);
    for (const size of classSizes(
      result.table,
      adultQis.map((q) => q.column),
    ).values())
      assert.ok(size >= 10);
    const published = result.classes.reduce((sum, c) => sum + c.records.length, 0);
    assert.equal(published + result.suppressed.length, adult.rows.length);
    const metrics = measure(encode(adult, options), result.classes, 10, result.suppressed.length);
    assert.equal(metrics.suppressedRecords, result.suppressed.length);
  }
  const some = mondrian(adult, { quasiIdentifiers: adultQis, model: { k: 10 }, maxSuppression: 0.05 });
  assert.ok(some.suppressed.length > 0, 'the Adult subset has outliers to suppress');
  assert.throws(() => mondrian(adult, { quasiIdentifiers: adultQis, model: { k: 10 }, maxSuppression: 1 }), /maxSuppression/);
});
