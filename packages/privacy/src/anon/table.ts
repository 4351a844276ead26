/**
 * Tables for anonymization: CSV in and out (RFC 4180, ',' or ';' separated, via csv-parse and
 * csv-stringify), and tables extracted from FHIR resources by configurable FHIRPath columns.
 */
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import fhirpath from 'fhirpath';
import r4Model from 'fhirpath/fhir-context/r4/index.js';
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';

/** A table of string cells with named columns. */
export interface Table {
  columns: string[];
  rows: string[][];
}

/** Upper bound on rows read, so a hostile file cannot exhaust memory. */
export const MAX_ROWS = 2_000_000;

/** Guesses the delimiter from the header line: ';' when it has more ';' than ','. */
function sniffDelimiter(text: string): string {
  const header = text.slice(0, text.indexOf('\n') >>> 0);
  return (header.match(/;/g)?.length ?? 0) > (header.match(/,/g)?.length ?? 0) ? ';' : ',';
}

/** Parses CSV text with a header row. Cells are trimmed; `missing` values (e.g. '?') drop their row when `dropMissing`. */
export function parseCsv(text: string, options: { delimiter?: string; header?: string[]; missing?: string; source?: string } = {}): Table {
  const source = options.source ?? 'csv';
  let records: string[][];
  try {
    records = parse(text.replace(/^\uFEFF/, ''), {
      delimiter: options.delimiter ?? sniffDelimiter(text),
      trim: true,
      skip_empty_lines: true,
      relax_column_count: false,
      to: MAX_ROWS + 2,
    });
  } catch (error) {
    throw new MalformedInputError(`${source}: ${(error as Error).message}`);
  }
  if (records.length > MAX_ROWS + 1) throw new LimitExceededError(`${source}: more than ${MAX_ROWS} rows`);
  const columns = options.header ?? records.shift();
  if (!columns || columns.length === 0) throw new MalformedInputError(`${source}: no header row`);
  let rows = records;
  if (rows.some((row) => row.length !== columns.length)) throw new MalformedInputError(`${source}: rows must have ${columns.length} cells`);
  if (options.missing !== undefined) rows = rows.filter((row) => !row.includes(options.missing as string));
  return { columns, rows };
}

/** Serialises a table as CSV with a header row. */
export function formatCsv(table: Table, delimiter = ','): string {
  return stringify([table.columns, ...table.rows], { delimiter });
}

/** Index of a named column, or a clear error naming the known columns. */
export function columnIndex(table: Table, name: string): number {
  const index = table.columns.indexOf(name);
  if (index < 0) throw new MalformedInputError(`unknown column "${name}"; the table has ${table.columns.join(', ')}`);
  return index;
}

/**
 * Extracts one row per resource of `resourceType`, one column per FHIRPath expression (the
 * first value, or '' when the expression yields nothing), e.g.
 * `{ gender: 'gender', birthYear: "birthDate.toString().substring(0,4)", state: 'address.state' }`.
 */
export function tableFromFhir(resources: Iterable<unknown>, resourceType: string, columns: Record<string, string>): Table {
  const compiled = Object.entries(columns).map(([name, path]) => {
    try {
      return fhirpath.compile(path, r4Model);
    } catch (error) {
      throw new MalformedInputError(`column ${name}: invalid FHIRPath "${path}": ${(error as Error).message.split('\n')[0]}`);
    }
  });
  const rows: string[][] = [];
  for (const resource of resources) {
    if ((resource as { resourceType?: unknown })?.resourceType !== resourceType) continue;
    rows.push(
      compiled.map((evaluate) => {
        const value = (evaluate(resource as never) as unknown[])[0];
        return value === undefined || value === null ? '' : String(value);
      }),
    );
  }
  return { columns: Object.keys(columns), rows };
}
