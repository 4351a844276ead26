/**
 * The anonymization report: utility and risk before and after, as JSON, and a utility-vs-k curve
 * rendered to SVG headless with Vega (https://vega.github.io/vega/).
 */
import * as vega from 'vega';
import type { Table } from './table.ts';
import { encode } from './encoding.ts';
import { mondrian, type MondrianOptions } from './mondrian.ts';
import { measure, originalClasses, type Metrics } from './metrics.ts';

export interface AnonymizationReport {
  model: MondrianOptions['model'];
  mode: 'strict' | 'relaxed';
  quasiIdentifiers: string[];
  sensitive?: string;
  before: Metrics;
  after: Metrics;
  runtimeMs: number;
}

/** Anonymizes a table and reports utility and risk before and after. */
export function anonymizeWithReport(table: Table, options: MondrianOptions): { table: Table; report: AnonymizationReport } {
  const start = performance.now();
  const result = mondrian(table, options);
  const runtimeMs = performance.now() - start;
  const data = encode(table, options);
  const k = options.model.k;
  const report: AnonymizationReport = {
    model: options.model,
    mode: options.mode ?? 'strict',
    quasiIdentifiers: options.quasiIdentifiers.map((qi) => qi.column),
    ...(options.sensitive !== undefined ? { sensitive: options.sensitive } : {}),
    before: measure(data, originalClasses(data), k),
    after: measure(data, result.classes, k, result.suppressed.length),
    runtimeMs,
  };
  return { table: result.table, report };
}

export interface CurvePoint {
  k: number;
  mode: string;
  ncpPercent: number;
}

/** NCP for each k (and each mode), the data of the utility-vs-k plot. */
export function utilityCurve(table: Table, options: MondrianOptions, ks: number[], modes: ('strict' | 'relaxed')[] = ['strict', 'relaxed']): CurvePoint[] {
  const data = encode(table, options);
  return modes.flatMap((mode) => ks.map((k) => {
    const result = mondrian(table, { ...options, mode, model: { ...options.model, k } });
    return { k, mode, ncpPercent: measure(data, result.classes, k, result.suppressed.length).ncpPercent };
  }));
}

/** Renders the utility-vs-k curve as an SVG line chart (log-scaled k). */
export async function utilityPlotSvg(points: CurvePoint[], title = 'Information loss (NCP) vs k'): Promise<string> {
  const spec: vega.Spec = {
    $schema: 'https://vega.github.io/schema/vega/v5.json',
    width: 480,
    height: 280,
    padding: 8,
    title: { text: title },
    data: [{ name: 'points', values: points as never }],
    scales: [
      { name: 'x', type: 'log', domain: { data: 'points', field: 'k' }, range: 'width', nice: false },
      { name: 'y', type: 'linear', domain: { data: 'points', field: 'ncpPercent' }, range: 'height', nice: true, zero: true },
      { name: 'color', type: 'ordinal', domain: { data: 'points', field: 'mode' }, range: 'category' },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'k', values: [...new Set(points.map((p) => p.k))] },
      { orient: 'left', scale: 'y', title: 'NCP (%)' },
    ],
    legends: [{ fill: 'color', title: 'Mondrian' }],
    marks: [
      {
        type: 'group',
        from: { facet: { name: 'series', data: 'points', groupby: 'mode' } },
        marks: [
          { type: 'line', from: { data: 'series' }, encode: { enter: { x: { scale: 'x', field: 'k' }, y: { scale: 'y', field: 'ncpPercent' }, stroke: { scale: 'color', field: 'mode' }, strokeWidth: { value: 2 } } } },
          { type: 'symbol', from: { data: 'series' }, encode: { enter: { x: { scale: 'x', field: 'k' }, y: { scale: 'y', field: 'ncpPercent' }, fill: { scale: 'color', field: 'mode' }, size: { value: 40 } } } },
        ],
      },
    ],
  };
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
