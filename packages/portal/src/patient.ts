/**
 * The patient's screens. Her key pair is made here (pre.generatePatientKey: mcl-wasm and the browser's CSPRNG), kept
 * in IndexedDB wrapped by a non-extractable key (keystore.ts), and used here only: her records are decrypted in
 * this page, re-encryption keys are computed in this page, and the cloud receives public keys, re-encryption keys
 * and her choices — never the secret (the browser test intercepts every request to check). She approves (and
 * withdraws) the hospitals that may enrol her and write into her record: the cloud's writer consent.
 */
import { abe, pre } from '@medshare/crypto';
import { parseVerifierKey, verifyInclusionBundle, type InclusionBundle } from '@medshare/ledger/proofs';
// The cloud's access-log entry as it answers it; a type only, so nothing of the server is bundled.
import type { AccessEntry } from '@medshare/server';
import { Buffer } from 'buffer';
import { api, ApiError, callerApi } from './api.ts';
import type { Resource } from './clinical.ts';
import { clinicalView } from './clinical.ts';
import { at } from './config.ts';
import { busy, field, h, show, status } from './dom.ts';
import { backupFile, restoreBackup } from './backup.ts';
import { loadSecret, storeSecret } from './keystore.ts';
import { policyBuilder } from './policy-builder.ts';
import type { Session } from './session.ts';

/** The record categories a hospital encrypts under (packages/server's gateway mapping). */
export const CATEGORIES = ['lab', 'imaging', 'notes', 'medication', 'clinical'];

interface Delegation {
  delegationId: string;
  category: string;
  policy: string;
  emergency: boolean;
  createdAt: string;
}

const toBase64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const fromBase64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64'));
const utf8 = new TextDecoder();

/** The TA's CP-ABE public key, fetched once. */
let abeKey: Promise<abe.PublicKey> | undefined;
export function abePublicKey(): Promise<abe.PublicKey> {
  abeKey ??= (async () => {
    await abe.init();
    const { publicKey } = await api<{ publicKey: string }>('GET', at('authority', '/ta/public-key'));
    return abe.decodePublicKey(fromBase64(publicKey));
  })();
  return abeKey;
}

/** The patient's screens, in `root`. */
export async function patientScreen(root: HTMLElement, session: Session): Promise<void> {
  await abe.init();
  const keyId = `${session.hospital}|${session.subject}`;
  const stored = await loadSecret(keyId);
  if (!stored) return keySetup(root, session, keyId);
  const key = pre.decodePatientKey(stored);
  return dashboard(root, session, keyId, key);
}

/** First visit on this device: make her keys, or restore them from her backup. */
function keySetup(root: HTMLElement, session: Session, keyId: string): void {
  const out = h('div', { 'aria-live': 'polite' });
  const create = h('button', { type: 'button' }, 'Create my keys') as HTMLButtonElement;
  create.addEventListener('click', () =>
    busy(create, out, async () => {
      const key = pre.generatePatientKey(`psn:${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url')}`, CATEGORIES);
      await callerApi(session, 'PUT', at('cloud', `/cloud/patients/${encodeURIComponent(key.patientId)}`), {
        body: { publicKeys: toBase64(pre.encodePublicKeys(key)) },
      });
      await storeSecret(keyId, key.patientId, pre.encodePatientKey(key));
      await dashboard(root, session, keyId, key);
    }),
  );
  const file = h('input', { type: 'file', accept: '.json,application/json' });
  const passphrase = h('input', { type: 'password', autocomplete: 'off' });
  const restore = h('button', { type: 'button', class: 'secondary' }, 'Restore from backup') as HTMLButtonElement;
  restore.addEventListener('click', () =>
    busy(restore, out, async () => {
      const chosen = file.files?.[0];
      if (!chosen) throw new Error('choose your backup file first');
      const secret = await restoreBackup(await chosen.text(), passphrase.value);
      const key = pre.decodePatientKey(secret);
      await storeSecret(keyId, key.patientId, secret);
      await dashboard(root, session, keyId, key);
    }),
  );
  show(
    root,
    h(
      'section',
      { 'aria-labelledby': 'keys-title' },
      h('h2', { id: 'keys-title' }, 'Your keys'),
      h(
        'p',
        {},
        'Your records are encrypted for you alone. Your key pair is made in this browser and stays on this device: the platform never receives your secret key.',
      ),
      create,
      h('h3', {}, 'Or restore your keys on this device'),
      field('Backup file', file),
      field('Backup passphrase', passphrase),
      restore,
      out,
    ),
  );
}

async function dashboard(root: HTMLElement, session: Session, keyId: string, initialKey: pre.PatientSecretKey): Promise<void> {
  let key = initialKey;
  const patientPath = (suffix = '') => at('cloud', `/cloud/patients/${encodeURIComponent(key.patientId)}${suffix}`);
  const call = <T>(method: string, suffix: string, body?: unknown) => callerApi<T>(session, method, patientPath(suffix), body === undefined ? {} : { body });

  // Keys: her pseudonym (what a hospital enrols her under), backup, rotation.
  const keysOut = h('div', { 'aria-live': 'polite' });
  const backupPass = h('input', { type: 'password', autocomplete: 'new-password', minlength: '12' });
  const backup = h('button', { type: 'button', class: 'secondary' }, 'Download encrypted backup') as HTMLButtonElement;
  backup.addEventListener('click', () =>
    busy(backup, keysOut, async () => {
      const text = await backupFile(key.patientId, pre.encodePatientKey(key), backupPass.value);
      const link = h(
        'a',
        { href: URL.createObjectURL(new Blob([text], { type: 'application/json' })), download: 'medshare-key-backup.json' },
        'Save the backup file',
      );
      show(keysOut, status('Backup encrypted in this browser. Keep the file and the passphrase apart.', 'ok'), link);
      link.click();
    }),
  );
  const rotateCategory = h('select', {}, ...CATEGORIES.map((c) => h('option', { value: c }, c)));
  const rotate = h('button', { type: 'button', class: 'secondary' }, 'Rotate key') as HTMLButtonElement;
  rotate.addEventListener('click', () =>
    busy(rotate, keysOut, async () => {
      const rotated = pre.rotate(key, rotateCategory.value);
      await call('PUT', '', { publicKeys: toBase64(pre.encodePublicKeys(rotated)) });
      await storeSecret(keyId, rotated.patientId, pre.encodePatientKey(rotated));
      key = rotated;
      show(
        keysOut,
        status(`New ${rotateCategory.value} key published. New records use it; delegate ${rotateCategory.value} again for them to be shared.`, 'ok'),
      );
    }),
  );
  const keys = h(
    'section',
    { id: 'keys', 'aria-labelledby': 'keys-title' },
    h('h2', { id: 'keys-title' }, 'Your keys'),
    h('p', {}, 'Your pseudonym (give it to a hospital to enrol you): ', h('code', { id: 'pseudonym' }, key.patientId)),
    h('div', { class: 'grid' }, field('Backup passphrase (12+ characters)', backupPass), h('div', {}, backup)),
    h('div', { class: 'grid' }, field('Category', rotateCategory), h('div', {}, rotate)),
    keysOut,
  );

  // Records, decrypted here.
  const recordsOut = h('div', { 'aria-live': 'polite' });
  const recordCategory = h('select', {}, ...CATEGORIES.map((c) => h('option', { value: c }, c)));
  const read = h('button', { type: 'button' }, 'Show my records') as HTMLButtonElement;
  read.addEventListener('click', () =>
    busy(read, recordsOut, async () => {
      const { records } = await call<{ records: Array<{ ciphertext: string }> }>('POST', '/own-records', { category: recordCategory.value });
      const resources = records.map((r) => JSON.parse(utf8.decode(pre.decrypt(key, fromBase64(r.ciphertext)))) as Resource);
      show(recordsOut, status(`${resources.length} records decrypted in this browser.`, 'ok'), clinicalView(resources));
    }),
  );
  const records = h(
    'section',
    { id: 'records', 'aria-labelledby': 'records-title' },
    h('h2', { id: 'records-title' }, 'Your records'),
    h('div', { class: 'grid' }, field('Category', recordCategory), h('div', {}, read)),
    recordsOut,
  );

  // Sharing: the policy builder, her delegations, revocation.
  const shareOut = h('div', { 'aria-live': 'polite' });
  const list = h('div', { id: 'delegation-list' });
  const refreshDelegations = async () => {
    const { delegations } = await call<{ delegations: Delegation[] }>('GET', '/delegations');
    show(
      list,
      delegations.length === 0
        ? h('p', {}, 'You share nothing yet.')
        : h(
            'table',
            {},
            h('caption', {}, 'Who may read what'),
            h('thead', {}, h('tr', {}, ...['Category', 'Policy', 'Kind', 'Since', ''].map((c) => h('th', { scope: 'col' }, c)))),
            h(
              'tbody',
              {},
              ...delegations.map((d) => {
                const revoke = h(
                  'button',
                  { type: 'button', class: 'secondary', 'aria-label': `Revoke ${d.category} for ${d.policy}` },
                  'Revoke',
                ) as HTMLButtonElement;
                revoke.addEventListener('click', () =>
                  busy(revoke, shareOut, async () => {
                    await call('DELETE', `/delegations/${d.delegationId}`);
                    show(shareOut, status(`Revoked: the cloud deleted the key for ${d.category}.`, 'ok'));
                    await refreshDelegations();
                  }),
                );
                return h(
                  'tr',
                  {},
                  h('td', {}, d.category),
                  h('td', {}, h('code', {}, d.policy)),
                  h('td', {}, d.emergency ? 'emergency' : 'routine'),
                  h('td', {}, d.createdAt.slice(0, 16).replace('T', ' ')),
                  h('td', {}, revoke),
                );
              }),
            ),
          ),
    );
  };
  const builder = policyBuilder();
  const shareCategory = h('select', {}, ...CATEGORIES.map((c) => h('option', { value: c }, c)));
  const emergency = h('input', { type: 'checkbox' });
  const share = h('button', { type: 'button' }, 'Share') as HTMLButtonElement;
  share.addEventListener('click', () =>
    busy(share, shareOut, async () => {
      const policy = builder.policy();
      const rk = pre.delegate(key, shareCategory.value, await abePublicKey(), policy);
      await call('POST', '/delegations', { reencryptionKey: toBase64(pre.encodeReEncryptionKey(rk)), emergency: emergency.checked });
      show(
        shareOut,
        status(
          `Shared ${shareCategory.value} with ${policy}${emergency.checked ? ' (emergency only)' : ''}. The re-encryption key was made in this browser.`,
          'ok',
        ),
      );
      await refreshDelegations();
    }),
  );
  const sharing = h(
    'section',
    { id: 'sharing', 'aria-labelledby': 'sharing-title' },
    h('h2', { id: 'sharing-title' }, 'Share a category'),
    field('Category to share', shareCategory),
    builder.element,
    h('label', {}, emergency, ' Only for emergency access (a reader must break the glass, with a reason)'),
    share,
    shareOut,
    list,
  );

  // Platform emergency consent.
  const consentOut = h('div', { 'aria-live': 'polite' });
  const consent = h('input', { type: 'checkbox', role: 'switch' });
  const consentText = h('span', {});
  const renderConsent = (s: { policy: string | null; allowed: boolean; grantedRecords: number }) => {
    consent.checked = s.allowed;
    consent.disabled = s.policy === null;
    consentText.textContent =
      s.policy === null
        ? 'This platform has no emergency policy.'
        : ` Allow emergency staff (${s.policy}) to read my records when I have not shared them (${s.grantedRecords} records covered).`;
  };
  consent.addEventListener(
    'change',
    () =>
      void (async () => {
        try {
          renderConsent(await call('PUT', '/platform-emergency', { allowed: consent.checked }));
          show(consentOut, status(consent.checked ? 'Emergency access allowed.' : 'Emergency access withdrawn: the grants were deleted.', 'ok'));
        } catch (error) {
          show(consentOut, status((error as Error).message, 'error'));
        }
      })(),
  );
  const emergencySection = h(
    'section',
    { id: 'emergency', 'aria-labelledby': 'emergency-title' },
    h('h2', { id: 'emergency-title' }, 'Emergency access'),
    h('label', {}, consent, consentText),
    consentOut,
  );

  // Lookup consent (opt-in): whether clinicians may find her pseudonym by the business identifiers hospitals uploaded.
  const findOut = h('div', { 'aria-live': 'polite' });
  const findButtons = ([true, false] as const).map((allowed) => {
    const button = h(
      'button',
      { type: 'button', class: allowed ? undefined : 'secondary' },
      allowed ? 'Allow being found' : 'Refuse being found',
    ) as HTMLButtonElement;
    button.addEventListener('click', () =>
      busy(button, findOut, async () => {
        await call('PUT', '/findable', { allowed });
        show(
          findOut,
          status(
            allowed
              ? 'Clinicians may now find you by the identifiers your hospitals hold; each lookup is in your access log.'
              : 'Clinicians can no longer find you by identifier.',
            'ok',
          ),
        );
      }),
    );
    return button;
  });
  const findSection = h(
    'section',
    { id: 'findable', 'aria-labelledby': 'findable-title' },
    h('h2', { id: 'findable-title' }, 'Being found by identifier'),
    h(
      'p',
      {},
      'A clinician at another hospital can find your pseudonym by a record number or other identifier a hospital holds for you, only if you allow it. The cloud keeps keyed hashes of identifiers, never the identifiers.',
    ),
    h('div', { class: 'actions' }, ...findButtons),
    findOut,
  );

  // Writer consent: the hospitals whose gateways may enrol her and write into her record (the cloud lists the one she
  // registered through from the start; she may withdraw it too).
  const writersOut = h('div', { 'aria-live': 'polite' });
  const writersList = h('ul', { id: 'writers-list' });
  const renderWriters = (writers: string[]) =>
    show(
      writersList,
      ...(writers.length === 0
        ? [h('li', {}, 'No hospital may write into your record.')]
        : writers.map((hospital) => {
            const remove = h('button', { type: 'button', class: 'secondary', 'aria-label': `Withdraw ${hospital}` }, 'Withdraw') as HTMLButtonElement;
            remove.addEventListener('click', () =>
              busy(remove, writersOut, async () => {
                renderWriters((await call<{ writers: string[] }>('DELETE', `/writers/${encodeURIComponent(hospital)}`)).writers);
                show(writersOut, status(`${hospital} may no longer write into your record.`, 'ok'));
              }),
            );
            return h('li', {}, `${hospital} `, remove);
          })),
    );
  const writerName = h('input', { type: 'text', autocomplete: 'off', id: 'writer-hospital', placeholder: 'e.g. riverside', pattern: '[a-z][a-z0-9-]{0,62}' });
  const allow = h('button', { type: 'button' }, 'Approve') as HTMLButtonElement;
  allow.addEventListener('click', () =>
    busy(allow, writersOut, async () => {
      const hospital = writerName.value.trim().toLowerCase();
      renderWriters((await call<{ writers: string[] }>('PUT', `/writers/${encodeURIComponent(hospital)}`)).writers);
      show(writersOut, status(`${hospital} may now enrol you and write into your record.`, 'ok'));
    }),
  );
  const writersSection = h(
    'section',
    { id: 'writers', 'aria-labelledby': 'writers-title' },
    h('h2', { id: 'writers-title' }, 'Hospitals that may write into my record'),
    h('p', {}, 'A hospital that asks to enrol you (by your pseudonym above) can do so only once you approve it here.'),
    field('Hospital asking to enrol me', writerName),
    allow,
    writersList,
    writersOut,
  );

  // Access log, each entry checked against the ledger in this browser.
  const logOut = h('div', { 'aria-live': 'polite' });
  const loadLog = h('button', { type: 'button' }, 'Check my access log') as HTMLButtonElement;
  loadLog.addEventListener('click', () => busy(loadLog, logOut, async () => show(logOut, await accessLog(key.patientId, session))));
  const log = h(
    'section',
    { id: 'access-log', 'aria-labelledby': 'log-title' },
    h('h2', { id: 'log-title' }, 'Who read my records'),
    h('p', {}, 'Every grant, revocation and read, each proven by the tamper-evident ledger that the hospitals co-sign.'),
    loadLog,
    logOut,
  );

  show(
    root,
    h(
      'nav',
      { 'aria-label': 'Sections' },
      h(
        'ul',
        {},
        ...[
          ['keys', 'Keys'],
          ['records', 'Records'],
          ['sharing', 'Sharing'],
          ['emergency', 'Emergency'],
          ['findable', 'Being found'],
          ['writers', 'Hospitals'],
          ['access-log', 'Access log'],
        ].map(([id, label]) => h('li', {}, h('a', { href: `#${id}` }, label!))),
      ),
    ),
    keys,
    records,
    sharing,
    emergencySection,
    findSection,
    writersSection,
    log,
  );
  await refreshDelegations();
  renderWriters((await call<{ writers: string[] }>('GET', '/writers')).writers);
  renderConsent(await call('GET', '/platform-emergency'));
}

/** The ledger keys she pins on first use (a later change is refused, not silently accepted). */
async function pinnedLedgerKeys(): Promise<{ log: string; witnesses: string[]; quorum: number }> {
  const served = await api<{ log: string; witnesses: string[]; quorum: number }>('GET', at('cloud', '/ledger/keys'));
  const pinned = localStorage.getItem('medshare-portal/ledger-keys');
  if (pinned === null) {
    localStorage.setItem('medshare-portal/ledger-keys', JSON.stringify(served));
    return served;
  }
  if (pinned !== JSON.stringify(served)) throw new Error('the ledger keys changed since this browser pinned them: the access log cannot be trusted');
  return served;
}

/** Her access log as a table, each entry's inclusion proof and cosignatures verified here. */
async function accessLog(patientId: string, session: Session): Promise<HTMLElement> {
  const { entries } = await callerApi<{ entries: AccessEntry[] }>(session, 'GET', at('cloud', `/cloud/patients/${encodeURIComponent(patientId)}/access-log`));
  const keys = await pinnedLedgerKeys();
  const trust = { log: parseVerifierKey(keys.log), witnesses: keys.witnesses.map(parseVerifierKey), quorum: keys.quorum };
  let verified = 0;
  const rows = [];
  for (const entry of entries) {
    let proof: string;
    if (entry.ledgerIndex === null) proof = 'not in the ledger';
    else {
      try {
        const bundle = await api<InclusionBundle>('GET', at('cloud', `/ledger/bundle/${entry.ledgerIndex}`));
        const checked = verifyInclusionBundle(bundle, trust);
        const about = checked.event.entity.find((e) => e.type.code === 'patient')?.what.identifier.value;
        if (checked.event.id !== String(entry.ledgerIndex) || about !== patientId) throw new Error('the ledger entry is about something else');
        proof = `✓ entry ${entry.ledgerIndex} of ${checked.treeSize}, cosigned by ${checked.cosigners.length}`;
        verified++;
      } catch (error) {
        proof = error instanceof ApiError ? `pending (${error.message})` : `✗ ${(error as Error).message}`;
      }
    }
    const emergencyRow = entry.action.startsWith('emergency');
    rows.push(
      h(
        'tr',
        { class: emergencyRow ? 'emergency' : undefined },
        h('td', {}, entry.at.slice(0, 19).replace('T', ' ')),
        h('td', {}, `${entry.role} at ${entry.hospital}`, h('br', {}), h('small', {}, entry.actor)),
        h('td', {}, emergencyRow ? h('strong', {}, entry.action) : entry.action),
        h('td', {}, entry.category),
        h('td', {}, entry.outcome === 'success' ? `${entry.outcome} (${entry.records})` : entry.outcome),
        h('td', {}, entry.reason ?? ''),
        h('td', { class: 'proof' }, proof),
      ),
    );
  }
  return h(
    'div',
    {},
    status(`${entries.length} entries; ${verified} proven against the ledger in this browser.`, 'ok'),
    // A scrolling region keyboard users can reach (WCAG 2.1.1; axe's scrollable-region-focusable): the actors'
    // session pseudonyms make the table wider than a phone's screen.
    h(
      'div',
      { class: 'overflow-auto', tabindex: '0', role: 'region', 'aria-label': 'Access log, scrollable' },
      h(
        'table',
        { id: 'access-log-table' },
        h('caption', {}, 'Access log'),
        h('thead', {}, h('tr', {}, ...['When', 'Who', 'What', 'Category', 'Outcome', 'Reason', 'Ledger proof'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, ...rows),
      ),
    ),
  );
}
