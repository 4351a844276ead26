import { Command, CommanderError } from 'commander';
import { describeFailure, EXIT } from './errors.ts';

type Register = (program: Command) => void;

/**
 * Each top-level command and the module that registers it. Loading is lazy because the command groups pull in
 * very different dependencies (the server and PGlite, the de-identification word lists, the EVM client): a
 * `medshare abe keygen` should not pay for loading the FHIR de-identifier.
 */
const COMMANDS: ReadonlyArray<{ names: readonly string[]; load: () => Promise<Register[]> }> = [
  { names: ['abe'], load: async () => [(await import('./commands/abe.ts')).registerAbe] },
  {
    names: ['keys', 'pre'],
    load: async () => {
      const m = await import('./commands/pre.ts');
      return [m.registerPatientKeys, m.registerPre];
    },
  },
  { names: ['demo'], load: async () => [(await import('./commands/demo.ts')).registerDemo] },
  { names: ['inspect'], load: async () => [(await import('./commands/inspect.ts')).registerInspect] },
  { names: ['identity'], load: async () => [(await import('./commands/identity.ts')).registerIdentity] },
  { names: ['audit'], load: async () => [(await import('./commands/audit.ts')).registerAudit] },
  { names: ['deid', 'anonymize'], load: async () => [(await import('./commands/privacy.ts')).registerPrivacy] },
  { names: ['serve'], load: async () => [(await import('./commands/serve.ts')).registerServe] },
  { names: ['stats'], load: async () => [(await import('./commands/stats.ts')).registerStats] },
  { names: ['cloud'], load: async () => [(await import('./commands/cloud.ts')).registerCloud] },
  { names: ['export'], load: async () => [(await import('./commands/export.ts')).registerExport] },
  { names: ['search'], load: async () => [(await import('./commands/search.ts')).registerSearch] },
];

function newProgram(): Command {
  return new Command('medshare')
    .description('MedShare: privacy-preserving cross-domain sharing of electronic medical records')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
}

/**
 * Builds the `medshare` command tree. With `commandName`, only the group that defines it is loaded (the others
 * are not needed to parse its arguments); without it, or for a name no group defines, all of them (for help
 * and commander's "unknown command" message).
 */
export async function buildProgram(commandName?: string): Promise<Command> {
  const program = newProgram();
  const known = COMMANDS.filter((group) => commandName !== undefined && group.names.includes(commandName));
  for (const group of known.length > 0 ? known : COMMANDS) {
    for (const register of await group.load()) register(program);
  }
  return program;
}

/** Runs the CLI and returns the process exit code. Errors become one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv[2]);
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
