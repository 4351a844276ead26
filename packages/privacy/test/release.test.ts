/**
 * Research release at ARX's level: global recoding's lattice search against an independent brute
 * force, t-closeness with the hierarchical EMD, Mondrian's blocked splits, the risk models, and
 * the FHIR → table step. Every output is re-checked by the checker below, which shares no code
 * with the library's models: it reads the published CSV cells, groups rows by their QI labels and
 * recomputes k, distinct l, the hierarchical EMD (by the tree-metric closed form, not Li et al.'s
 * extras) and the risk figures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import {
  anonymizeWithReport,
  fitPitman,
  globalRecoding,
  Hierarchy,
  HierarchicalDistance,
  mondrian,
  parseCsv,
  pitmanLogLikelihood,
  researchTable,
  resourcesFromText,
  riskReport,
  type QuasiIdentifier,
  type Table,
} from '../src/index.ts';
import { FIXTURE_ADULT, FIXTURE_BUNDLE, FIXTURE_HIERARCHIES } from './helpers.ts';

const adult = parseCsv(readFileSync(FIXTURE_ADULT, 'utf8'));
const hierarchyText = (column: string) => readFileSync(`${FIXTURE_HIERARCHIES}/adult_hierarchy_${column}.csv`, 'utf8');
const hierarchy = (column: string) => Hierarchy.parse(hierarchyText(column));
const STANDARD_QIS = ['age', 'education', 'marital-status', 'native-country', 'race', 'salary-class', 'sex', 'workclass'];
const adultQis: QuasiIdentifier[] = STANDARD_QIS.map((column) => ({ column, kind: 'categorical' as const, hierarchy: hierarchy(column) }));

// ---- the independent checker -------------------------------------------------------------

/** Rows of the published table grouped by their QI cells. */
function groups(table: Table, qis: string[]): string[][][] {
  const idx = qis.map((q) => table.columns.indexOf(q));
  const map = new Map<string, string[][]>();
  for (const row of table.rows) {
    const key = JSON.stringify(idx.map((i) => row[i]));
    map.set(key, [...(map.get(key) ?? []), row]);
  }
  return [...map.values()];
}

/** Leaf → ancestors (leaf first) from the ARX rows, read straight from the file text. */
function ancestry(text: string): Map<string, string[]> {
  return new Map(
    text
      .trim()
      .split('\n')
      .map((line) => line.split(';').map((c) => c.trim()))
      .map((row) => [row[0] as string, row]),
  );
}

/** EMD under the ground distance height(LCA)/H as a tree metric: Σ over non-root nodes of |P(v) − Q(v)| / (2H). */
function treeEmd(rows: Map<string, string[]>, p: Map<string, number>, q: Map<string, number>): number {
  const H = Math.max(...[...rows.values()].map((r) => r.length - 1));
  const mass = new Map<string, number>();
  for (const [leaf, path] of rows) {
    const diff = (p.get(leaf) ?? 0) - (q.get(leaf) ?? 0);
    path.slice(0, -1).forEach((_, level) => {
      const key = path.slice(level).join('/');
      mass.set(key, (mass.get(key) ?? 0) + diff);
    });
  }
  return [...mass.values()].reduce((sum, m) => sum + Math.abs(m), 0) / (2 * H);
}

function distribution(values: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const v of values) out.set(v, (out.get(v) ?? 0) + 1 / values.length);
  return out;
}

interface Check {
  k: number;
  l?: number;
  t?: number;
  sensitive?: string;
  sensitiveRows?: Map<string, string[]>;
}

/** Asserts k, distinct l and hierarchical-EMD t on every published class of `output`; returns the class sizes. */
function checkRelease(input: Table, output: Table, qis: string[], model: Check): number[] {
  const sizes: number[] = [];
  const s = model.sensitive ? output.columns.indexOf(model.sensitive) : -1;
  const whole = model.sensitive ? distribution(input.rows.map((r) => r[input.columns.indexOf(model.sensitive as string)] as string)) : new Map();
  for (const rows of groups(output, qis)) {
    sizes.push(rows.length);
    assert.ok(rows.length >= model.k, `a class of ${rows.length} < k = ${model.k}`);
    const values = rows.map((r) => r[s] as string);
    if (model.l !== undefined) assert.ok(new Set(values).size >= model.l, 'l-diversity');
    if (model.t !== undefined && model.sensitiveRows) {
      const emd = treeEmd(model.sensitiveRows, distribution(values), whole);
      assert.ok(emd <= model.t + 1e-9, `EMD ${emd} > t = ${model.t}`);
    }
  }
  return sizes;
}

/** Prosecutor / journalist / marketer figures recomputed from class sizes by their definitions. */
function expectedRisk(sizes: number[], N: number, threshold: number) {
  const n = sizes.reduce((a, b) => a + b, 0);
  const F = (f: number) => Math.max(f, (f * N) / n);
  const perRecord = sizes.flatMap((f) => Array<number>(f).fill(f));
  return {
    prosecutorHighest: Math.max(...perRecord.map((f) => 1 / f)),
    prosecutorAverage: perRecord.reduce((a, f) => a + 1 / f, 0) / n,
    prosecutorAbove: perRecord.filter((f) => 1 / f > threshold).length / n,
    journalistHighest: Math.max(...perRecord.map((f) => 1 / F(f))),
    journalistAverage: perRecord.reduce((a, f) => a + 1 / F(f), 0) / n,
    journalistAbove: perRecord.filter((f) => 1 / F(f) > threshold).length / n,
    marketer: sizes.reduce((a, f) => a + f / F(f), 0) / n,
  };
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);

// ---- tests -------------------------------------------------------------------------------

test('hierarchical EMD equals the tree-metric closed form, and the equal distance without a hierarchy', () => {
  const occupation = hierarchy('occupation');
  const rows = ancestry(hierarchyText('occupation'));
  const labels = [...rows.keys()].sort();
  const distance = new HierarchicalDistance(occupation, labels);
  fc.assert(
    fc.property(
      fc.array(fc.nat(20), { minLength: labels.length, maxLength: labels.length }),
      fc.array(fc.nat(20), { minLength: labels.length, maxLength: labels.length }),
      (a, b) => {
        const sa = a.reduce((x, y) => x + y, 0);
        const sb = b.reduce((x, y) => x + y, 0);
        if (sa === 0 || sb === 0) return;
        const global = Float64Array.from(b, (v) => v / sb);
        const ours = distance.distance(Float64Array.from(a), sa, global);
        const p = new Map(labels.map((l, i) => [l, (a[i] as number) / sa]));
        const q = new Map(labels.map((l, i) => [l, (b[i] as number) / sb]));
        close(ours, treeEmd(rows, p, q), 'hierarchical EMD');
      },
    ),
    { numRuns: 200 },
  );
  // A class holding only Tech-support against a table of Tech-support and Craft-repair (siblings) in
  // equal shares: half the mass moves between siblings at distance 1/2: EMD 0.25. To Sales (another branch): 0.5.
  const two = new HierarchicalDistance(occupation, ['Craft-repair', 'Sales', 'Tech-support']);
  close(two.distance(Float64Array.from([0, 0, 1]), 1, Float64Array.from([0.5, 0, 0.5])), 0.25, 'siblings');
  close(two.distance(Float64Array.from([0, 0, 1]), 1, Float64Array.from([0, 0.5, 0.5])), 0.5, 'other branch');
  assert.throws(() => new HierarchicalDistance(occupation, ['Astronaut']), { code: 'MALFORMED' });
});

/** A random table over small uniform-depth hierarchies, with the ARX rows the checker reads. */
const randomRelease = fc.record({
  fanouts: fc.array(fc.array(fc.integer({ min: 2, max: 3 }), { minLength: 1, maxLength: 2 }), { minLength: 1, maxLength: 3 }),
  rows: fc.array(fc.tuple(fc.nat(1000), fc.nat(1000), fc.nat(1000), fc.nat(2)), { minLength: 1, maxLength: 50 }),
  k: fc.integer({ min: 1, max: 6 }),
  suppression: fc.constantFrom(0, 0.1, 0.25),
  t: fc.option(fc.constantFrom(0.2, 0.4), { nil: undefined }),
});

/** ARX rows for a tree with the given fan-out per level: leaves `v0..`, inner nodes `g<level>_<i>`, root `*`. */
function treeRows(fanouts: number[]): string[][] {
  let rows: string[][] = [['*']];
  fanouts.forEach((fanout, level) => {
    rows = rows.flatMap((row, i) =>
      Array.from({ length: fanout }, (_, j) => [level === fanouts.length - 1 ? `v${i * fanout + j}` : `g${level}_${i * fanout + j}`, ...row]),
    );
  });
  return rows;
}

test('global recoding finds the optimum of an independent brute force over every lattice node (fast-check)', () => {
  fc.assert(
    fc.property(randomRelease, ({ fanouts, rows, k, suppression, t }) => {
      const trees = fanouts.map(treeRows);
      const columns = trees.map((_, q) => `q${q}`);
      const table: Table = {
        columns: [...columns, 's'],
        rows: rows.map((r) => [
          ...trees.map((tree, q) => (tree[(r[q] as number) % tree.length] as string[])[0] as string),
          String.fromCharCode(97 + (r[3] as number)),
        ]),
      };
      const qis: QuasiIdentifier[] = trees.map((tree, q) => ({ column: columns[q] as string, kind: 'categorical', hierarchy: Hierarchy.fromRows(tree) }));
      const sensitiveRows = new Map(['a', 'b', 'c'].map((v) => [v, [v, '*']]));
      const options = { quasiIdentifiers: qis, sensitive: 's', model: { k, ...(t !== undefined ? { t } : {}) }, maxSuppression: suppression };
      const leafCount = trees.map((tree) => tree.length);
      // Brute force: every node, each row generalised `level` steps up its own ARX row.
      const budget = Math.floor(suppression * rows.length);
      const whole = distribution(table.rows.map((r) => r[columns.length] as string));
      let best = Infinity;
      const levels = trees.map((tree) => (tree[0] as string[]).length);
      const total = levels.reduce((a, b) => a * b, 1);
      for (let index = 0; index < total; index++) {
        const node: number[] = [];
        let rest = index;
        for (const h of levels) (node.push(rest % h), (rest = Math.floor(rest / h)));
        const cells = table.rows.map((row) => columns.map((_, q) => trees[q]!.find((tr) => tr[0] === row[q])![node[q] as number] as string));
        const byKey = new Map<string, number[]>();
        cells.forEach((c, r) => byKey.set(c.join('|'), [...(byKey.get(c.join('|')) ?? []), r]));
        let suppressed = 0;
        let penalty = 0;
        for (const members of byKey.values()) {
          const values = members.map((r) => table.rows[r]![columns.length] as string);
          const ok = members.length >= k && (t === undefined || treeEmd(sensitiveRows, distribution(values), whole) <= t + 1e-12);
          if (!ok) {
            suppressed += members.length;
            continue;
          }
          for (const r of members)
            columns.forEach((_, q) => {
              const label = cells[r]![q] as string;
              const leaves = trees[q]!.filter((tr) => tr.includes(label)).length;
              penalty += node[q] === 0 ? 0 : leaves / (leafCount[q] as number);
            });
        }
        if (suppressed > budget) continue;
        best = Math.min(best, (100 * (penalty + suppressed * columns.length)) / (rows.length * columns.length));
      }
      if (best === Infinity) {
        assert.throws(() => globalRecoding(table, options), { code: 'MALFORMED' });
        return;
      }
      const result = globalRecoding(table, options);
      close(result.ncpPercent, best, 'optimal NCP');
      assert.ok(result.suppressed.length <= budget);
      assert.equal(result.table.rows.length + result.suppressed.length, rows.length);
      checkRelease(table, result.table, columns, { k, ...(t !== undefined ? { t, sensitive: 's', sensitiveRows } : {}) });
    }),
    { numRuns: 120 },
  );
});

test('global recoding on the Adult subset: k = 5 within 5 % suppression, every class checked; a generalisation of the optimum is no better', () => {
  const options = { quasiIdentifiers: adultQis, model: { k: 5 }, maxSuppression: 0.05 };
  const result = globalRecoding(adult, options);
  checkRelease(adult, result.table, STANDARD_QIS, { k: 5 });
  assert.ok(result.suppressed.length <= Math.floor(0.05 * adult.rows.length));
  assert.ok(result.search.boundStopped > 0 && result.search.checked < result.search.latticeSize, 'the NCP bound ended the search early');
  // Every cell is a value of the chosen level of its hierarchy.
  STANDARD_QIS.forEach((column, q) => {
    const rows = ancestry(hierarchyText(column));
    const allowed = new Set([...rows.values()].map((r) => r[Math.min(result.node[q] as number, r.length - 1)]));
    const at = result.table.columns.indexOf(column);
    assert.ok(
      result.table.rows.every((row) => allowed.has(row[at] as string)),
      column,
    );
  });
  const bottom = globalRecoding(adult, { ...options, maxSuppression: 0 });
  assert.ok(bottom.ncpPercent >= result.ncpPercent, 'no suppression cannot do better than 5 % of it');
  assert.throws(() => globalRecoding(adult, { ...options, maxSuppression: 1 }), /maxSuppression/);
});

test('t-closeness with the hierarchical EMD: Mondrian and global outputs pass the independent EMD check', () => {
  const sensitiveRows = ancestry(hierarchyText('occupation'));
  const options = {
    quasiIdentifiers: adultQis,
    sensitive: 'occupation',
    sensitiveHierarchy: hierarchy('occupation'),
    model: { k: 10, t: 0.2 },
    maxSuppression: 0.05,
  };
  const { tables, report } = anonymizeWithReport(adult, options, ['mondrian', 'global']);
  assert.equal(report.tClosenessDistance, 'hierarchical');
  for (const method of ['mondrian', 'global'] as const)
    checkRelease(adult, tables[method] as Table, STANDARD_QIS, { k: 10, t: 0.2, sensitive: 'occupation', sensitiveRows });
  // The equal distance (no hierarchy) is stricter than the hierarchical one: Mondrian keeps less.
  const equal = anonymizeWithReport(adult, { ...options, sensitiveHierarchy: undefined } as never).report;
  assert.equal(equal.tClosenessDistance, 'equal');
  assert.ok(report.methods[0]!.metrics.ncpPercent < equal.after.ncpPercent);
});

test('Mondrian at k = 100 splits a blocked age hierarchy: no class keeps age "*"', () => {
  const result = mondrian(adult, { quasiIdentifiers: adultQis, model: { k: 100 } });
  const sizes = checkRelease(adult, result.table, STANDARD_QIS, { k: 100 });
  assert.equal(
    sizes.reduce((a, b) => a + b, 0),
    adult.rows.length,
  );
  const age = result.table.columns.indexOf('age');
  assert.ok(
    result.table.rows.every((row) => row[age] !== '*'),
    'an all-* age class',
  );
  // A set-valued age covers its records: each record's row in the hierarchy file names one of its members.
  const ageRows = ancestry(hierarchyText('age'));
  const ageColumn = adult.columns.indexOf('age');
  let setValued = 0;
  for (const cls of result.classes) {
    const bound = cls.bounds[0] as { label: string; children: { label: string }[]; groupOf?: unknown };
    if (!bound.groupOf) continue;
    setValued++;
    const members = new Set(bound.children.map((c) => c.label));
    for (const r of cls.records)
      assert.equal(
        ageRows.get(adult.rows[r]![ageColumn] as string)!.some((label) => members.has(label)),
        true,
        `age ${adult.rows[r]![ageColumn]} outside ${bound.label}`,
      );
  }
  assert.ok(setValued > 0, 'the blocked age hierarchy was cut into sibling groups');
});

test('risk figures equal their definitions recomputed from the published table, for both methods', () => {
  const options = { quasiIdentifiers: adultQis, model: { k: 5 }, maxSuppression: 0.05, populationSize: 300_000, riskThreshold: 0.1 };
  const { tables, report } = anonymizeWithReport(adult, options, ['mondrian', 'global']);
  for (const m of report.methods) {
    const sizes = checkRelease(adult, tables[m.method] as Table, STANDARD_QIS, { k: 5 });
    // Merged labels can only make classes larger; the library's classes must match the published grouping.
    assert.equal(sizes.length, m.metrics.classes, `${m.method}: published classes`);
    const expected = expectedRisk(sizes, 300_000, 0.1);
    close(m.risk.prosecutor.highest, expected.prosecutorHighest, 'prosecutor highest');
    close(m.risk.prosecutor.average, expected.prosecutorAverage, 'prosecutor average');
    close(m.risk.prosecutor.recordsAboveThreshold, expected.prosecutorAbove, 'prosecutor above');
    close(m.risk.journalist.highest, expected.journalistHighest, 'journalist highest');
    close(m.risk.journalist.average, expected.journalistAverage, 'journalist average');
    close(m.risk.journalist.recordsAboveThreshold, expected.journalistAbove, 'journalist above');
    close(m.risk.marketer, expected.marketer, 'marketer');
    assert.equal(m.risk.sampleUniqueShare, 0);
    assert.ok(m.risk.prosecutor.highest <= 0.2);
    assert.ok(Object.keys(m.attributeLoss).length === STANDARD_QIS.length);
    close(Object.values(m.attributeLoss).reduce((a, b) => a + b, 0) / STANDARD_QIS.length, m.metrics.ncpPercent, 'per-attribute loss averages to NCP');
  }
  assert.ok(report.beforeRisk.sampleUniqueShare > 0 && report.beforeRisk.populationUniqueShare <= report.beforeRisk.sampleUniqueShare);
  assert.throws(() => riskReport([1, 2], { populationSize: 2 }), { code: 'MALFORMED' });
});

test('Pitman fit: its likelihood is the maximum of an independent grid over (θ, α), computed by direct sums', () => {
  const sizes = [1, 1, 1, 1, 1, 1, 2, 2, 3, 5, 8, 1, 1, 4];
  const direct = (theta: number, alpha: number) => {
    const n = sizes.reduce((a, b) => a + b, 0);
    let v = 0;
    for (let i = 1; i < sizes.length; i++) v += Math.log(theta + i * alpha);
    for (let m = 1; m < n; m++) v -= Math.log(theta + m);
    for (const s of sizes) for (let m = 1; m < s; m++) v += Math.log(m - alpha);
    return v;
  };
  close(pitmanLogLikelihood(sizes, 2.5, 0.3), direct(2.5, 0.3), 'log-likelihood');
  const fit = fitPitman(sizes);
  let gridBest = -Infinity;
  for (let a = 0; a < 0.99; a += 0.01) for (let lt = -4; lt < 6; lt += 0.02) gridBest = Math.max(gridBest, direct(Math.exp(lt), a));
  assert.ok(direct(fit.theta, fit.alpha) >= gridBest - 1e-3, `fit ${direct(fit.theta, fit.alpha)} < grid ${gridBest}`);
  // A sample unique stays unique when nobody of the N − n others joins: the product, term by term.
  const N = 200;
  const n = sizes.reduce((a, b) => a + b, 0);
  let stays = 1;
  for (let m = n; m < N; m++) stays *= (fit.theta + m - 1 + fit.alpha) / (fit.theta + m);
  const uniques = sizes.filter((s) => s === 1).length;
  close(riskReport(sizes, { populationSize: N }).populationUniqueShare, (uniques * stays) / n, 'population uniqueness');
  close(riskReport(sizes).populationUniqueShare, uniques / n, 'population = sample');
});

test('the research table from FHIR: age, sex, ZIP3 and condition codes per Patient; hostile input is a clear error', () => {
  const resources = resourcesFromText(readFileSync(FIXTURE_BUNDLE, 'utf8'), 'bundle');
  const bundle = JSON.parse(readFileSync(FIXTURE_BUNDLE, 'utf8').replace(/^\uFEFF/, '')) as { entry: { resource: Record<string, unknown> }[] };
  const patient = bundle.entry.map((e) => e.resource).find((r) => r['resourceType'] === 'Patient') as Record<string, unknown>;
  const conditions = bundle.entry
    .map((e) => e.resource)
    .filter((r) => r['resourceType'] === 'Condition')
    .map((r) => ((r['code'] as { coding: { code: string }[] }).coding[0] as { code: string }).code);
  const asOf = new Date('2020-03-26T00:00:00Z'); // the day before the birthday
  const table = researchTable(resources, { fields: ['age', 'sex', 'zip3', 'conditions'], asOf, conditionFlags: [conditions[0] as string, '0000'] });
  assert.deepEqual(table.columns, ['age', 'sex', 'zip3', 'conditions', `condition:${conditions[0]}`, 'condition:0000']);
  const birthYear = Number(String(patient['birthDate']).slice(0, 4));
  const zip = ((patient['address'] as { postalCode: string }[])[0] as { postalCode: string }).postalCode;
  assert.deepEqual(table.rows, [
    [String(2020 - birthYear - 1), String(patient['gender']), zip.slice(0, 3), [...new Set(conditions)].sort().join(' '), '1', '0'],
  ]);
  // NDJSON of the same resources gives the same table; it then anonymizes like any other table.
  const ndjson = bundle.entry.map((e) => JSON.stringify(e.resource)).join('\n');
  assert.deepEqual(
    researchTable(resourcesFromText(ndjson), { fields: ['age', 'sex', 'zip3', 'conditions'], asOf }).rows,
    table.rows.map((r) => r.slice(0, 4)),
  );
  assert.throws(() => resourcesFromText('{"resourceType":"Patient"}\n{oops}\n', 'x.ndjson'), /x\.ndjson, line 2: not valid JSON/);
  assert.throws(() => resourcesFromText('[1,2]'), { code: 'MALFORMED' });
  assert.throws(() => researchTable(resources, { fields: ['height' as never] }), /unknown research field/);
});

test('hostile options: an oversized lattice, a bad threshold, l/t without a sensitive column', () => {
  const deep = Hierarchy.fromRows(Array.from({ length: 4 }, (_, i) => [`v${i}`, ...Array.from({ length: 30 }, (_, l) => `l${l}_${i >> 1}`), '*']));
  const table: Table = { columns: ['a', 'b', 'c', 'd', 'e'], rows: [['v0', 'v1', 'v2', 'v3', 'v0']] };
  const qis: QuasiIdentifier[] = table.columns.map((column) => ({ column, kind: 'categorical', hierarchy: deep }));
  assert.throws(() => globalRecoding(table, { quasiIdentifiers: qis, model: { k: 1 } }), { code: 'LIMIT' });
  assert.throws(() => riskReport([3], { threshold: 0 }), /threshold/);
  assert.throws(() => globalRecoding(adult, { quasiIdentifiers: adultQis, model: { k: 2, t: 0.1 } }), /sensitive attribute/);
});
