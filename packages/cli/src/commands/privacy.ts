/**
 * `medshare deid` (FHIR de-identification); `medshare anonymize` (research release) lives in
 * anonymize.ts. Keys for the built-in profiles come from the environment
 * (MEDSHARE_CRYPTOHASH_KEY, MEDSHARE_DATESHIFT_KEY), never from argv where `ps` would show them;
 * without them fresh random keys are used, so outputs of separate runs cannot be linked.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { Deidentifier, deidentifyPath, parseConfigText, profileConfig, PROFILES, type ProfileName } from '@medshare/privacy';
import { UsageError } from '../errors.ts';
import { registerAnonymize } from './anonymize.ts';

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
      const bar = process.stderr.isTTY
        ? new cliProgress.SingleBar({ stream: process.stderr, format: 'deid [{bar}] {value}/{total} resources | {file}' }, cliProgress.Presets.shades_classic)
        : undefined;
      let total = 0;
      const count = await deidentifyPath(new Deidentifier(config), options.in, options.out, {
        onFileStart: (file, resources) => {
          total += resources;
          if (bar && total === resources) bar.start(total, 0, { file: basename(file) });
          else (bar?.setTotal(total), bar?.update({ file: basename(file) }));
        },
        onResource: (n) => bar?.update(n),
      });
      bar?.stop();
      process.stderr.write(`de-identified ${count} resources\n`);
    });

  registerAnonymize(program);
}
