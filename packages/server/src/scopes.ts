/**
 * SMART on FHIR scopes enforced at the cloud and the gateway (identity's account/smart-scopes.ts parses them): a
 * read or search of a patient's records of one category needs a scope allowing it on a resource type of that
 * category (the gateway's mapping), in the caller's context — `patient/` for the patient herself, `user/` or
 * `system/` for everyone else. A token without it is refused (403) even when a delegation would let its attributes
 * decrypt: the scope is what the user granted this client, the delegation what the patient granted the user.
 * A write needs a scope to create (`c`; v1 `write`) every resource it holds, or to delete (`d`) what it deletes, as
 * `user/` or `system/`.
 */
import { AccessDeniedError } from '@medshare/crypto';
import { grantsCategory, grantsResource } from '@medshare/identity';
import { categoryOf, type CategoryMapping, type FhirResource } from './gateway/fhir.ts';
import type { Caller } from './http.ts';

/**
 * The SMART scopes the demo, tests and benchmarks grant by role: a patient reads her own records (`patient/*.rs`),
 * a hospital's gateway system uploads (`system/*.write`, SMART v1 for `cud`), other staff read as users (`user/*.rs`).
 */
export function roleScopes(attributes: readonly string[]): string[] {
  if (attributes.includes('role:patient')) return ['patient/*.rs'];
  if (attributes.includes('role:gateway')) return ['system/*.write'];
  return ['user/*.rs'];
}

/**
 * Throws AccessDeniedError unless the caller's token has a scope for `interaction` (read or search) on `category`;
 * with no category (all of a patient's records), only a scope on every resource type (`*`, no criteria) will do.
 */
export function requireRecordScope(caller: Caller, category: string | undefined, interaction: 'r' | 's', mapping: CategoryMapping): void {
  const contexts = caller.role === 'patient' ? (['patient'] as const) : (['user', 'system'] as const);
  const inCategory = (type: string, wanted: string) => category !== undefined && (mapping.byType[type] ?? mapping.fallback) === wanted;
  if (!grantsCategory(caller.token.scopes, contexts, category ?? '', interaction, inCategory)) {
    const verb = interaction === 'r' ? 'read' : 'search';
    throw new AccessDeniedError(`the token has no SMART scope to ${verb} ${category ?? 'all'} records (${contexts.map((c) => `${c}/`).join(' or ')})`);
  }
}

/**
 * Throws AccessDeniedError (naming the first resource type refused) unless the caller's token has a `user/` or
 * `system/` scope for `interaction` (create by default, or delete) on each of `resources` (its type, or `*`;
 * `category=` criteria must name its category).
 */
export function requireWriteScope(caller: Caller, resources: readonly FhirResource[], mapping: CategoryMapping, interaction: 'c' | 'd' = 'c'): void {
  const contexts = ['user', 'system'] as const;
  for (const resource of resources) {
    if (!grantsResource(caller.token.scopes, contexts, resource.resourceType, categoryOf(mapping, resource), interaction)) {
      const verb = interaction === 'c' ? 'write' : 'delete';
      throw new AccessDeniedError(`the token has no SMART scope to ${verb} ${resource.resourceType} (user/ or system/ ….${interaction} or .write)`);
    }
  }
}
