/**
 * `medshare search`: a reader's FHIR search of a patient's records on the encrypted index of a running platform
 * (`medshare serve`; docs/platform.md § Search). The reader logs in (password and one-time code from the terminal
 * or standard input, never argv), obtains her CP-ABE key for `--attribute`s, and runs the query through the SDK:
 * the cloud sees index labels and record ids only; the results are decrypted and checked here. The searchset
 * Bundle goes to standard output (or `--out`, written atomically), a one-line summary to standard error.
 */
import { Command, Option } from 'commander';
import { parseSearchQuery, PlatformClient, sameOrigin } from '@medshare/server';
import { UsageError } from '../errors.ts';
import { writeFileAtomic } from '../io.ts';
import { readSecrets } from '../secrets.ts';

interface SearchOptions {
  url: string;
  cloudUrl?: string;
  authorityUrl?: string;
  hospital: string;
  username: string;
  attribute: string[];
  patient: string;
  type: string;
  reason?: string;
  out?: string;
  ids?: boolean;
}

function serviceUrl(value: string | undefined, option: string): URL | undefined {
  if (value === undefined) return undefined;
  try {
    return new URL(value);
  } catch {
    throw new UsageError(`${option}: '${value}' is not a URL`);
  }
}

async function search(query: string, options: SearchOptions): Promise<void> {
  if (!/^psn:/.test(options.patient)) throw new UsageError(`--patient is the patient's pseudonym (psn:…), not '${options.patient}'`);
  parseSearchQuery(options.type, new URLSearchParams(query)); // a bad query is a usage error before any login
  const [password, code] = await readSecrets(['password', 'one-time code']);
  const urls = sameOrigin(serviceUrl(options.url, '--url')!, [options.hospital]);
  const client = new PlatformClient({
    ...urls,
    cloud: serviceUrl(options.cloudUrl, '--cloud-url') ?? urls.cloud,
    authority: serviceUrl(options.authorityUrl, '--authority-url') ?? urls.authority,
  });
  const doctor = await client.loginReaderWithCode(options.hospital, options.username, password!, code!, options.attribute);
  const { bundle, records, stats } = await doctor.searchFhir(
    options.patient,
    options.type,
    query,
    options.reason === undefined ? {} : { reason: options.reason },
  );
  const text = options.ids
    ? `${JSON.stringify(records.map((r) => ({ recordId: r.recordId, reference: `${r.resource.resourceType}/${r.resource.id}`, versionId: (r.resource.meta as { versionId?: string } | undefined)?.versionId })))}\n`
    : `${JSON.stringify(bundle)}\n`;
  if (options.out === undefined) process.stdout.write(text);
  else await writeFileAtomic(options.out, text, { overwrite: true });
  process.stderr.write(
    `search ${options.type}?${query}: ${stats.matches} match(es) of ${stats.candidates} candidate(s), ${stats.labels} label(s) sent to the cloud\n`,
  );
}

/** Registers `medshare search`. */
export function registerSearch(program: Command): void {
  program
    .command('search')
    .description(
      "a reader's FHIR search of a patient's records on the encrypted index of a running platform (password and one-time code on stdin or the terminal)",
    )
    .argument('<query>', "FHIR search parameters, e.g. 'code=http://loinc.org|2093-3&date=ge2020-01-01' (code, status, date, _content, _text)")
    .requiredOption('--url <url>', "the reader's hospital (and the cloud and authority, unless given apart)")
    .option('--cloud-url <url>', "the cloud's URL when it is not at --url")
    .option('--authority-url <url>', "the trusted authority's URL when it is not at --url")
    .requiredOption('--hospital <name>', 'the hospital whose identity service the reader logs in at')
    .requiredOption('--username <name>', "the reader's account")
    .requiredOption('--patient <pseudonym>', "the patient's pseudonym (psn:…)")
    .requiredOption('--attribute <attribute...>', 'the CP-ABE attributes to obtain a key for (e.g. role:doctor dept:cardiology)')
    .addOption(new Option('--type <resourceType>', 'the FHIR resource type searched').default('Observation'))
    .option('--reason <text>', 'break the glass: an emergency search with this reason (audited, shown to the patient)')
    .option('--ids', 'print record ids, references and versions instead of the Bundle')
    .option('--out <file>', 'write the result to this file (atomically) instead of standard output')
    .action(search);
}
