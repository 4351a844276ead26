// Recompiles packages/ledger/contracts/LedgerAnchor.sol and rewrites the committed artifact next to it.
// Usage: node --import tsx scripts/compile-ledger-contract.ts [--stdout]   (--stdout: print the artifact instead)
import { writeFileSync } from 'node:fs';
import { compileAnchorContract, formatArtifact } from '../packages/ledger/src/contract.ts';

const artifact = await compileAnchorContract();
if (process.argv.includes('--stdout')) {
  process.stdout.write(formatArtifact(artifact));
} else {
  writeFileSync(new URL('../packages/ledger/contracts/LedgerAnchor.json', import.meta.url), formatArtifact(artifact));
  console.log(`LedgerAnchor: ${artifact.compiler}, ${(artifact.bytecode.length - 2) / 2} bytes of init code`);
}
