/**
 * Anchoring checkpoints on an EVM consortium chain (Hyperledger Besu, GoQuorum, any JSON-RPC node) through the
 * LedgerAnchor contract, with ethers v6. The log's checkpoints are first verified locally (signature and origin),
 * then sent with an RFC 9162 consistency proof from the chain's last anchored size, which the contract checks.
 * `proveAnchored` shows, from the chain alone, that a given signed checkpoint was anchored and when.
 *
 * A real chain is reached with `anchorClientFromEnv`: LEDGER_RPC_URL, LEDGER_PRIVATE_KEY (hex) and
 * LEDGER_ANCHOR_ADDRESS (a deployed contract). Tests use Hardhat 2's in-process network instead.
 */
import { createHash } from 'node:crypto';
import { Contract, ContractFactory, JsonRpcProvider, Wallet, keccak256, toUtf8Bytes, type ContractRunner, type Signer } from 'ethers';
import { AccessDeniedError, IntegrityError, MalformedInputError, type MedShareError } from '@medshare/crypto';
import { ChainCallError } from './errors.ts';
import { loadAnchorArtifact } from './contract.ts';
import { parseNote } from './note.ts';
import { verifyCheckpointNote, type VerifiedCheckpoint } from './witness.ts';
import type { CheckpointVerifier } from './keys.ts';
import type { AuditLog, StoredEntry } from './log.ts';

/** Where and when a checkpoint was anchored. */
export interface AnchorReceipt {
  treeSize: number;
  blockNumber: number;
  timestamp: number;
  transactionHash?: string;
}

const HASH_NAME = /^sha256:([0-9a-f]{64})$/;

/** keccak256 of the log's origin line: the contract's key for one log. */
export function originHash(origin: string): string {
  return keccak256(toUtf8Bytes(origin));
}

/** SHA-256 of a checkpoint's body (without signatures): binds the anchor to the exact checkpoint text. */
export function checkpointHash(note: string): string {
  return `0x${createHash('sha256').update(parseNote(note).body).digest('hex')}`;
}

/** A chain revert or RPC failure, as a typed error (contract reverts that mean a fork are IntegrityErrors). */
function chainError(contract: Contract, error: unknown, action: string): MedShareError {
  const { revert, shortMessage, ...rest } = error as {
    revert?: { name?: string } | null; data?: unknown; error?: { data?: unknown }; info?: { error?: { data?: unknown } }; shortMessage?: string;
  };
  // Providers put the revert data in different places (a node's eth_call vs eth_sendTransaction answer).
  const data = [rest.data, rest.error?.data, rest.info?.error?.data].find((d) => typeof d === 'string');
  let name = revert?.name;
  if (name === undefined && typeof data === 'string') {
    try {
      name = contract.interface.parseError(data)?.name;
    } catch {
      name = undefined;
    }
  }
  if (name === 'NotConsistent') return new IntegrityError(`${action}: the chain refuses a checkpoint inconsistent with the one it anchored (fork)`);
  if (name === 'NotNewer') return new MalformedInputError(`${action}: the chain already holds this or a larger tree size`);
  if (name === 'NotAuthorised') return new AccessDeniedError(`${action}: this account may not anchor`);
  if (name === 'ConsentUnchanged') return new MalformedInputError(`${action}: the consent is already in that state`);
  const message = shortMessage ?? (error instanceof Error ? error.message.split('\n')[0] : String(error));
  return new ChainCallError(`${action}: chain call failed (${message})`);
}

/** A client of one deployed LedgerAnchor contract. */
export class AnchorClient {
  private constructor(readonly contract: Contract) {}

  /** Deploys a new LedgerAnchor with `signer` as the consortium admin. */
  static async deploy(signer: Signer): Promise<AnchorClient> {
    const { abi, bytecode } = loadAnchorArtifact();
    const contract = await new ContractFactory(abi as never, bytecode, signer).deploy();
    await contract.waitForDeployment();
    return new AnchorClient(contract as Contract);
  }

  /** Connects to a deployed contract (a Signer to write, a Provider to read). */
  static connect(address: string, runner: ContractRunner): AnchorClient {
    return new AnchorClient(new Contract(address, loadAnchorArtifact().abi as never, runner));
  }

  /** The contract's address. */
  async address(): Promise<string> {
    return this.contract.getAddress();
  }

  /** The last tree size anchored for a log origin (0 when none). */
  async latestSize(origin: string): Promise<number> {
    return Number(await this.contract.getFunction('latestSize')(originHash(origin)));
  }

  /** Lets another account (a hospital) anchor; only the admin may. */
  async setAnchorer(account: string, allowed: boolean): Promise<void> {
    try {
      await (await this.contract.getFunction('setAnchorer')(account, allowed)).wait();
    } catch (error) {
      throw chainError(this.contract, error, 'setAnchorer');
    }
  }

  /** Anchors a verified checkpoint with the consistency proof from the chain's last anchored size. */
  async anchorCheckpoint(checkpoint: VerifiedCheckpoint, consistencyProof: readonly Uint8Array[]): Promise<AnchorReceipt> {
    try {
      const tx = await this.contract.getFunction('anchorCheckpoint')(
        originHash(checkpoint.origin),
        checkpoint.size,
        `0x${checkpoint.rootHash.toString('hex')}`,
        checkpointHash(checkpoint.note),
        consistencyProof.map((h) => `0x${Buffer.from(h).toString('hex')}`),
      );
      const receipt = await tx.wait();
      const block = await receipt.getBlock();
      return { treeSize: checkpoint.size, blockNumber: receipt.blockNumber, timestamp: block.timestamp, transactionHash: receipt.hash };
    } catch (error) {
      throw chainError(this.contract, error, `anchoring checkpoint ${checkpoint.size}`);
    }
  }

  /** Anchors the log's latest checkpoint (verified against `logKey` first); no-op when already anchored. */
  async anchorLatest(log: AuditLog, logKey: CheckpointVerifier): Promise<AnchorReceipt> {
    await log.flush();
    const checkpoint = verifyCheckpointNote(await log.checkpoint(), logKey);
    const anchored = await this.latestSize(checkpoint.origin);
    if (anchored === checkpoint.size) return this.proveAnchored(checkpoint.note, logKey);
    if (anchored > checkpoint.size) throw new IntegrityError(`the chain holds size ${anchored}, beyond this log's ${checkpoint.size}`);
    return this.anchorCheckpoint(checkpoint, log.consistencyProof(anchored, checkpoint.size));
  }

  /** Proves from the chain that this exact signed checkpoint was anchored; throws IntegrityError if not. */
  async proveAnchored(note: string, logKey: CheckpointVerifier): Promise<AnchorReceipt> {
    const checkpoint = verifyCheckpointNote(note, logKey);
    const anchor = (await this.contract.getFunction('anchorOf')(originHash(checkpoint.origin), checkpoint.size)) as {
      rootHash: string; checkpointHash: string; blockNumber: bigint; timestamp: bigint;
    };
    if (anchor.blockNumber === 0n) throw new IntegrityError(`checkpoint ${checkpoint.size} of ${checkpoint.origin} was never anchored`);
    if (anchor.rootHash !== `0x${checkpoint.rootHash.toString('hex')}` || anchor.checkpointHash !== checkpointHash(note)) {
      throw new IntegrityError(`the chain anchored a different checkpoint of size ${checkpoint.size} (fork)`);
    }
    return { treeSize: checkpoint.size, blockNumber: Number(anchor.blockNumber), timestamp: Number(anchor.timestamp) };
  }

  /** Records a consent grant (true) or revocation (false) by its hash, with the ledger index of its entry. */
  async recordConsent(consent: string, granted: boolean, ledgerIndex: number): Promise<AnchorReceipt> {
    const hex = HASH_NAME.exec(consent)?.[1];
    if (hex === undefined) throw new MalformedInputError('a consent is named by sha256:<64 hex>');
    try {
      const receipt = await (await this.contract.getFunction('recordConsent')(`0x${hex}`, granted, ledgerIndex)).wait();
      const block = await receipt.getBlock();
      return { treeSize: ledgerIndex, blockNumber: receipt.blockNumber, timestamp: block.timestamp, transactionHash: receipt.hash };
    } catch (error) {
      throw chainError(this.contract, error, 'recording consent');
    }
  }

  /** Puts a logged consent-grant or consent-revoke entry on the chain: its policy hash, the direction, its index. */
  async recordConsentEntry(entry: StoredEntry): Promise<AnchorReceipt> {
    const code = entry.event.type.code;
    if (code !== 'consent-grant' && code !== 'consent-revoke') throw new MalformedInputError(`entry ${entry.index} is not a consent event`);
    const policy = entry.event.entity.find((e) => e.type.code === 'policy')?.what.identifier.value;
    if (policy === undefined) throw new MalformedInputError(`entry ${entry.index} names no policy`);
    return this.recordConsent(policy, code === 'consent-grant', entry.index);
  }

  /** Whether the chain currently records the consent as granted. */
  async consentGranted(consent: string): Promise<boolean> {
    const hex = HASH_NAME.exec(consent)?.[1];
    if (hex === undefined) throw new MalformedInputError('a consent is named by sha256:<64 hex>');
    return Boolean(await this.contract.getFunction('consentGranted')(`0x${hex}`));
  }
}

/** Connects to the chain named by LEDGER_RPC_URL, LEDGER_PRIVATE_KEY and LEDGER_ANCHOR_ADDRESS. */
export function anchorClientFromEnv(env: NodeJS.ProcessEnv = process.env): AnchorClient {
  const url = env['LEDGER_RPC_URL'];
  const key = env['LEDGER_PRIVATE_KEY'];
  const address = env['LEDGER_ANCHOR_ADDRESS'];
  if (!url || !address) throw new MalformedInputError('LEDGER_RPC_URL and LEDGER_ANCHOR_ADDRESS must be set to anchor on a chain');
  // No response cache: two identical calls around a state change must both reach the node.
  const provider = new JsonRpcProvider(url, undefined, { cacheTimeout: -1 });
  return AnchorClient.connect(address, key ? new Wallet(key, provider) : provider);
}
