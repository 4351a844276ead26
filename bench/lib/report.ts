/** Output for benchmarks: markdown tables on stdout, and line charts rendered to SVG with Vega-Lite. */
import { writeFileSync } from 'node:fs';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

/** Prints a markdown table. */
export function printTable(title: string, header: string[], rows: Array<Array<string | number>>): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

export interface Point {
  series: string;
  x: number;
  y: number;
}

/** Renders a multi-series line chart (log-scaled axes optional) to an SVG file. */
export async function plotLines(file: string, points: Point[], axes: { title: string; x: string; y: string; logX?: boolean; logY?: boolean }): Promise<void> {
  const spec: vegaLite.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: axes.title,
    width: 560,
    height: 320,
    data: { values: points },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: axes.x, scale: axes.logX ? { type: 'log' } : {} },
      y: { field: 'y', type: 'quantitative', title: axes.y, scale: axes.logY ? { type: 'log' } : {} },
      color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 400 } },
    },
  };
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  writeFileSync(file, await view.toSVG());
}
