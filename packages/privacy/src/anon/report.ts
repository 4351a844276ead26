/**
 * The anonymization report: utility and risk before and after, per method (Mondrian's local
 * recoding, the lattice search's global recoding, or both), as JSON, and plots of utility
 * against k and against risk rendered to SVG headless with Vega (https://vega.github.io/vega/).
 */
import * as vega from 'vega';
import type { Table } from './table.ts';
import { encode, type EncodedTable } from './encoding.ts';
import { mondrian, type EquivalenceClass, type MondrianOptions } from './mondrian.ts';
import { globalRecoding } from './lattice.ts';
import { measure, originalClasses, type Metrics } from './metrics.ts';
import { riskReport, type RiskReport } from './risk.ts';

export type Method = 'mondrian' | 'global';

export interface ReleaseOptions extends MondrianOptions {
  /** Population size for the journalist and marketer risks and population uniqueness (default: the table). */
  populationSize?: number;
  /** Risk threshold for the share of records at risk (default 0.2). */
  riskThreshold?: number;
}

export interface MethodReport {
  method: Method;
  metrics: Metrics;
  /** NCP per QI, percent, by column name. */
  attributeLoss: Record<string, number>;
  risk: RiskReport;
  runtimeMs: number;
  /** Global recoding: the optimal node's level per QI, and the search's counters. */
  node?: Record<string, number>;
  search?: Record<string, number>;
}

export interface AnonymizationReport {
  model: MondrianOptions['model'];
  mode: 'strict' | 'relaxed';
  quasiIdentifiers: string[];
  sensitive?: string;
  /** The ground distance t-closeness used. */
  tClosenessDistance?: 'ordered' | 'hierarchical' | 'equal';
  maxSuppression: number;
  before: Metrics;
  beforeRisk: RiskReport;
  /** The first method's metrics. */
  after: Metrics;
  methods: MethodReport[];
  runtimeMs: number;
}

/** One method's output. */
export interface MethodRun {
  method: Method;
  table: Table;
  classes: EquivalenceClass[];
  suppressed: number[];
  runtimeMs: number;
  node?: number[];
  search?: Record<string, number>;
}

/**
 * Runs one method.
 * @throws MalformedInputError / LimitExceededError as `mondrian` and `globalRecoding` do
 */
export function runMethod(table: Table, options: MondrianOptions, method: Method): MethodRun {
  const start = performance.now();
  if (method === 'mondrian') {
    const result = mondrian(table, options);
    return { method, ...result, runtimeMs: performance.now() - start };
  }
  const result = globalRecoding(table, options);
  return {
    method,
    table: result.table,
    classes: result.classes,
    suppressed: result.suppressed,
    runtimeMs: performance.now() - start,
    node: result.node,
    search: result.search,
  };
}

function methodReport(data: EncodedTable, run: MethodRun, options: ReleaseOptions): MethodReport {
  const metrics = measure(data, run.classes, options.model.k, run.suppressed.length);
  const names = options.quasiIdentifiers.map((qi) => qi.column);
  return {
    method: run.method,
    metrics,
    attributeLoss: Object.fromEntries(names.map((name, q) => [name, metrics.attributeNcpPercent[q] ?? 0])),
    risk: riskReport(
      run.classes.map((c) => c.records.length),
      riskOptions(options, run.table.rows.length),
    ),
    runtimeMs: run.runtimeMs,
    ...(run.node ? { node: Object.fromEntries(names.map((name, q) => [name, run.node?.[q] ?? 0])) } : {}),
    ...(run.search ? { search: run.search } : {}),
  };
}

function riskOptions(options: ReleaseOptions, released: number): { populationSize?: number; threshold?: number } {
  return {
    ...(options.populationSize !== undefined ? { populationSize: Math.max(options.populationSize, released) } : {}),
    ...(options.riskThreshold !== undefined ? { threshold: options.riskThreshold } : {}),
  };
}

/**
 * Anonymizes a table with each method and reports utility and risk before and after. The
 * returned `table` is the first method's output; `tables` holds every method's.
 */
export function anonymizeWithReport(
  table: Table,
  options: ReleaseOptions,
  methods: Method[] = ['mondrian'],
): { table: Table; tables: Partial<Record<Method, Table>>; report: AnonymizationReport } {
  const start = performance.now();
  const runs = methods.map((method) => runMethod(table, options, method));
  const runtimeMs = performance.now() - start;
  const data = encode(table, options);
  const reports = runs.map((run) => methodReport(data, run, options));
  const original = originalClasses(data);
  const report: AnonymizationReport = {
    model: options.model,
    mode: options.mode ?? 'strict',
    quasiIdentifiers: options.quasiIdentifiers.map((qi) => qi.column),
    ...(options.sensitive !== undefined ? { sensitive: options.sensitive } : {}),
    ...(data.sensitive && options.model.t !== undefined ? { tClosenessDistance: data.sensitive.distance } : {}),
    maxSuppression: options.maxSuppression ?? 0,
    before: measure(data, original, options.model.k),
    beforeRisk: riskReport(
      original.map((c) => c.records.length),
      riskOptions(options, table.rows.length),
    ),
    after: (reports[0] as MethodReport).metrics,
    methods: reports,
    runtimeMs,
  };
  return { table: (runs[0] as MethodRun).table, tables: Object.fromEntries(runs.map((run) => [run.method, run.table])), report };
}

export interface CurvePoint {
  k: number;
  /** The series: `strict` / `relaxed` (Mondrian) or `global`. */
  mode: string;
  ncpPercent: number;
  highestProsecutorRisk?: number;
  averageProsecutorRisk?: number;
}

/** NCP and prosecutor risk for each k and each series (Mondrian strict / relaxed, global recoding): the data of the plots. */
export function utilityCurve(
  table: Table,
  options: MondrianOptions,
  ks: number[],
  series: ('strict' | 'relaxed' | 'global')[] = ['strict', 'relaxed'],
): CurvePoint[] {
  const data = encode(table, options);
  return series.flatMap((mode) =>
    ks.map((k) => {
      const model = { ...options.model, k };
      const result = mode === 'global' ? globalRecoding(table, { ...options, model }) : mondrian(table, { ...options, mode, model });
      const metrics = measure(data, result.classes, k, result.suppressed.length);
      return {
        k,
        mode,
        ncpPercent: metrics.ncpPercent,
        highestProsecutorRisk: metrics.highestProsecutorRisk,
        averageProsecutorRisk: metrics.averageProsecutorRisk,
      };
    }),
  );
}

/** Renders the utility-vs-k curve as an SVG line chart (log-scaled k). */
export async function utilityPlotSvg(points: CurvePoint[], title = 'Information loss (NCP) vs k'): Promise<string> {
  return lineChart(points, { x: 'k', xTitle: 'k', xScale: 'log', title, xValues: [...new Set(points.map((p) => p.k))] });
}

/** Renders NCP against the average prosecutor re-identification risk (one point per k and series). */
export async function riskPlotSvg(points: CurvePoint[], title = 'Information loss (NCP) vs re-identification risk'): Promise<string> {
  return lineChart(
    points.filter((p) => p.averageProsecutorRisk !== undefined && p.averageProsecutorRisk > 0),
    { x: 'averageProsecutorRisk', xTitle: 'average prosecutor risk (log)', xScale: 'log', title },
  );
}

async function lineChart(
  points: CurvePoint[],
  axis: { x: string; xTitle: string; xScale: 'log' | 'linear'; title: string; xValues?: number[] },
): Promise<string> {
  const spec: vega.Spec = {
    $schema: 'https://vega.github.io/schema/vega/v5.json',
    width: 480,
    height: 280,
    padding: 8,
    title: { text: axis.title },
    data: [{ name: 'points', values: points as never, transform: [{ type: 'collect', sort: { field: axis.x } }] }],
    scales: [
      { name: 'x', type: axis.xScale, domain: { data: 'points', field: axis.x }, range: 'width', nice: false },
      { name: 'y', type: 'linear', domain: { data: 'points', field: 'ncpPercent' }, range: 'height', nice: true, zero: true },
      { name: 'color', type: 'ordinal', domain: { data: 'points', field: 'mode' }, range: 'category' },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: axis.xTitle, ...(axis.xValues ? { values: axis.xValues } : {}) },
      { orient: 'left', scale: 'y', title: 'NCP (%)' },
    ],
    legends: [{ fill: 'color', title: 'method' }],
    marks: [
      {
        type: 'group',
        from: { facet: { name: 'series', data: 'points', groupby: 'mode' } },
        marks: [
          {
            type: 'line',
            from: { data: 'series' },
            encode: {
              enter: {
                x: { scale: 'x', field: axis.x },
                y: { scale: 'y', field: 'ncpPercent' },
                stroke: { scale: 'color', field: 'mode' },
                strokeWidth: { value: 2 },
              },
            },
          },
          {
            type: 'symbol',
            from: { data: 'series' },
            encode: {
              enter: { x: { scale: 'x', field: axis.x }, y: { scale: 'y', field: 'ncpPercent' }, fill: { scale: 'color', field: 'mode' }, size: { value: 40 } },
            },
          },
        ],
      },
    ],
  };
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
