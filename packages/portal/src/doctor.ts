/**
 * The reader's screens (doctors, emergency staff). At sign-in the trusted authority seals her CP-ABE attribute key
 * to this page's X25519 device key; it is opened here (sealed-box.ts) and records converted by the cloud are
 * decrypted here (pre.createReader). A refusal — attributes that do not satisfy the patient's policy — is shown as
 * such. Searching by resource type, code, date and words runs the SDK's encrypted-index search here
 * (@medshare/server/search: the cloud sees only labels, the index key and records are opened in this browser).
 * Breaking the glass needs a stated reason, which the patient sees in her access log.
 */
import { abe, pre } from '@medshare/crypto';
import { Buffer } from 'buffer';
import { categoryOf, cloudSearchTransport, DEFAULT_CATEGORY_MAPPING, parseQuery, searchRecords, SubIndexCache } from '@medshare/server/search';
import { api, callerApi } from './api.ts';
import { clinicalView, type Resource } from './clinical.ts';
import { at } from './config.ts';
import { busy, field, h, show, status } from './dom.ts';
import { CATEGORIES } from './patient.ts';
import { deliveryContext, openBox, type SealedBox } from './sealed-box.ts';
import type { Session } from './session.ts';

const utf8 = new TextDecoder();
/** The resource types the search form offers (any FHIR type searches; these are the ones hospitals upload most). */
const SEARCH_TYPES = ['Observation', 'DiagnosticReport', 'Condition', 'MedicationRequest', 'Immunization', 'DocumentReference', 'Procedure', 'Encounter'];

/** Her CP-ABE key from the trusted authority, sealed to this page's device key and opened here. */
async function attributeKey(session: Session): Promise<abe.UserKey> {
  await abe.init();
  const attributes = session.attributes.filter((a) => !a.startsWith('uid:'));
  const url = at('authority', '/ta/keys');
  const issued = await api<{ authorityId: string; subject: string; tokenId: string; box: SealedBox }>('POST', url, {
    body: { attributes, deviceKey: session.device.sealingJwk },
    token: session.token,
    dpop: await session.device.proof('POST', url, { accessToken: session.token }),
  });
  const bytes = await openBox(
    session.device.sealingPrivateKey,
    session.device.sealingJwk,
    issued.box,
    deliveryContext(issued.authorityId, issued.subject, issued.tokenId),
  );
  return abe.decodeUserKey(bytes);
}

/** The reader's screens, in `root`. */
export async function doctorScreen(root: HTMLElement, session: Session): Promise<void> {
  const reader = pre.createReader(await attributeKey(session));
  const patient = h('input', {
    type: 'text',
    id: 'patient',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'psn:…',
    pattern: 'psn:[A-Za-z0-9_-]{16,86}',
    required: true,
  });
  const category = h('select', { id: 'category' }, ...CATEGORIES.map((c) => h('option', { value: c }, c)));
  const out = h('div', { 'aria-live': 'polite', id: 'reader-output' });
  const path = (suffix: string) => at('cloud', `/cloud/patients/${encodeURIComponent(patient.value.trim())}${suffix}`);
  const decrypt = (records: Array<{ ciphertext: string }>) =>
    records.map((r) => JSON.parse(utf8.decode(reader.decrypt(new Uint8Array(Buffer.from(r.ciphertext, 'base64'))))) as Resource);

  const read = h('button', { type: 'button' }, 'Read records') as HTMLButtonElement;
  read.addEventListener('click', () =>
    busy(read, out, async () => {
      const { records } = await callerApi<{ records: Array<{ ciphertext: string }> }>(session, 'POST', path('/read'), { body: { category: category.value } });
      const resources = decrypt(records);
      show(out, status(`${resources.length} ${category.value} records, decrypted in this browser with your attribute key.`, 'ok'), clinicalView(resources));
    }),
  );

  // Search: the query's keywords become index labels here; the cloud answers the labels without learning them.
  const type = h('select', { id: 'search-type' }, ...SEARCH_TYPES.map((t) => h('option', { value: t }, t)));
  const code = h('input', { type: 'text', id: 'search-code', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. 2093-3 or http://loinc.org|2093-3' });
  const when = h('input', { type: 'text', id: 'search-date', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. ge2020-01-01' });
  const words = h('input', { type: 'text', id: 'search-words', autocomplete: 'off', placeholder: 'e.g. chest pain' });
  const subIndexes = new SubIndexCache();
  const transport = cloudSearchTransport((path, body) => callerApi(session, 'POST', at('cloud', path), { body }));
  const search = h('button', { type: 'button' }, 'Search records') as HTMLButtonElement;
  search.addEventListener('click', () =>
    busy(search, out, async () => {
      const query = new URLSearchParams();
      for (const [name, input] of [
        ['code', code],
        ['date', when],
        ['_content', words],
      ] as const)
        if (input.value.trim() !== '') query.set(name, input.value.trim());
      if ([...query.keys()].length === 0) throw new Error('search by a code, a date or words');
      const resourceType = type.value;
      const inCategory = categoryOf(DEFAULT_CATEGORY_MAPPING, { resourceType, id: 'query' });
      const { resources } = await searchRecords(reader, transport, patient.value.trim(), inCategory, parseQuery(resourceType, query), subIndexes);
      show(
        out,
        status(
          `${resources.length} ${resourceType} records (${inCategory}) match ${[...query].map(([name, value]) => `${name}=${value}`).join(', ')}: found through the encrypted index and decrypted in this browser.`,
          'ok',
        ),
        clinicalView(resources),
      );
    }),
  );

  // Lookup by a business identifier at this hospital's gateway: the consortium's keyed hash of it goes to the cloud,
  // which answers the pseudonyms of patients who allow being found (each sees the lookup in her access log).
  const identifier = h('input', {
    type: 'text',
    id: 'identifier',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'system|value, e.g. http://hl7.org/fhir/sid/us-ssn|999-40-8244',
  });
  const lookupOut = h('div', { 'aria-live': 'polite', id: 'lookup-output' });
  const lookup = h('button', { type: 'button', class: 'secondary' }, 'Find patient') as HTMLButtonElement;
  lookup.addEventListener('click', () =>
    busy(lookup, lookupOut, async () => {
      const url = `${location.origin}/gateway/fhir/Patient?identifier=${encodeURIComponent(identifier.value.trim())}`;
      const bundle = await callerApi<{ entry?: Array<{ resource: { identifier?: Array<{ value?: string }> } }> }>(session, 'GET', url);
      const found = (bundle.entry ?? []).map((e) => e.resource.identifier?.[0]?.value).filter((v): v is string => typeof v === 'string');
      if (found.length === 0) return show(lookupOut, status('No patient who allows being found has this identifier.', 'info'));
      patient.value = found[0]!;
      show(lookupOut, status(`Found ${found.length === 1 ? found[0] : `${found.length} patients: ${found.join(', ')}`}; ${found[0]} is filled in.`, 'ok'));
    }),
  );

  const sections: HTMLElement[] = [
    h(
      'section',
      { 'aria-labelledby': 'lookup-title' },
      h('h2', { id: 'lookup-title' }, 'Look up a patient'),
      h('div', { class: 'grid' }, field('Patient identifier', identifier), h('div', {}, lookup)),
      lookupOut,
      h(
        'p',
        {},
        'You can read a category when the patient shared it with a policy your attributes satisfy: ',
        h('code', {}, session.attributes.filter((a) => !a.startsWith('uid:')).join(', ')),
      ),
      h('div', { class: 'grid' }, field('Patient pseudonym', patient), field('Category', category)),
      read,
    ),
    h(
      'section',
      { 'aria-labelledby': 'search-title', id: 'search' },
      h('h2', { id: 'search-title' }, 'Search her records'),
      h(
        'p',
        {},
        'By code, clinical date (with ge, le, gt, lt, eq) and words of the notes; the cloud matches encrypted labels and never sees what you searched for.',
      ),
      h('div', { class: 'grid' }, field('Resource type', type), field('Code', code)),
      h('div', { class: 'grid' }, field('Date', when), field('Words', words)),
      search,
    ),
  ];

  if (session.role === 'emergency') {
    const reason = h('textarea', { id: 'reason', rows: '2', maxlength: '500', required: true });
    const glass = h('button', { type: 'button', class: 'contrast' }, 'Break the glass') as HTMLButtonElement;
    glass.addEventListener('click', () =>
      busy(glass, out, async () => {
        if (reason.value.trim() === '') throw new Error('breaking the glass needs a stated reason');
        const { records } = await callerApi<{ records: Array<{ ciphertext: string }> }>(session, 'POST', path('/emergency-read'), {
          body: { category: category.value, reason: reason.value.trim() },
        });
        const resources = decrypt(records);
        show(
          out,
          h(
            'p',
            { class: 'status emergency', role: 'alert' },
            `Emergency access: ${resources.length} ${category.value} records. Recorded with your reason; the patient will see it.`,
          ),
          clinicalView(resources),
        );
      }),
    );
    sections.push(
      h(
        'section',
        { class: 'break-glass', 'aria-labelledby': 'glass-title' },
        h('h2', { id: 'glass-title' }, 'Emergency access (break the glass)'),
        h('p', {}, 'Only when the patient cannot consent. The access and your reason are written to the ledger and shown to the patient.'),
        field('Reason', reason),
        glass,
      ),
    );
  }
  show(root, ...sections, out);
}
