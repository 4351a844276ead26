/**
 * The LedgerAnchor contract (contracts/LedgerAnchor.sol): compiled with the `solc` npm package (solc-js, the
 * Solidity compiler as WebAssembly) using standard JSON input. The compiled artifact is committed next to the
 * source (contracts/LedgerAnchor.json) so that running the client needs no compiler; a test recompiles and
 * checks the artifact is reproduced byte for byte.
 *
 * EVM target: `london` (no PUSH0), so the bytecode also runs on consortium chains that lag mainnet forks
 * (GoQuorum, older Besu networks).
 */
import { readFileSync } from 'node:fs';
import { IntegrityError } from '@medshare/crypto';

/** What the client needs to deploy and call the contract. */
export interface ContractArtifact {
  contractName: string;
  compiler: string;
  settings: Record<string, unknown>;
  sourceSha256: string;
  abi: unknown[];
  bytecode: string;
}

const SOURCE_URL = new URL('../contracts/LedgerAnchor.sol', import.meta.url);
const ARTIFACT_URL = new URL('../contracts/LedgerAnchor.json', import.meta.url);
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'london',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
};

/** The committed artifact. */
export function loadAnchorArtifact(): ContractArtifact {
  return JSON.parse(readFileSync(ARTIFACT_URL, 'utf8')) as ContractArtifact;
}

/** Compiles contracts/LedgerAnchor.sol with the pinned solc; throws IntegrityError on any compiler error. */
export async function compileAnchorContract(): Promise<ContractArtifact> {
  const { default: solc } = await import('solc');
  const source = readFileSync(SOURCE_URL, 'utf8');
  const input = { language: 'Solidity', sources: { 'LedgerAnchor.sol': { content: source } }, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>>;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) throw new IntegrityError(`LedgerAnchor.sol does not compile: ${errors[0]!.formattedMessage.split('\n')[0]}`);
  const compiled = output.contracts['LedgerAnchor.sol']?.['LedgerAnchor'];
  if (compiled === undefined) throw new IntegrityError('solc produced no LedgerAnchor contract');
  const { createHash } = await import('node:crypto');
  return {
    contractName: 'LedgerAnchor',
    compiler: `solc-js ${solc.version()}`,
    settings: SETTINGS,
    sourceSha256: createHash('sha256').update(source).digest('hex'),
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
  };
}

/** Serialises an artifact exactly as it is committed. */
export function formatArtifact(artifact: ContractArtifact): string {
  return `${JSON.stringify(artifact, null, 2)}\n`;
}
