/**
 * A ganache 7.9 JSON-RPC node as a child process on 127.0.0.1, for tests: one per test file. Accounts come from
 * the public development mnemonic below (ganache unlocks them; tests sign with ethers Wallets of the same keys).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { HDNodeWallet, JsonRpcProvider, Wallet } from 'ethers';

export const TEST_MNEMONIC = 'test test test test test test test test test test test junk';

/** A running node: its URL, a provider, funded wallets, and `stop`. */
export interface GanacheNode {
  url: string;
  provider: JsonRpcProvider;
  /** Funded account `i` (0 ≤ i < 10), connected to `provider`. */
  wallet(i: number): Wallet;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts ganache and waits until it answers JSON-RPC. */
export async function startGanache(): Promise<GanacheNode> {
  const port = await freePort();
  const cli = createRequire(import.meta.url).resolve('ganache/dist/node/cli.js');
  const child: ChildProcess = spawn(
    process.execPath,
    [
      cli,
      '--server.host',
      '127.0.0.1',
      '--server.port',
      String(port),
      '--wallet.mnemonic',
      TEST_MNEMONIC,
      '--wallet.totalAccounts',
      '10',
      '--chain.chainId',
      '1337',
      '--logging.quiet',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`ganache exited: ${stderr.slice(0, 500)}`);
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      });
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error('ganache did not start within 60 s');
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // No response cache: two identical calls around a state change must both reach the node.
  const provider = new JsonRpcProvider(url, undefined, { cacheTimeout: -1, staticNetwork: true, pollingInterval: 50 });
  return {
    url,
    provider,
    wallet: (i) => new Wallet(HDNodeWallet.fromPhrase(TEST_MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`).privateKey, provider),
    stop: async () => {
      provider.destroy();
      if (child.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    },
  };
}
