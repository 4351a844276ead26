import { Command, CommanderError } from 'commander';
import { describeFailure, EXIT } from './errors.ts';
import { registerAbe } from './commands/abe.ts';
import { registerPatientKeys, registerPre } from './commands/pre.ts';
import { registerDemo } from './commands/demo.ts';
import { registerInspect } from './commands/inspect.ts';
import { registerIdentity } from './commands/identity.ts';
import { registerAudit } from './commands/audit.ts';
import { registerPrivacy } from './commands/privacy.ts';
import { registerServe } from './commands/serve.ts';
import { registerStats } from './commands/stats.ts';
import { registerCloud } from './commands/cloud.ts';
import { registerExport } from './commands/export.ts';

/** Builds the `medshare` command tree. Each command group lives in its own module. */
export function buildProgram(): Command {
  const program = new Command('medshare')
    .description('MedShare: privacy-preserving cross-domain sharing of electronic medical records')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerAbe(program);
  registerPatientKeys(program);
  registerPre(program);
  registerDemo(program);
  registerInspect(program);
  registerIdentity(program);
  registerAudit(program);
  registerPrivacy(program);
  registerServe(program);
  registerStats(program);
  registerCloud(program);
  registerExport(program);
  return program;
}

/** Runs the CLI and returns the process exit code. Errors become one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.configureOutput({ writeErr: (text) => process.stderr.write(text) });
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander has already printed its message; --help and --version exit 0.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const { message, exitCode } = describeFailure(error);
    process.stderr.write(`medshare: ${message}\n`);
    return exitCode;
  }
}
