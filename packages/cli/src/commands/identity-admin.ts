/**
 * `medshare identity admin ...` — a hospital administrator's account operations against its identity service
 * (docs/identity.md §administration). The administrator token is that hospital's own; it is read like every secret
 * (a hidden prompt, or the first stdin line), never an argument.
 *
 *   disable | enable | revoke-sessions | unlock --username U
 *   attributes --username U --attribute A ...      replaces the vouched attributes (her sessions end)
 *   trace --pseudonym psn:...                      whom a session pseudonym (a token subject, a ledger agent) names
 */
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { readSecrets } from '../secrets.ts';
import { postJson } from './identity-http.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function serverUrl(server: string, path: string): URL {
  let base: URL;
  try {
    base = new URL(server.endsWith('/') ? server : `${server}/`);
  } catch {
    throw new UsageError(`not a URL: ${server}`);
  }
  return new URL(path, base);
}

const adminUrl = (server: string, username: string, action: string) => serverUrl(server, `admin/users/${encodeURIComponent(username)}/${action}`);

async function run(action: string, options: { server: string; username: string; attribute?: string[] }): Promise<void> {
  const [adminToken] = await readSecrets(['administrator token']);
  const url = adminUrl(options.server, options.username, action);
  const result =
    action === 'attributes' ? await postJson(url, { attributes: options.attribute ?? [] }, adminToken, 'PUT') : await postJson(url, undefined, adminToken);
  process.stdout.write(`${JSON.stringify(result ?? {})}\n`);
}

/** Adds `identity admin`. */
export function registerIdentityAdmin(identity: Command): void {
  const admin = identity
    .command('admin')
    .description("a hospital administrator's account operations (stdin line / prompt: that hospital's administrator token)");
  const actions: Array<[string, string]> = [
    ['disable', 'disable a user: no login, no refresh, no new key; every session of hers ends at once'],
    ['enable', 'enable a disabled user again'],
    ['revoke-sessions', 'end every session of a user'],
    ['unlock', 'clear the login throttle of a user, from every address'],
  ];
  for (const [action, description] of actions) {
    admin
      .command(action)
      .description(description)
      .requiredOption('--server <url>', 'identity service URL (…/identity/ or /identity/<hospital>/)')
      .requiredOption('--username <name>', 'login name')
      .action((options: { server: string; username: string }) => run(action, options));
  }
  admin
    .command('attributes')
    .description('replace the attributes the hospital vouches for (hospital: and uid: stay); her sessions end')
    .requiredOption('--server <url>', 'identity service URL (…/identity/ or /identity/<hospital>/)')
    .requiredOption('--username <name>', 'login name')
    .requiredOption('--attribute <attr>', 'vouched attribute, e.g. role:doctor, dept:cardiology, level=3 (repeatable)', collect)
    .action((options: { server: string; username: string; attribute: string[] }) => run('attributes', options));
  admin
    .command('trace')
    .description('name the user and session behind a session pseudonym of this hospital (only its tracing key opens one)')
    .requiredOption('--server <url>', 'identity service URL (…/identity/ or /identity/<hospital>/)')
    .requiredOption('--pseudonym <psn>', 'a session pseudonym, psn:…, as a token subject or a ledger agent shows it')
    .action(async (options: { server: string; pseudonym: string }) => {
      const [adminToken] = await readSecrets(['administrator token']);
      process.stdout.write(`${JSON.stringify(await postJson(serverUrl(options.server, 'admin/trace'), { pseudonym: options.pseudonym }, adminToken))}\n`);
    });
}
