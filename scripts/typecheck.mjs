#!/usr/bin/env node
// `npm run typecheck`: the two TypeScript projects (the workspace, and the portal with its DOM and bundler settings)
// checked at once, each in its own tsc process: neither reads the other's output, and one after the other left a core
// idle for the ~15 s each takes on CI's two cores. Fails if either fails; each one's diagnostics are printed whole.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const root = new URL('..', import.meta.url).pathname;
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const projects = ['tsconfig.json', 'packages/portal/tsconfig.json'];

const results = await Promise.all(
  projects.map(
    (project) =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [tsc, '-p', project, '--noEmit'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (chunk) => (output += chunk));
        child.stderr.on('data', (chunk) => (output += chunk));
        child.on('close', (code, signal) => resolve({ project, code: code ?? 1, signal, output }));
      }),
  ),
);
for (const { project, code, signal, output } of results) {
  if (output !== '') process.stdout.write(output);
  if (code !== 0) console.error(`tsc -p ${project}: ${signal ?? `exit ${code}`}`);
}
process.exit(results.some((r) => r.code !== 0) ? 1 : 0);
