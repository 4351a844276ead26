/**
 * `medshare export`: research release through a hospital's running service (`medshare serve`). Its gateway system
 * logs in (password and one-time code from the terminal or standard input, never argv) and sends each patient's
 * FHIR file to its gateway, which de-identifies it under the profile with the hospital's keys and has the release
 * recorded on the ledger before answering (packages/server/src/gateway/research-export.ts). Each release is written
 * to the output folder under the input's file name, atomically. A patient without research consent is refused by
 * the platform: with `--patient-consent` (release only what consent covers) she is skipped and listed, without it
 * the export stops there with exit 3 (files already released stay written).
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Command, Option } from 'commander';
import { GatewayClient, HttpProblemError, PlatformClient, RELEASE_PROFILES, sameOrigin } from '@medshare/server';
import { UsageError } from '../errors.ts';
import { writeFileAtomic } from '../io.ts';
import { readSecrets } from '../secrets.ts';

interface ExportOptions {
  url: string;
  hospital: string;
  username: string;
  profile: string;
  patientConsent?: boolean;
  in: string;
  out: string;
  json?: boolean;
}

/** The FHIR JSON files of `path`: the file itself, or the `.json` files of a folder, sorted. */
async function inputFiles(path: string): Promise<string[]> {
  if (!(await stat(path)).isDirectory()) return [path];
  const names = (await readdir(path)).filter((name) => name.endsWith('.json')).sort();
  if (names.length === 0) throw new UsageError(`no .json files in ${path}`);
  return names.map((name) => join(path, name));
}

async function exportRecords(options: ExportOptions): Promise<void> {
  const files = await inputFiles(options.in);
  await mkdir(options.out, { recursive: true });
  const [password, code] = await readSecrets(['password', 'one-time code']);
  const session = await new PlatformClient(sameOrigin(options.url, [options.hospital])).loginWithCode(options.hospital, options.username, password!, code!);
  const gateway = new GatewayClient(session);
  const released: Array<{ file: string; ledgerIndex: number; digest: string }> = [];
  const skipped: string[] = [];
  for (const [i, file] of files.entries()) {
    let body: unknown;
    try {
      body = JSON.parse((await readFile(file, 'utf8')).replace(/^\uFEFF/, ''));
    } catch {
      throw new UsageError(`${file}: not JSON`);
    }
    try {
      const release = await gateway.researchExport(body, options.profile);
      const target = join(options.out, basename(file));
      await writeFileAtomic(target, `${JSON.stringify(release.released)}\n`, { overwrite: true });
      released.push({ file: target, ledgerIndex: release.ledgerIndex, digest: release.digest });
    } catch (error) {
      const noConsent = error instanceof HttpProblemError && error.status === 403 && /not consented/.test(error.message);
      if (!noConsent || !options.patientConsent)
        throw error instanceof HttpProblemError ? Object.assign(error, { message: `${basename(file)}: ${error.message}` }) : error;
      skipped.push(file);
    }
    process.stderr.write(`export ${i + 1}/${files.length}: ${released.length} released, ${skipped.length} skipped (no consent)\n`);
  }
  if (options.json) process.stdout.write(`${JSON.stringify({ profile: options.profile, released, skipped })}\n`);
  else {
    for (const r of released) process.stdout.write(`released ${r.file} (ledger entry ${r.ledgerIndex}, ${r.digest})\n`);
    for (const file of skipped) process.stdout.write(`skipped ${file}: the patient has not consented to research release\n`);
  }
}

/** Registers the `export` command. */
export function registerExport(program: Command): void {
  program
    .command('export')
    .description("research release: de-identified FHIR of consenting patients, through the hospital's gateway, recorded on the ledger")
    .requiredOption('--url <url>', "the hospital's service (its identity and gateway routes)")
    .requiredOption('--hospital <name>', "the hospital whose gateway releases (its system's account)")
    .requiredOption('--username <name>', 'the gateway system account (role:gateway); password and one-time code are read from the terminal or stdin')
    .addOption(new Option('--profile <name>', 'de-identification profile').choices([...RELEASE_PROFILES]).makeOptionMandatory())
    .option('--patient-consent', 'release only the patients who consented and list the others (default: stop at the first without consent)')
    .requiredOption('--in <path>', "a patient's FHIR resource or Bundle (.json), or a folder of them")
    .requiredOption('--out <folder>', 'where the releases are written (same file names)')
    .option('--json', 'print the result as JSON')
    .action(exportRecords);
}
