/**
 * SMART on FHIR scopes enforced at the cloud and the gateway (identity's account/smart-scopes.ts parses them): a
 * read or search of a patient's records of one category needs a scope allowing it on a resource type of that
 * category (the gateway's mapping), in the caller's context — `patient/` for the patient herself, `user/` or
 * `system/` for everyone else. A token without it is refused (403) even when a delegation would let its attributes
 * decrypt: the scope is what the user granted this client, the delegation what the patient granted the user.
 */
import { AccessDeniedError } from '@medshare/crypto';
import { grantsCategory } from '@medshare/identity';
import type { CategoryMapping } from './gateway/fhir.ts';
import type { Caller } from './http.ts';

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
