/**
 * The hospital administrator's screens: onboard staff (attributes and SMART scopes; the TOTP secret and recovery
 * codes are shown once), disable, enable, unlock and end the sessions of an account, the ledger's witness
 * status, and this hospital's upload receipts (each checked again by the hospital as listed) with its own witness's
 * state (GET /gateway/admin/receipts). The administrator credential is this hospital's own (no other hospital's works here); it is kept in this
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
  /** A request with the administrator credential to this hospital's identity service (or its gateway's `prefix`). */
  const call = <T>(method: string, path: string, body?: unknown, prefix = base) => {
    if (token.value.length < 16) throw new Error("enter this hospital's administrator credential first");
    return api<T>(method, `${prefix}${path}`, { token: token.value, ...(body === undefined ? {} : { body }) });
  };

  // Onboarding.
  const username = h('input', { type: 'text', autocomplete: 'off', id: 'staff-username' });
  const role = h('select', { id: 'staff-role' }, ...['doctor', 'nurse', 'emergency', 'pharmacist', 'patient'].map((r) => h('option', { value: r }, r)));
  const dept = h('input', { type: 'text', autocomplete: 'off', id: 'staff-dept', placeholder: 'e.g. cardiology' });
  const level = h('input', { type: 'number', min: '0', max: '10', id: 'staff-level' });
  const onboard = h('button', { type: 'button' }, 'Onboard') as HTMLButtonElement;
  onboard.addEventListener('click', () =>
    busy(onboard, out, async () => {
      const attributes = [
        `role:${role.value}`,
        ...(dept.value.trim() ? [`dept:${dept.value.trim().toLowerCase()}`] : []),
        ...(level.value !== '' ? [`level=${Number(level.value)}`] : []),
      ];
      const scopes = role.value === 'patient' ? ['patient/*.rs'] : ['user/*.rs'];
      const password = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('');
      const enrolment = await call<{ userId: string; totpSecret: string; totpUri?: string; recoveryCodes: string[] }>('POST', '/users', {
        username: username.value.trim(),
        password,
        attributes,
        scopes,
      });
      show(
        out,
        status(`${username.value.trim()} onboarded with ${attributes.join(', ')}. Give these to her in person; they are shown once.`, 'ok'),
        h(
          'dl',
          { class: 'enrolment' },
          h('dt', {}, 'Initial password'),
          h('dd', {}, h('code', { id: 'new-password' }, password)),
          h('dt', {}, 'Authenticator (TOTP) secret'),
          h('dd', {}, h('code', { id: 'new-totp' }, enrolment.totpSecret)),
          h('dt', {}, 'Recovery codes'),
          h('dd', {}, h('code', {}, enrolment.recoveryCodes.join(' '))),
        ),
      );
    }),
  );

  // Account actions.
  const account = h('input', { type: 'text', autocomplete: 'off', id: 'account' });
  const actions = (['disable', 'enable', 'unlock', 'revoke-sessions'] as const).map((action) => {
    const button = h(
      'button',
      { type: 'button', class: 'secondary' },
      action === 'revoke-sessions' ? 'End sessions' : action[0]!.toUpperCase() + action.slice(1),
    ) as HTMLButtonElement;
    button.addEventListener('click', () =>
      busy(button, out, async () => {
        await call('POST', `/admin/users/${encodeURIComponent(account.value.trim())}/${action}`);
        show(out, status(`${action} ${account.value.trim()}: done.`, 'ok'));
      }),
    );
    return button;
  });

  // Witnesses.
  const witnessOut = h('div', { 'aria-live': 'polite' });
  const witness = h('button', { type: 'button', class: 'secondary' }, 'Check ledger and witnesses') as HTMLButtonElement;
  witness.addEventListener('click', () =>
    busy(witness, witnessOut, async () => {
      const keys = await api<{ log: string; witnesses: string[]; quorum: number }>('GET', at('cloud', '/ledger/keys'));
      const health = await fetch(at('cloud', '/ledger/health')).then(async (r) => ({ ok: r.ok, body: (await r.json()) as Record<string, unknown> }));
      const checkpoint = await fetch(at('cloud', '/ledger/checkpoint')).then((r) => r.text());
      const cosigned = checkpoint
        .split('\n')
        .filter((line) => line.startsWith('— '))
        .map((line) => line.split(' ')[1]);
      show(
        witnessOut,
        status(health.ok ? 'Ledger healthy.' : 'Ledger reports a fault.', health.ok ? 'ok' : 'error'),
        h(
          'p',
          {},
          `Checkpoint of ${checkpoint.split('\n')[1] ?? '?'} entries, signed by: ${cosigned.join(', ')}. Quorum ${keys.quorum} of ${keys.witnesses.length} witnesses.`,
        ),
        h('pre', {}, JSON.stringify(health.body, null, 2)),
      );
    }),
  );

  // Upload receipts and this hospital's witness.
  const receiptsOut = h('div', { 'aria-live': 'polite', id: 'receipts-output' });
  const receipts = h('button', { type: 'button', class: 'secondary' }, 'Show upload receipts') as HTMLButtonElement;
  receipts.addEventListener('click', () =>
    busy(receipts, receiptsOut, async () => {
      const listing = await call<ReceiptListing>('GET', '/receipts', undefined, '/gateway/admin');
      show(receiptsOut, witnessState(listing.witness), listing.trustProblem ? status(listing.trustProblem, 'error') : null, receiptTable(listing.receipts));
    }),
  );

  show(
    root,
    h(
      'section',
      { 'aria-labelledby': 'cred-title' },
      h('h2', { id: 'cred-title' }, `Administration of ${hospital}`),
      field('Administrator credential', token, 'Kept in this page only.'),
    ),
    h(
      'section',
      { 'aria-labelledby': 'onboard-title' },
      h('h2', { id: 'onboard-title' }, 'Onboard staff'),
      h('div', { class: 'grid' }, field('Username', username), field('Role', role)),
      h('div', { class: 'grid' }, field('Department', dept), field('Licence level', level)),
      onboard,
    ),
    h(
      'section',
      { 'aria-labelledby': 'accounts-title' },
      h('h2', { id: 'accounts-title' }, 'Accounts'),
      field('Username of the account', account),
      h('div', { class: 'actions' }, ...actions),
    ),
    out,
    h('section', { 'aria-labelledby': 'witness-title' }, h('h2', { id: 'witness-title' }, 'Ledger witnesses'), witness, witnessOut),
    h(
      'section',
      { 'aria-labelledby': 'receipts-title', id: 'receipts' },
      h('h2', { id: 'receipts-title' }, 'Upload receipts'),
      h(
        'p',
        {},
        'The ledger receipts of what this hospital uploaded, each checked again now against the ledger keys it pins, and the state of its own witness.',
      ),
      receipts,
      receiptsOut,
    ),
  );
}

interface WitnessState {
  name: string;
  lastCosignedSize: number;
  ledgerSize?: number;
  reachable: boolean;
  problem?: string;
}
interface ReceiptRow {
  index: number;
  patient: string;
  recorded?: string;
  records: Array<{ hash: string; category: string }>;
  checkpointSize?: number;
  status: string;
  problem?: string;
}
interface ReceiptListing {
  witness: WitnessState;
  receipts: ReceiptRow[];
  trustProblem?: string;
}

function witnessState(w: WitnessState): HTMLElement {
  return h(
    'div',
    { id: 'witness-state' },
    status(
      w.reachable
        ? `Witness ${w.name} is reachable: it cosigned the ledger's latest checkpoint.`
        : `Witness ${w.name} is not reached by the ledger${w.problem ? `: ${w.problem}` : '.'}`,
      w.reachable ? 'ok' : 'error',
    ),
    h(
      'dl',
      {},
      h('dt', {}, 'Last checkpoint it cosigned'),
      h('dd', {}, w.lastCosignedSize === 0 ? 'none yet' : `size ${w.lastCosignedSize}`),
      h('dt', {}, "The ledger's latest witnessed checkpoint"),
      h('dd', {}, w.ledgerSize === undefined ? 'unknown' : `size ${w.ledgerSize}`),
    ),
  );
}

function receiptTable(rows: ReceiptRow[]): HTMLElement {
  if (rows.length === 0) return h('p', {}, 'No uploads yet.');
  const categories = (r: ReceiptRow) => [...new Set(r.records.map((x) => x.category))].join(', ');
  return h(
    'table',
    { id: 'receipts-table' },
    h('caption', {}, `${rows.length} receipts, newest first`),
    h('thead', {}, h('tr', {}, ...['Entry', 'Patient', 'Records (ciphertext hashes)', 'Checkpoint size', 'Status'].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      {},
      ...rows.map((r) =>
        h(
          'tr',
          {},
          h('td', {}, String(r.index)),
          h('td', {}, h('code', {}, r.patient)),
          h(
            'td',
            {},
            h(
              'details',
              {},
              h('summary', {}, `${r.records.length} ${categories(r)}`),
              h('code', { class: 'hashes' }, r.records.map((x) => x.hash.slice(7, 23)).join(' ')),
            ),
          ),
          h('td', {}, r.checkpointSize === undefined ? '—' : String(r.checkpointSize)),
          h('td', { class: `receipt-${r.status}` }, r.status === 'verified' ? '✓ verified' : `${r.status}${r.problem ? `: ${r.problem}` : ''}`),
        ),
      ),
    ),
  );
}
