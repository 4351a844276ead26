/**
 * Clinical views of decrypted FHIR R4 resources: observations as a table with values, units and reference
 * ranges; medications; conditions; notes as text. Built with DOM nodes (dom.ts), never as HTML, so record text
 * cannot inject markup into the page.
 */
import { h } from './dom.ts';

/** A FHIR resource as far as the views read it. */
export interface Resource {
  resourceType: string;
  id?: string;
  [field: string]: unknown;
}

type Coding = { display?: string; code?: string };
type Concept = { text?: string; coding?: Coding[] } | undefined;
type Quantity = { value?: number; unit?: string; code?: string } | undefined;

const concept = (c: Concept) => c?.text ?? c?.coding?.find((x) => x.display)?.display ?? c?.coding?.[0]?.code ?? '—';
const date = (value: unknown) => (typeof value === 'string' ? value.slice(0, 10) : '—');
const quantity = (q: Quantity) => (q?.value === undefined ? '' : `${q.value}`);

function range(r: unknown): string {
  const first = (r as Array<{ low?: Quantity; high?: Quantity; text?: string }> | undefined)?.[0];
  if (!first) return '—';
  if (first.text) return first.text;
  const low = first.low?.value;
  const high = first.high?.value;
  if (low !== undefined && high !== undefined) return `${low}–${high}`;
  if (low !== undefined) return `≥ ${low}`;
  if (high !== undefined) return `≤ ${high}`;
  return '—';
}

function outside(o: Resource): boolean {
  const value = (o.valueQuantity as Quantity)?.value;
  const first = (o.referenceRange as Array<{ low?: Quantity; high?: Quantity }> | undefined)?.[0];
  if (value === undefined || !first) return false;
  return (first.low?.value !== undefined && value < first.low.value) || (first.high?.value !== undefined && value > first.high.value);
}

function observations(list: Resource[]): HTMLElement {
  const rows = list
    .sort((a, b) => String(b.effectiveDateTime ?? '').localeCompare(String(a.effectiveDateTime ?? '')))
    .map((o) => {
      const value = o.valueQuantity as Quantity;
      const text = value ? quantity(value) : concept(o.valueCodeableConcept as Concept);
      const flagged = outside(o);
      return h(
        'tr',
        {},
        h('td', {}, concept(o.code as Concept)),
        h('td', { class: flagged ? 'flag' : undefined }, text, flagged ? ' (outside range)' : ''),
        h('td', {}, value?.unit ?? value?.code ?? ''),
        h('td', {}, range(o.referenceRange)),
        h('td', {}, date(o.effectiveDateTime ?? o.issued)),
      );
    });
  return h(
    'table',
    { class: 'clinical observations' },
    h('caption', {}, `Observations (${list.length})`),
    h('thead', {}, h('tr', {}, ...['Test', 'Value', 'Unit', 'Reference range', 'Date'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ...rows),
  );
}

function medications(list: Resource[]): HTMLElement {
  return h(
    'table',
    { class: 'clinical medications' },
    h('caption', {}, `Medications (${list.length})`),
    h('thead', {}, h('tr', {}, ...['Medication', 'Status', 'Since', 'Dosage'].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      {},
      ...list.map((m) =>
        h(
          'tr',
          {},
          h('td', {}, concept((m.medicationCodeableConcept ?? m.vaccineCode ?? m.code) as Concept)),
          h('td', {}, String(m.status ?? '—')),
          h('td', {}, date(m.authoredOn ?? m.effectiveDateTime ?? m.occurrenceDateTime)),
          h('td', {}, String((m.dosageInstruction as Array<{ text?: string }> | undefined)?.[0]?.text ?? '—')),
        ),
      ),
    ),
  );
}

function noteText(n: Resource): string {
  const attachments = [
    ...((n.content as Array<{ attachment?: { data?: string } }> | undefined) ?? []).map((c) => c.attachment),
    ...((n.presentedForm as Array<{ data?: string }> | undefined) ?? []),
  ];
  const data = attachments.find((a) => a?.data)?.data;
  if (data) {
    try {
      return new TextDecoder().decode(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
    } catch {
      return '(attachment could not be decoded)';
    }
  }
  return String((n.text as { div?: string } | undefined)?.div?.replace(/<[^>]*>/g, ' ') ?? n.description ?? concept(n.type as Concept));
}

function notes(list: Resource[]): HTMLElement {
  return h(
    'section',
    { class: 'clinical notes', 'aria-label': 'Notes' },
    h('h4', {}, `Notes and reports (${list.length})`),
    ...list.map((n) =>
      h(
        'article',
        {},
        h('h5', {}, `${concept((n.type ?? n.code) as Concept)} — ${date(n.date ?? n.effectiveDateTime ?? n.issued)}`),
        h('p', { class: 'note' }, noteText(n)),
      ),
    ),
  );
}

function others(list: Resource[]): HTMLElement {
  return h(
    'table',
    { class: 'clinical other' },
    h('caption', {}, `Other records (${list.length})`),
    h('thead', {}, h('tr', {}, ...['Type', 'What', 'Date'].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      {},
      ...list.map((r) =>
        h(
          'tr',
          {},
          h('td', {}, r.resourceType),
          h('td', {}, concept((r.code ?? r.type ?? r.vaccineCode) as Concept)),
          h('td', {}, date(r.onsetDateTime ?? r.performedDateTime ?? r.date ?? (r.period as { start?: string } | undefined)?.start)),
        ),
      ),
    ),
  );
}

const MEDICATION = new Set(['MedicationRequest', 'MedicationAdministration', 'MedicationStatement', 'Medication', 'Immunization']);
const NOTES = new Set(['DocumentReference', 'Composition', 'DiagnosticReport']);

/** The clinical views of `resources`, grouped by kind. */
export function clinicalView(resources: Resource[]): HTMLElement {
  const obs = resources.filter((r) => r.resourceType === 'Observation');
  const meds = resources.filter((r) => MEDICATION.has(r.resourceType));
  const text = resources.filter((r) => NOTES.has(r.resourceType));
  const rest = resources.filter((r) => r.resourceType !== 'Observation' && !MEDICATION.has(r.resourceType) && !NOTES.has(r.resourceType));
  return h(
    'div',
    { class: 'records' },
    obs.length ? observations(obs) : null,
    meds.length ? medications(meds) : null,
    text.length ? notes(text) : null,
    rest.length ? others(rest) : null,
    resources.length === 0 ? h('p', {}, 'No records in this category.') : null,
  );
}
