/**
 * Anchoring checkpoints on an EVM consortium chain (Hyperledger Besu, GoQuorum, any JSON-RPC node) through the
 * LedgerAnchor contract (contracts/LedgerAnchor.sol), with ethers v6. The consortium admin registers each log
 * (`configureLog`: its anchorer account, its witnesses' chain accounts, a quorum). A checkpoint is verified locally
 * (log signature and origin), cosigned for the chain by the witness quorum (chain-cosign.ts), then sent with an
 * RFC 9162 consistency proof from the chain's last anchored size, which the contract checks. `proveAnchored` shows,
 * from the chain alone, that a given signed checkpoint was anchored and when.
 *
 * A real chain is reached with `anchorClientFromEnv`: LEDGER_RPC_URL, LEDGER_PRIVATE_KEY (hex) and
 * LEDGER_ANCHOR_ADDRESS (a deployed contract). Tests start a ganache JSON-RPC node process.
 */
import { createHash } from 'node:crypto';
import { Contract, ContractFactory, JsonRpcProvider, Network, Wallet, keccak256, toUtf8Bytes, type ContractRunner, type Signer } from 'ethers';
import { AccessDeniedError, IntegrityError, MalformedInputError, NotFoundError, type MedShareError } from '@medshare/crypto';
import { ChainCallError } from './errors.ts';
import { loadAnchorArtifact } from './contract.ts';
import { parseNote } from './note.ts';
import { checkChainCosignature, checkpointBodyHash, type ChainCosigner } from './chain-cosign.ts';
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

/** A log as the contract has it registered. */
export interface LogRegistration {
  anchorer: string;
  quorum: number;
  witnesses: string[];
  latestSize: number;
}

/** A consent record on chain, made from one log entry. */
export interface ConsentRecord {
  consentHash: string;
  leafHash: string;
  granted: boolean;
  blockNumber: number;
}

const HASH_NAME = /^sha256:([0-9a-f]{64})$/;

/** keccak256 of the log's origin line: the contract's key for one log. */
export function originHash(origin: string): string {
  return keccak256(toUtf8Bytes(origin));
}

/** SHA-256 of a checkpoint's body (without signatures): what the contract computes from origin, size and root. */
export function checkpointHash(note: string): string {
  return `0x${createHash('sha256').update(parseNote(note).body).digest('hex')}`;
}

/** A chain revert or RPC failure, as a typed error (contract reverts that mean a fork are IntegrityErrors). */
function chainError(contract: Contract, error: unknown, action: string): MedShareError {
  type Nested = { data?: unknown; error?: { data?: unknown } };
  const { revert, shortMessage, ...rest } = error as Nested & { revert?: { name?: string } | null; info?: Nested; shortMessage?: string };
  // Nodes put the revert data in different places (eth_call vs eth_estimateGas answers; ganache nests it in
  // `data.result`).
  const candidates = [rest.data, rest.error?.data, rest.info?.error?.data, rest.info?.data];
  const data = candidates
    .map((d) => (typeof d === 'object' && d !== null && 'result' in d ? (d as { result: unknown }).result : d))
    .find((d) => typeof d === 'string' && d.length >= 10);
  let name = revert?.name;
  if (name === undefined && typeof data === 'string') {
    try {
      name = contract.interface.parseError(data)?.name;
    } catch {
      name = undefined;
    }
  }
  switch (name) {
    case 'NotConsistent':
      return new IntegrityError(`${action}: the chain refuses a checkpoint inconsistent with the one it anchored (fork)`);
    case 'QuorumNotMet':
      return new IntegrityError(`${action}: the checkpoint lacks the witness quorum's chain cosignatures`);
    case 'NotIncluded':
      return new IntegrityError(`${action}: the entry is not in the anchored tree`);
    case 'NotNewer':
      return new MalformedInputError(`${action}: the chain already holds this or a larger tree size`);
    case 'NotAuthorised':
      return new AccessDeniedError(`${action}: this account may not do this`);
    case 'UnknownLog':
      return new NotFoundError(`${action}: the consortium admin has not registered this log`);
    case 'BadConfiguration':
      return new MalformedInputError(`${action}: a log needs an anchorer, 1 ≤ quorum ≤ witnesses ≤ 32, witnesses distinct`);
    case 'NotAnchored':
      return new MalformedInputError(`${action}: no checkpoint of that size is anchored`);
    case 'AlreadyRecorded':
      return new MalformedInputError(`${action}: this entry's consent is already recorded`);
    case 'StaleConsent':
      return new MalformedInputError(`${action}: a later entry of this consent is already recorded`);
    case 'ConsentUnchanged':
      return new MalformedInputError(`${action}: the consent is already in that state`);
    case 'ProofTooLong':
      return new MalformedInputError(`${action}: a proof has at most 64 hashes`);
    default: {
      const message = shortMessage ?? (error instanceof Error ? error.message.split('\n')[0] : String(error));
      return new ChainCallError(`${action}: chain call failed (${message})`);
    }
  }
}

const hex = (bytes: Uint8Array): string => `0x${Buffer.from(bytes).toString('hex')}`;

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

  /** The same contract through another account. */
  as(runner: ContractRunner): AnchorClient {
    return new AnchorClient(this.contract.connect(runner) as Contract);
  }

  /** The contract's address. */
  async address(): Promise<string> {
    return this.contract.getAddress();
  }

  private async send(action: string, method: string, ...args: unknown[]): Promise<AnchorReceipt & { transactionHash: string }> {
    try {
      const receipt = await (await this.contract.getFunction(method)(...args)).wait();
      const block = await receipt.getBlock();
      return { treeSize: 0, blockNumber: receipt.blockNumber, timestamp: block.timestamp, transactionHash: receipt.hash };
    } catch (error) {
      throw chainError(this.contract, error, action);
    }
  }

  /** The last tree size anchored for a log origin (0 when none). */
  async latestSize(origin: string): Promise<number> {
    return Number(await this.contract.getFunction('latestSize')(originHash(origin)));
  }

  /** The current admin account. */
  async admin(): Promise<string> {
    return String(await this.contract.getFunction('admin')());
  }

  /** The admin proposes `next` as admin; `next` must `acceptAdmin`. @throws AccessDeniedError for anyone else. */
  async transferAdmin(next: string): Promise<void> {
    await this.send('transferAdmin', 'transferAdmin', next);
  }

  /** The proposed admin takes over. @throws AccessDeniedError for anyone else. */
  async acceptAdmin(): Promise<void> {
    await this.send('acceptAdmin', 'acceptAdmin');
  }

  /**
   * The admin registers a log, or rotates its anchorer or witnesses: `anchorer` alone may anchor it, with `quorum`
   * of `witnesses`' chain cosignatures. @throws AccessDeniedError (not the admin), MalformedInputError (bad set).
   */
  async configureLog(origin: string, anchorer: string, witnesses: readonly string[], quorum: number): Promise<void> {
    // The contract wants them strictly ascending (that is how it checks they are distinct).
    const sorted = [...witnesses].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
    await this.send(`registering ${origin}`, 'configureLog', origin, anchorer, sorted, quorum);
  }

  /** How the contract has `origin` registered (anchorer is the zero address when it is not). */
  async registration(origin: string): Promise<LogRegistration> {
    const [anchorer, quorum, witnesses, latestSize] = (await this.contract.getFunction('logOf')(originHash(origin))) as [string, bigint, string[], bigint];
    return { anchorer, quorum: Number(quorum), witnesses: [...witnesses], latestSize: Number(latestSize) };
  }

  /** Anchors a verified checkpoint with the consistency proof from the chain's last anchored size and chain cosignatures. */
  async anchorCheckpoint(checkpoint: VerifiedCheckpoint, consistencyProof: readonly Uint8Array[], cosignatures: readonly string[]): Promise<AnchorReceipt> {
    const receipt = await this.send(
      `anchoring checkpoint ${checkpoint.size}`,
      'anchorCheckpoint',
      checkpoint.origin,
      checkpoint.size,
      hex(checkpoint.rootHash),
      consistencyProof.map(hex),
      [...cosignatures],
    );
    return { ...receipt, treeSize: checkpoint.size };
  }

  /**
   * Anchors the log's latest checkpoint (verified against `logKey` first) with the chain cosignatures of
   * `cosigners` (each checked before sending); a no-op proof when it is already anchored. Cosigners that refuse are
   * skipped; the contract decides whether the rest make its quorum.
   */
  async anchorLatest(log: AuditLog, logKey: CheckpointVerifier, cosigners: readonly ChainCosigner[]): Promise<AnchorReceipt> {
    await log.flush();
    const checkpoint = verifyCheckpointNote(await log.checkpoint(), logKey);
    const anchored = await this.latestSize(checkpoint.origin);
    if (anchored === checkpoint.size) return this.proveAnchored(checkpoint.note, logKey);
    if (anchored > checkpoint.size) throw new IntegrityError(`the chain holds size ${anchored}, beyond this log's ${checkpoint.size}`);
    const settled = await Promise.allSettled(
      cosigners.map(async (cosigner) => {
        const signature = await cosigner.chainCosign(checkpoint.note);
        checkChainCosignature(checkpoint, signature, cosigner.address);
        return signature;
      }),
    );
    const cosignatures = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    return this.anchorCheckpoint(checkpoint, log.consistencyProof(anchored, checkpoint.size), cosignatures);
  }

  /**
   * The latest checkpoint anchored for `origin`, as the chain holds it (size and root; the contract computed its
   * hash from them), undefined before any: what a verifier checks the served tree against (`TrustPolicy.anchored`).
   */
  async latestAnchor(origin: string): Promise<{ size: number; rootHash: Buffer } | undefined> {
    const size = await this.latestSize(origin);
    if (size === 0) return undefined;
    const anchor = (await this.contract.getFunction('anchorOf')(originHash(origin), size)) as { rootHash: string; blockNumber: bigint };
    if (anchor.blockNumber === 0n) return undefined;
    return { size, rootHash: Buffer.from(anchor.rootHash.slice(2), 'hex') };
  }

  /** Proves from the chain that this exact signed checkpoint was anchored; throws IntegrityError if not. */
  async proveAnchored(note: string, logKey: CheckpointVerifier): Promise<AnchorReceipt> {
    const checkpoint = verifyCheckpointNote(note, logKey);
    const anchor = (await this.contract.getFunction('anchorOf')(originHash(checkpoint.origin), checkpoint.size)) as {
      rootHash: string;
      checkpointHash: string;
      blockNumber: bigint;
      timestamp: bigint;
    };
    if (anchor.blockNumber === 0n) throw new IntegrityError(`checkpoint ${checkpoint.size} of ${checkpoint.origin} was never anchored`);
    if (anchor.rootHash !== hex(checkpoint.rootHash) || anchor.checkpointHash !== checkpointBodyHash(checkpoint)) {
      throw new IntegrityError(`the chain anchored a different checkpoint of size ${checkpoint.size} (fork)`);
    }
    return { treeSize: checkpoint.size, blockNumber: Number(anchor.blockNumber), timestamp: Number(anchor.timestamp) };
  }

  /**
   * Puts a logged consent-grant or consent-revoke entry on the chain: its policy hash and direction, tied to the
   * entry (origin, index) by an inclusion proof of its leaf hash in the latest anchored tree.
   * @throws MalformedInputError (not a consent entry, not yet anchored, stale), IntegrityError, AccessDeniedError.
   */
  async recordConsentEntry(log: AuditLog, entry: StoredEntry): Promise<AnchorReceipt> {
    const code = entry.event.type.code;
    if (code !== 'consent-grant' && code !== 'consent-revoke') throw new MalformedInputError(`entry ${entry.index} is not a consent event`);
    const hexHash = HASH_NAME.exec(entry.event.entity.find((e) => e.type.code === 'policy')?.what.identifier.value ?? '')?.[1];
    if (hexHash === undefined) throw new MalformedInputError(`entry ${entry.index} names no policy`);
    const anchored = await this.latestSize(log.origin);
    if (anchored <= entry.index) throw new MalformedInputError(`entry ${entry.index} is not in an anchored checkpoint yet (the chain holds ${anchored})`);
    const receipt = await this.send(
      `recording the consent of entry ${entry.index}`,
      'recordConsent',
      originHash(log.origin),
      entry.index,
      hex(entry.leafHash),
      anchored,
      log.inclusionProof(entry.index, anchored).map(hex),
      `0x${hexHash}`,
      code === 'consent-grant',
    );
    return { ...receipt, treeSize: anchored };
  }

  /** The consent record the chain holds for entry `index` of `origin`'s log, if any. */
  async consentRecord(origin: string, index: number): Promise<ConsentRecord | undefined> {
    const record = (await this.contract.getFunction('consentRecordOf')(originHash(origin), index)) as {
      consentHash: string;
      leafHash: string;
      granted: boolean;
      blockNumber: bigint;
    };
    if (record.blockNumber === 0n) return undefined;
    return { consentHash: record.consentHash, leafHash: record.leafHash, granted: record.granted, blockNumber: Number(record.blockNumber) };
  }

  /** Whether the chain currently records the consent as granted in `origin`'s log. */
  async consentGranted(origin: string, consent: string): Promise<boolean> {
    const hexHash = HASH_NAME.exec(consent)?.[1];
    if (hexHash === undefined) throw new MalformedInputError('a consent is named by sha256:<64 hex>');
    return Boolean(await this.contract.getFunction('consentGranted')(originHash(origin), `0x${hexHash}`));
  }
}

/** One JSON-RPC call by plain fetch (before a provider exists); an unreachable node or an error answer is a ChainCallError. */
async function rpcCall(url: string, method: string, params: unknown[]): Promise<unknown> {
  // The URL may carry an API key in its path: errors name its origin only.
  const where = new URL(url).origin;
  let answer: { result?: unknown; error?: { message?: unknown } } | undefined;
  // Twice: a kept-alive connection the node has just closed fails once without the node being down.
  for (let attempt = 0; answer === undefined; attempt++) {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(10_000),
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
      });
      answer = (await response.json()) as typeof answer;
    } catch {
      if (attempt > 0) throw new ChainCallError(`the chain node at ${where} does not answer JSON-RPC (${method})`);
    }
  }
  if (typeof answer !== 'object' || answer === null || answer.error !== undefined || answer.result === undefined) {
    throw new ChainCallError(`the chain node at ${where} refused ${method}`);
  }
  return answer.result;
}

/**
 * Connects to the chain named by LEDGER_RPC_URL, LEDGER_PRIVATE_KEY (omit it to read only) and LEDGER_ANCHOR_ADDRESS,
 * checking first that the node answers and that a contract is deployed at the address, so that bad settings are one
 * clear error at start rather than failures (or ethers retrying network detection forever) later.
 * @throws MalformedInputError for missing or malformed settings or no contract at the address, ChainCallError when the node does not answer
 */
export async function anchorClientFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<AnchorClient> {
  const url = env['LEDGER_RPC_URL'];
  const key = env['LEDGER_PRIVATE_KEY'];
  const address = env['LEDGER_ANCHOR_ADDRESS'];
  if (!url || !address) throw new MalformedInputError('LEDGER_RPC_URL and LEDGER_ANCHOR_ADDRESS must be set to anchor on a chain');
  if (!/^https?:\/\/\S+$/.test(url) || !URL.canParse(url)) throw new MalformedInputError('LEDGER_RPC_URL is not an http(s) URL');
  if (!/^0x[0-9a-fA-F]{40}$/.test(address))
    throw new MalformedInputError(`LEDGER_ANCHOR_ADDRESS is not a contract address (0x and 40 hex digits): ${address.slice(0, 50)}`);
  // Never echoed: it is the anchorer account's secret.
  if (key && !/^(0x)?[0-9a-fA-F]{64}$/.test(key)) throw new MalformedInputError('LEDGER_PRIVATE_KEY is not a secp256k1 private key (64 hex digits)');
  const chainId = await rpcCall(url, 'eth_chainId', []);
  if (typeof chainId !== 'string' || !/^0x[0-9a-fA-F]+$/.test(chainId))
    throw new ChainCallError(`the chain node at ${new URL(url).origin} answered no chain id`);
  if ((await rpcCall(url, 'eth_getCode', [address, 'latest'])) === '0x') {
    throw new MalformedInputError(`LEDGER_ANCHOR_ADDRESS ${address}: no contract is deployed there on the chain at ${new URL(url).origin}`);
  }
  // A static network: ethers detects none (it would retry forever, printing, if the node went away). No response
  // cache: two identical calls around a state change must both reach the node.
  const provider = new JsonRpcProvider(url, Network.from(BigInt(chainId)), { cacheTimeout: -1, staticNetwork: true });
  return AnchorClient.connect(address, key ? new Wallet(key, provider) : provider);
}
