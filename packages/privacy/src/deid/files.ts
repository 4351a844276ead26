/**
 * De-identification of files and folders: a JSON resource or Bundle, or NDJSON (one resource per
 * line, streamed in two passes: names for free-text scrubbing first, then the resources). A folder
 * is processed recursively into a mirror folder. Progress is reported per resource.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { LimitExceededError, MalformedInputError } from '@medshare/crypto';
import type { Deidentifier } from './engine.ts';
import type { JsonObject } from './fhir-nodes.ts';

/** Largest single JSON document read into memory. */
export const MAX_JSON_BYTES = 512 * 1024 * 1024;
/** Longest NDJSON line accepted. */
export const MAX_LINE_CHARS = 64 * 1024 * 1024;

export interface DeidTarget {
  /** Called after each resource with the running count. */
  onResource?: (count: number) => void;
  /** Called once per file with its number of resources, when known before processing. */
  onFileStart?: (path: string, resources: number) => void;
}

/** De-identifies a file or, recursively, a folder of `.json`/`.ndjson` files. Returns the resource count. */
export async function deidentifyPath(engine: Deidentifier, input: string, output: string, target: DeidTarget = {}): Promise<number> {
  const info = await stat(input);
  if (!info.isDirectory()) return deidentifyFile(engine, input, output, target, basename(input));
  let count = 0;
  for (const file of await listFiles(input)) {
    const out = join(output, relative(input, file));
    await mkdir(dirname(out), { recursive: true });
    count += await deidentifyFile(engine, file, out, { ...target, onResource: (n) => target.onResource?.(count + n) }, basename(input));
  }
  return count;
}

async function listFiles(folder: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of (await readdir(folder, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) files.push(...(await listFiles(path)));
    else if (/\.(nd)?json$/i.test(entry.name)) files.push(path);
  }
  return files;
}

/** De-identifies one file; `folderName` is the date-shift prefix for scope `folder`. */
export async function deidentifyFile(engine: Deidentifier, input: string, output: string, target: DeidTarget = {}, folderName = ''): Promise<number> {
  const scopeName = engine.config.parameters.dateShiftScope === 'folder' ? folderName : basename(input);
  if (/\.ndjson$/i.test(input)) return deidentifyNdjson(engine, input, output, target, scopeName);
  const info = await stat(input);
  if (info.size > MAX_JSON_BYTES) throw new LimitExceededError(`${input}: larger than ${MAX_JSON_BYTES} bytes; use NDJSON for large exports`);
  let json: JsonObject;
  try {
    json = JSON.parse((await readFile(input, 'utf8')).replace(/^\uFEFF/, '')) as JsonObject;
  } catch (error) {
    throw new MalformedInputError(`${input}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || typeof json['resourceType'] !== 'string')
    throw new MalformedInputError(`${input}: not a FHIR resource (no resourceType)`);
  const resources =
    json['resourceType'] === 'Bundle' && Array.isArray(json['entry'])
      ? (json['entry'] as JsonObject[]).map((e) => e?.['resource'] as JsonObject).filter(Boolean)
      : [json];
  target.onFileStart?.(input, resources.length);
  const names = engine.namesFor(resources);
  let count = 0;
  const isBundle = json['resourceType'] === 'Bundle';
  engine.processResource(json, { names, scopeName, onEntry: () => target.onResource?.(++count) });
  if (!isBundle) target.onResource?.(++count);
  await writeFile(output, JSON.stringify(json, null, 2) + '\n');
  return count;
}

async function* ndjsonResources(input: string): AsyncGenerator<{ resource: JsonObject; line: number }> {
  const lines = createInterface({ input: createReadStream(input, 'utf8'), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() === '') continue;
    if (text.length > MAX_LINE_CHARS) throw new LimitExceededError(`${input}:${line}: line longer than ${MAX_LINE_CHARS} characters`);
    try {
      yield { resource: JSON.parse(line === 1 ? text.replace(/^\uFEFF/, '') : text) as JsonObject, line };
    } catch (error) {
      throw new MalformedInputError(`${input}:${line}: not valid JSON (${(error as Error).message})`);
    }
  }
}

async function deidentifyNdjson(engine: Deidentifier, input: string, output: string, target: DeidTarget, scopeName: string): Promise<number> {
  const people: JsonObject[] = [];
  let total = 0;
  for await (const { resource } of ndjsonResources(input)) {
    total++;
    if (['Patient', 'Practitioner', 'RelatedPerson', 'Person'].includes(String(resource['resourceType'])))
      people.push({
        resourceType: resource['resourceType'],
        name: resource['name'],
        extension: resource['extension'],
        address: resource['address'],
        contact: resource['contact'],
      });
  }
  target.onFileStart?.(input, total);
  const names = engine.namesFor(people);
  const out = createWriteStream(output);
  let count = 0;
  try {
    for await (const { resource, line } of ndjsonResources(input)) {
      try {
        engine.processResource(resource, { names, scopeName });
      } catch (error) {
        throw new MalformedInputError(`${input}:${line}: ${(error as Error).message}`);
      }
      if (!out.write(JSON.stringify(resource) + '\n')) await once(out, 'drain');
      target.onResource?.(++count);
    }
  } finally {
    out.end();
    await once(out, 'close');
  }
  return count;
}
