// Worker entry: workers do not inherit the tsx loader on Node 20, so register it before loading TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./conversion-worker.ts');
