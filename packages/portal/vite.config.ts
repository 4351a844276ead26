/**
 * The portal's build: one page under /portal/, the @medshare/crypto code bundled for the browser with
 * `node:crypto` mapped to src/shims/node-crypto.ts (audited @noble primitives) and `Buffer` from the `buffer`
 * package (and `node:buffer` from src/shims/node-buffer.ts); `@medshare/db`, which the ledger's proof modules import for server paths only, by a stub. Output in dist/, which the hospital service serves (packages/server/src/portal.ts).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const shim = fileURLToPath(new URL('./src/shims/node-crypto.ts', import.meta.url));
const noDatabase = fileURLToPath(new URL('./src/shims/no-database.ts', import.meta.url));
const nodeBuffer = fileURLToPath(new URL('./src/shims/node-buffer.ts', import.meta.url));

export default defineConfig({
  base: '/portal/',
  root: fileURLToPath(new URL('.', import.meta.url)),
  resolve: {
    alias: [
      { find: /^node:crypto$/, replacement: shim },
      { find: /^crypto$/, replacement: shim },
      { find: /^@medshare\/db$/, replacement: noDatabase },
      { find: /^node:buffer$/, replacement: nodeBuffer },
    ],
  },
  define: { 'process.env.NODE_DEBUG': 'false' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 4096, reportCompressedSize: false },
});
