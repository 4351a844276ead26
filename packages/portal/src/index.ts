/**
 * @medshare/portal for Node: where the built portal is (the server serves it as static files). Build with
 * `npm run build -w @medshare/portal` (run by the workspace's `prepare`, so `npm install` builds it).
 */
import { fileURLToPath } from 'node:url';

/** The directory of the built portal (index.html and assets/). */
export const PORTAL_DIST = fileURLToPath(new URL('../dist/', import.meta.url));
