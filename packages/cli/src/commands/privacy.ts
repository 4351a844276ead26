/**
 * `medshare deid` (FHIR de-identification) and `medshare anonymize` (Mondrian k-anonymity for a
 * research release). Keys for the built-in profiles come from the environment
 * (MEDSHARE_CRYPTOHASH_KEY, MEDSHARE_DATESHIFT_KEY), never from argv where `ps` would show them;
 * without them fresh random keys are used, so outputs of separate runs cannot be linked.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import {
  anonymizeWithReport,
  Deidentifier,
  deidentifyPath,
  formatCsv,
  Hierarchy,
  parseConfigText,
  parseCsv,
  profileConfig,
  PROFILES,
  tableFromFhir,
  utilityCurve,
  utilityPlotSvg,
  type LDiversity,
  type ProfileName,
  type QuasiIdentifier,
  type Table,
} from '@medshare/privacy';
import { UsageError } from '../errors.ts';

/** Registers the `deid` and `anonymize` commands. */
export function registerPrivacy(program: Command): void {
  program
    .command('deid')
    .description('de-identify FHIR resources: a JSON resource or Bundle, NDJSON, or a folder of them')
    .option('--config <file>', 'rules in the Microsoft FHIR anonymizer format')
    .addOption(new Option('--profile <name>', 'a built-in profile').choices([...PROFILES]))
    .requiredOption('--in <path>', 'input file or folder')
    .requiredOption('--out <path>', 'output file or folder')
    .action(async (options: { config?: string; profile?: string; in: string; out: string }) => {
      if (!options.config === !options.profile) throw new UsageError('give exactly one of --config and --profile');
      const config = options.config
        ? parseConfigText(await readFile(options.config, 'utf8'), options.config)
        : profileConfig(options.profile as ProfileName, {
            cryptoHashKey: process.env['MEDSHARE_CRYPTOHASH_KEY'] ?? randomBytes(32).toString('hex'),
            dateShiftKey: process.env['MEDSHARE_DATESHIFT_KEY'] ?? randomBytes(32).toString('hex'),
          });
      const bar = process.stderr.isTTY ? new cliProgress.SingleBar({ stream: process.stderr, format: 'deid [{bar}] {value}/{total} resources | {file}' }, cliProgress.Presets.shades_classic) : undefined;
      let total = 0;
      const count = await deidentifyPath(new Deidentifier(config), options.in, options.out, {
        onFileStart: (file, resources) => {
          total += resources;
          if (bar && total === resources) bar.start(total, 0, { file: basename(file) });
          else bar?.setTotal(total), bar?.update({ file: basename(file) });
        },
        onResource: (n) => bar?.update(n),
      });
      bar?.stop();
      process.stderr.write(`de-identified ${count} resources\n`);
    });

  program
    .command('anonymize')
    .description('k-anonymize a CSV table with Mondrian (plus optional l-diversity / t-closeness) and report utility and risk')
    .requiredOption('--in <file>', 'input CSV (header row; "," or ";" separated), or FHIR JSON/Bundle/NDJSON with --fhir-columns')
    .option('--fhir-columns <file>', 'JSON {"resourceType": "Patient", "columns": {"name": "FHIRPath", ...}}: build the table from FHIR resources')
    .requiredOption('--qi <columns>', 'comma-separated quasi-identifier columns')
    .option('--sensitive <column>', 'sensitive attribute (for l-diversity / t-closeness)')
    .requiredOption('--k <k>', 'k of k-anonymity', positiveInteger)
    .option('--l <l>', 'l of l-diversity', Number)
    .addOption(new Option('--l-kind <kind>', 'l-diversity variant').choices(['distinct', 'entropy', 'recursive']).default('distinct'))
    .option('--c <c>', 'c of recursive (c,l)-diversity', Number, 1)
    .option('--t <t>', 't of t-closeness', Number)
    .addOption(new Option('--mode <mode>', 'Mondrian variant').choices(['strict', 'relaxed']).default('strict'))
    .option('--hierarchies <dir>', 'folder of ARX hierarchies named <column>.csv or *_hierarchy_<column>.csv')
    .option('--max-suppression <fraction>', 'share of rows that may be suppressed (withheld), e.g. 0.02', Number, 0)
    .option('--missing <token>', 'drop rows containing this cell value (e.g. "?")')
    .requiredOption('--out <file>', 'anonymized CSV')
    .option('--report <file>', 'JSON report of utility and risk before and after')
    .option('--plot <file>', 'SVG plot of NCP vs k (k = 2,5,10,20,50,100 and the chosen k)')
    .action(async (options: AnonymizeOptions) => {
      const table = options.fhirColumns
        ? await fhirTable(options.in, options.fhirColumns)
        : parseCsv(await readFile(options.in, 'utf8'), { source: options.in, ...(options.missing !== undefined ? { missing: options.missing } : {}) });
      const quasiIdentifiers = await quasiIdentifiersFor(table, options.qi.split(',').map((c) => c.trim()).filter(Boolean), options.hierarchies);
      const l: LDiversity | undefined = options.l === undefined ? undefined : options.lKind === 'recursive' ? { kind: 'recursive', l: options.l, c: options.c } : { kind: options.lKind, l: options.l };
      const mondrianOptions = {
        quasiIdentifiers,
        ...(options.sensitive !== undefined ? { sensitive: options.sensitive } : {}),
        model: { k: options.k, ...(l ? { l } : {}), ...(options.t !== undefined ? { t: options.t } : {}) },
        mode: options.mode,
        maxSuppression: options.maxSuppression,
      };
      const { table: anonymized, report } = anonymizeWithReport(table, mondrianOptions);
      await writeFile(options.out, formatCsv(anonymized));
      if (options.report) await writeFile(options.report, JSON.stringify(report, null, 2) + '\n');
      if (options.plot) {
        const ks = [...new Set([2, 5, 10, 20, 50, 100, options.k])].sort((a, b) => a - b).filter((k) => k <= table.rows.length);
        await writeFile(options.plot, await utilityPlotSvg(utilityCurve(table, mondrianOptions, ks)));
      }
      process.stderr.write(`anonymized ${table.rows.length} rows into ${report.after.classes} classes (${report.after.suppressedRecords} suppressed); NCP ${report.after.ncpPercent.toFixed(2)}%\n`);
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
  mode: 'strict' | 'relaxed';
  maxSuppression: number;
  hierarchies?: string;
  missing?: string;
  fhirColumns?: string;
  out: string;
  report?: string;
  plot?: string;
}

/** A table from FHIR resources (a resource, a Bundle or NDJSON) by the FHIRPath columns in `columnsFile`. */
async function fhirTable(input: string, columnsFile: string): Promise<Table> {
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
  const text = (await readFile(input, 'utf8')).replace(/^\uFEFF/, '');
  let resources: unknown[];
  try {
    const parsed = /\.ndjson$/i.test(input) ? text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown) : [JSON.parse(text) as unknown];
    resources = parsed.flatMap((r) => {
      const bundle = r as { resourceType?: string; entry?: { resource?: unknown }[] };
      return bundle.resourceType === 'Bundle' ? (bundle.entry ?? []).map((e) => e.resource) : [r];
    });
  } catch (error) {
    throw new UsageError(`${input}: not valid JSON (${(error as Error).message})`);
  }
  return tableFromFhir(resources, spec.resourceType, columns as Record<string, string>);
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`"${value}" is not a positive integer`);
  return n;
}

/** A QI with a hierarchy file is categorical; without one it is numeric when every value is a number, else flat categorical. */
async function quasiIdentifiersFor(table: Table, columns: string[], folder: string | undefined): Promise<QuasiIdentifier[]> {
  const files = folder ? await readdir(folder) : [];
  return Promise.all(columns.map(async (column): Promise<QuasiIdentifier> => {
    const index = table.columns.indexOf(column);
    if (index < 0) throw new UsageError(`--qi: unknown column "${column}"; the table has ${table.columns.join(', ')}`);
    const file = files.find((f) => f === `${column}.csv` || f.endsWith(`_hierarchy_${column}.csv`));
    if (folder && file && existsSync(join(folder, file))) {
      const path = join(folder, file);
      return { column, kind: 'categorical', hierarchy: Hierarchy.parse(await readFile(path, 'utf8'), path) };
    }
    const values = table.rows.map((row) => row[index] ?? '');
    if (values.every((v) => v !== '' && Number.isFinite(Number(v)))) return { column, kind: 'numeric' };
    return { column, kind: 'categorical', hierarchy: Hierarchy.flat(values) };
  }));
}
