/**
 * `medshare anonymize`: a research release of a table with k-anonymity (plus optional
 * l-diversity / t-closeness), by Mondrian (local recoding), by the optimal global (full-domain)
 * recoding of the lattice search, or both; with a report of utility and risk and SVG plots.
 * The table is a CSV, FHIR resources by FHIRPath columns (`--fhir-columns`), or the research
 * fields of FHIR Patients and Conditions (`--fhir-fields age,sex,zip3,conditions`).
 */
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { Command, Option } from 'commander';
import {
  anonymizeWithReport,
  formatCsv,
  Hierarchy,
  parseCsv,
  researchTable,
  resourcesFromText,
  riskPlotSvg,
  tableFromFhir,
  utilityCurve,
  utilityPlotSvg,
  type AnonymizationMethod,
  type LDiversity,
  type QuasiIdentifier,
  type ResearchField,
  type Table,
} from '@medshare/privacy';
import { UsageError } from '../errors.ts';

/** Registers the `anonymize` command. */
export function registerAnonymize(program: Command): void {
  program
    .command('anonymize')
    .description('k-anonymize a table (plus optional l-diversity / t-closeness) by Mondrian and/or optimal global recoding, and report utility and risk')
    .requiredOption('--in <file>', 'input CSV (header row; "," or ";" separated), or FHIR JSON/Bundle/NDJSON with --fhir-columns or --fhir-fields')
    .option('--fhir-columns <file>', 'JSON {"resourceType": "Patient", "columns": {"name": "FHIRPath", ...}}: build the table from FHIR resources')
    .option('--fhir-fields <fields>', 'one row per Patient with these fields: age,sex,zip3,conditions')
    .option('--as-of <date>', 'reference date for --fhir-fields ages (default: today)')
    .requiredOption('--qi <columns>', 'comma-separated quasi-identifier columns')
    .option('--sensitive <column>', 'sensitive attribute (for l-diversity / t-closeness)')
    .requiredOption('--k <k>', 'k of k-anonymity', positiveInteger)
    .option('--l <l>', 'l of l-diversity', Number)
    .addOption(new Option('--l-kind <kind>', 'l-diversity variant').choices(['distinct', 'entropy', 'recursive']).default('distinct'))
    .option('--c <c>', 'c of recursive (c,l)-diversity', Number, 1)
    .option('--t <t>', 't of t-closeness (hierarchical EMD when the sensitive column has a hierarchy)', Number)
    .addOption(
      new Option('--method <method>', 'local recoding (Mondrian), optimal global recoding, or both (the output is the first)')
        .choices(['mondrian', 'global', 'both'])
        .default('mondrian'),
    )
    .addOption(new Option('--mode <mode>', 'Mondrian variant').choices(['strict', 'relaxed']).default('strict'))
    .option('--hierarchies <dir>', 'folder of ARX hierarchies named <column>.csv or *_hierarchy_<column>.csv')
    .option('--max-suppression <fraction>', 'share of rows that may be suppressed (withheld), e.g. 0.05', Number, 0)
    .option('--population <n>', 'population size for journalist/marketer risk and population uniqueness', positiveInteger)
    .option('--risk-threshold <p>', 'risk above which a record counts as at risk', Number, 0.2)
    .option('--missing <token>', 'drop rows containing this cell value (e.g. "?")')
    .requiredOption('--out <file>', 'anonymized CSV (with --method both, the global one goes to <out>.global.csv)')
    .option('--report <file>', 'JSON report of utility and risk before and after, per method')
    .option('--plot <file>', 'SVG plot of NCP vs k (k = 2,5,10,20,50,100 and the chosen k)')
    .option('--risk-plot <file>', 'SVG plot of NCP vs average prosecutor risk over the same k values')
    .action(async (options: AnonymizeOptions) => {
      const table = await inputTable(options);
      const columns = options.qi
        .split(',')
        .map((c) => c.trim())
        .filter(Boolean);
      const folder = options.hierarchies;
      const quasiIdentifiers = await Promise.all(columns.map((column) => quasiIdentifierFor(table, column, folder)));
      const sensitiveHierarchy = options.sensitive !== undefined && folder ? await hierarchyFile(folder, options.sensitive) : undefined;
      const l: LDiversity | undefined =
        options.l === undefined
          ? undefined
          : options.lKind === 'recursive'
            ? { kind: 'recursive', l: options.l, c: options.c }
            : { kind: options.lKind, l: options.l };
      const releaseOptions = {
        quasiIdentifiers,
        ...(options.sensitive !== undefined ? { sensitive: options.sensitive } : {}),
        ...(sensitiveHierarchy ? { sensitiveHierarchy } : {}),
        model: { k: options.k, ...(l ? { l } : {}), ...(options.t !== undefined ? { t: options.t } : {}) },
        mode: options.mode,
        maxSuppression: options.maxSuppression,
        ...(options.population !== undefined ? { populationSize: options.population } : {}),
        riskThreshold: options.riskThreshold,
      };
      const methods: AnonymizationMethod[] = options.method === 'both' ? ['mondrian', 'global'] : [options.method];
      const { tables, report } = anonymizeWithReport(table, releaseOptions, methods);
      await writeFile(options.out, formatCsv(tables[methods[0] as AnonymizationMethod] as Table));
      if (options.method === 'both') await writeFile(`${options.out.replace(/\.csv$/i, '')}.global.csv`, formatCsv(tables.global as Table));
      if (options.report) await writeFile(options.report, JSON.stringify(report, null, 2) + '\n');
      if (options.plot || options.riskPlot) {
        const ks = [...new Set([2, 5, 10, 20, 50, 100, options.k])].sort((a, b) => a - b).filter((k) => k <= table.rows.length);
        const series = [
          ...(methods.includes('mondrian') ? (['strict', 'relaxed'] as const) : []),
          ...(methods.includes('global') ? (['global'] as const) : []),
        ];
        const points = utilityCurve(table, releaseOptions, ks, series);
        if (options.plot) await writeFile(options.plot, await utilityPlotSvg(points));
        if (options.riskPlot) await writeFile(options.riskPlot, await riskPlotSvg(points));
      }
      for (const m of report.methods) {
        process.stderr.write(
          `${m.method}: ${table.rows.length} rows into ${m.metrics.classes} classes (${m.metrics.suppressedRecords} suppressed); NCP ${m.metrics.ncpPercent.toFixed(2)}%; highest prosecutor risk ${m.risk.prosecutor.highest.toFixed(3)}\n`,
        );
      }
    });
}

interface AnonymizeOptions {
  in: string;
  qi: string;
  sensitive?: string;
  k: number;
  l?: number;
  lKind: 'distinct' | 'entropy' | 'recursive';
  c: number;
  t?: number;
  method: 'mondrian' | 'global' | 'both';
  mode: 'strict' | 'relaxed';
  maxSuppression: number;
  population?: number;
  riskThreshold: number;
  hierarchies?: string;
  missing?: string;
  fhirColumns?: string;
  fhirFields?: string;
  asOf?: string;
  out: string;
  report?: string;
  plot?: string;
  riskPlot?: string;
}

async function inputTable(options: AnonymizeOptions): Promise<Table> {
  if (options.fhirColumns && options.fhirFields) throw new UsageError('give at most one of --fhir-columns and --fhir-fields');
  if (!options.fhirColumns && !options.fhirFields) {
    return parseCsv(await readFile(options.in, 'utf8'), { source: options.in, ...(options.missing !== undefined ? { missing: options.missing } : {}) });
  }
  const resources = resourcesFromText(await readFile(options.in, 'utf8'), options.in);
  if (options.fhirFields) {
    const asOf = options.asOf !== undefined ? new Date(options.asOf) : undefined;
    if (asOf && Number.isNaN(asOf.getTime())) throw new UsageError(`--as-of: "${options.asOf}" is not a date`);
    return researchTable(resources, { fields: options.fhirFields.split(',').map((f) => f.trim()) as ResearchField[], ...(asOf ? { asOf } : {}) });
  }
  return fhirColumnsTable(resources, options.fhirColumns as string);
}

/** A table from FHIR resources by the FHIRPath columns in `columnsFile`. */
async function fhirColumnsTable(resources: unknown[], columnsFile: string): Promise<Table> {
  let spec: { resourceType?: unknown; columns?: unknown };
  try {
    spec = JSON.parse(await readFile(columnsFile, 'utf8')) as typeof spec;
  } catch (error) {
    throw new UsageError(`${columnsFile}: not valid JSON (${(error as Error).message})`);
  }
  const columns = spec.columns as Record<string, unknown> | undefined;
  if (typeof spec.resourceType !== 'string' || !columns || typeof columns !== 'object' || !Object.values(columns).every((v) => typeof v === 'string')) {
    throw new UsageError(`${columnsFile}: expected {"resourceType": "...", "columns": {"name": "FHIRPath", ...}}`);
  }
  return tableFromFhir(resources, spec.resourceType, columns as Record<string, string>);
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`"${value}" is not a positive integer`);
  return n;
}

/** The hierarchy file for a column in the folder (`<column>.csv` or `*_hierarchy_<column>.csv`), if any. */
async function hierarchyFile(folder: string, column: string): Promise<Hierarchy | undefined> {
  const file = (await readdir(folder)).find((f) => extname(f) === '.csv' && (f === `${column}.csv` || f.endsWith(`_hierarchy_${column}.csv`)));
  if (!file || !existsSync(join(folder, file))) return undefined;
  const path = join(folder, file);
  return Hierarchy.parse(await readFile(path, 'utf8'), path);
}

/** A QI with a hierarchy file is categorical; without one it is numeric when every value is a number, else flat categorical. */
async function quasiIdentifierFor(table: Table, column: string, folder: string | undefined): Promise<QuasiIdentifier> {
  const index = table.columns.indexOf(column);
  if (index < 0) throw new UsageError(`--qi: unknown column "${column}"; the table has ${table.columns.join(', ')}`);
  const hierarchy = folder ? await hierarchyFile(folder, column) : undefined;
  if (hierarchy) return { column, kind: 'categorical', hierarchy };
  const values = table.rows.map((row) => row[index] ?? '');
  if (values.every((v) => v !== '' && Number.isFinite(Number(v)))) return { column, kind: 'numeric' };
  return { column, kind: 'categorical', hierarchy: Hierarchy.flat(values) };
}
