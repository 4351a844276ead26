/**
 * The hospital administrator's screens: onboard staff (attributes and SMART scopes; the TOTP secret and recovery
 * codes are shown once), disable, enable, unlock and end the sessions of an account, and the ledger's witness
 * status. The administrator credential is this hospital's own (no other hospital's works here); it is kept in this
 * page's memory only, and sent only to this hospital's identity service.
 */
import { api } from './api.ts';
import { at } from './config.ts';
import { busy, field, h, show, status } from './dom.ts';

/** The administrator screens for `hospital`, in `root`. */
export function adminScreen(root: HTMLElement, hospital: string): void {
  const token = h('input', { type: 'password', autocomplete: 'off', id: 'admin-token' });
  const out = h('div', { 'aria-live': 'polite', id: 'admin-output' });
  const base = `/identity/${hospital}`;
  const call = <T>(method: string, path: string, body?: unknown) => {
    if (token.value.length < 16) throw new Error('enter this hospital\'s administrator credential first');
    return api<T>(method, `${base}${path}`, { token: token.value, ...(body === undefined ? {} : { body }) });
  };

  // Onboarding.
  const username = h('input', { type: 'text', autocomplete: 'off', id: 'staff-username' });
  const role = h('select', { id: 'staff-role' }, ...['doctor', 'nurse', 'emergency', 'pharmacist', 'patient'].map((r) => h('option', { value: r }, r)));
  const dept = h('input', { type: 'text', autocomplete: 'off', id: 'staff-dept', placeholder: 'e.g. cardiology' });
  const level = h('input', { type: 'number', min: '0', max: '10', id: 'staff-level' });
  const onboard = h('button', { type: 'button' }, 'Onboard') as HTMLButtonElement;
  onboard.addEventListener('click', () => busy(onboard, out, async () => {
    const attributes = [`role:${role.value}`, ...(dept.value.trim() ? [`dept:${dept.value.trim().toLowerCase()}`] : []), ...(level.value !== '' ? [`level=${Number(level.value)}`] : [])];
    const scopes = role.value === 'patient' ? ['patient/*.rs'] : ['user/*.rs'];
    const password = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
    const enrolment = await call<{ userId: string; totpSecret: string; totpUri?: string; recoveryCodes: string[] }>('POST', '/users', { username: username.value.trim(), password, attributes, scopes });
    show(out, status(`${username.value.trim()} onboarded with ${attributes.join(', ')}. Give these to her in person; they are shown once.`, 'ok'),
      h('dl', { class: 'enrolment' },
        h('dt', {}, 'Initial password'), h('dd', {}, h('code', { id: 'new-password' }, password)),
        h('dt', {}, 'Authenticator (TOTP) secret'), h('dd', {}, h('code', { id: 'new-totp' }, enrolment.totpSecret)),
        h('dt', {}, 'Recovery codes'), h('dd', {}, h('code', {}, enrolment.recoveryCodes.join(' ')))));
  }));

  // Account actions.
  const account = h('input', { type: 'text', autocomplete: 'off', id: 'account' });
  const actions = (['disable', 'enable', 'unlock', 'revoke-sessions'] as const).map((action) => {
    const button = h('button', { type: 'button', class: 'secondary' }, action === 'revoke-sessions' ? 'End sessions' : action[0]!.toUpperCase() + action.slice(1)) as HTMLButtonElement;
    button.addEventListener('click', () => busy(button, out, async () => {
      await call('POST', `/admin/users/${encodeURIComponent(account.value.trim())}/${action}`);
      show(out, status(`${action} ${account.value.trim()}: done.`, 'ok'));
    }));
    return button;
  });

  // Witnesses.
  const witnessOut = h('div', { 'aria-live': 'polite' });
  const witness = h('button', { type: 'button', class: 'secondary' }, 'Check ledger and witnesses') as HTMLButtonElement;
  witness.addEventListener('click', () => busy(witness, witnessOut, async () => {
    const keys = await api<{ log: string; witnesses: string[]; quorum: number }>('GET', at('cloud', '/ledger/keys'));
    const health = await fetch(at('cloud', '/ledger/health')).then(async (r) => ({ ok: r.ok, body: await r.json() as Record<string, unknown> }));
    const checkpoint = await fetch(at('cloud', '/ledger/checkpoint')).then((r) => r.text());
    const cosigned = checkpoint.split('\n').filter((line) => line.startsWith('— ')).map((line) => line.split(' ')[1]);
    show(witnessOut, status(health.ok ? 'Ledger healthy.' : 'Ledger reports a fault.', health.ok ? 'ok' : 'error'),
      h('p', {}, `Checkpoint of ${checkpoint.split('\n')[1] ?? '?'} entries, signed by: ${cosigned.join(', ')}. Quorum ${keys.quorum} of ${keys.witnesses.length} witnesses.`),
      h('pre', {}, JSON.stringify(health.body, null, 2)));
  }));

  show(root,
    h('section', { 'aria-labelledby': 'cred-title' }, h('h2', { id: 'cred-title' }, `Administration of ${hospital}`), field('Administrator credential', token, 'Kept in this page only.')),
    h('section', { 'aria-labelledby': 'onboard-title' }, h('h2', { id: 'onboard-title' }, 'Onboard staff'),
      h('div', { class: 'grid' }, field('Username', username), field('Role', role)), h('div', { class: 'grid' }, field('Department', dept), field('Licence level', level)), onboard),
    h('section', { 'aria-labelledby': 'accounts-title' }, h('h2', { id: 'accounts-title' }, 'Accounts'), field('Username of the account', account), h('div', { class: 'actions' }, ...actions)),
    out,
    h('section', { 'aria-labelledby': 'witness-title' }, h('h2', { id: 'witness-title' }, 'Ledger witnesses'), witness, witnessOut));
}
