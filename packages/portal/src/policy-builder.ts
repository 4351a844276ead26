/**
 * The policy builder: "any of" clauses, each "all of" a role, a department, a hospital and a minimum licence level,
 * written out as policy text in the crypto package's language (`(role:doctor and dept:cardiology) or role:emergency`)
 * and checked as she builds it by the same parser that encrypts (abe.compilePolicy). She may also edit the text;
 * what is delegated is exactly the text shown, once it is valid.
 */
import { abe } from '@medshare/crypto';
import { field, h } from './dom.ts';

const ROLES = ['', 'doctor', 'nurse', 'emergency', 'pharmacist', 'researcher'];

/** Quotes a value that is not a bare word. */
const value = (text: string) => (/^[a-z0-9_-]+$/i.test(text) ? text : `"${text.replace(/["\\]/g, '')}"`);

/** A builder element and the policy it currently holds. @throws from policy() when the text is not a valid policy. */
export function policyBuilder(): { element: HTMLElement; policy(): string } {
  const clauses = h('div', { class: 'clauses' });
  const text = h('textarea', { rows: '2', spellcheck: 'false', id: 'policy-text' });
  const verdict = h('p', { class: 'status', role: 'status', id: 'policy-verdict' });
  const rows: Array<() => string> = [];

  const check = () => {
    try {
      abe.compilePolicy(text.value);
      verdict.textContent = '✓ valid policy';
      verdict.className = 'status ok';
      text.setAttribute('aria-invalid', 'false');
    } catch (error) {
      verdict.textContent = `✗ ${(error as Error).message}`;
      verdict.className = 'status error';
      text.setAttribute('aria-invalid', 'true');
    }
  };
  const write = () => {
    const parts = rows.map((row) => row()).filter((p) => p !== '');
    text.value = parts.length === 1 ? parts[0]!.replace(/^\((.*)\)$/, '$1') : parts.join(' or ');
    check();
  };
  const addClause = () => {
    const n = rows.length + 1;
    const role = h('select', {}, ...ROLES.map((r) => h('option', { value: r }, r === '' ? 'any role' : r)));
    const dept = h('input', { type: 'text', placeholder: 'e.g. cardiology', autocomplete: 'off' });
    const hospital = h('input', { type: 'text', placeholder: 'any hospital', autocomplete: 'off' });
    const level = h('input', { type: 'number', min: '0', max: '10', placeholder: 'none' });
    rows.push(() => {
      const conditions = [
        role.value && `role:${value(role.value)}`,
        dept.value.trim() && `dept:${value(dept.value.trim().toLowerCase())}`,
        hospital.value.trim() && `hospital:${value(hospital.value.trim().toLowerCase())}`,
        level.value !== '' && `level >= ${Number(level.value)}`,
      ].filter((c): c is string => Boolean(c));
      return conditions.length > 1 ? `(${conditions.join(' and ')})` : (conditions[0] ?? '');
    });
    for (const control of [role, dept, hospital, level]) control.addEventListener('input', write);
    clauses.append(
      h(
        'fieldset',
        { class: 'clause' },
        h('legend', {}, n === 1 ? 'Readers who are' : 'or who are'),
        h(
          'div',
          { class: 'grid' },
          field(`Role (clause ${n})`, role),
          field(`Department (clause ${n})`, dept),
          field(`Hospital (clause ${n})`, hospital),
          field(`Minimum level (clause ${n})`, level),
        ),
      ),
    );
  };
  const more = h('button', { type: 'button', class: 'secondary' }, 'Add an “or” clause');
  more.addEventListener('click', () => {
    addClause();
    write();
  });
  text.addEventListener('input', check);
  addClause();
  write();
  return {
    element: h(
      'div',
      { class: 'policy-builder' },
      clauses,
      more,
      field('Policy text', text, 'Written by the builder; you may edit it. Checked by the same parser that encrypts.'),
      verdict,
    ),
    policy() {
      abe.compilePolicy(text.value);
      return text.value;
    },
  };
}
