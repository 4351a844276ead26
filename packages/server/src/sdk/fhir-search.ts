/**
 * How the reader's FHIR view (fhir-view.ts) splits a search's query string: parameters answered from the encrypted
 * index at the cloud (`code`, `date`, `status`, `_content`, `_text`: search/keywords.ts, via DoctorClient.searchFhir)
 * and parameters that filter the decrypted resources on this device (`_id`, `patient`, or the view's own list).
 * Both kinds combine with AND; comma-separated values of one parameter are OR'ed.
 */
import { FhirHttpError } from '../gateway/fhir-rest.ts';
import { parseQuery, SEARCH_PARAMETERS } from '../search/keywords.ts';
import type { SearchParameter } from './fhir-view.ts';

/** Result parameters the view accepts and ignores (it returns every match in one page). */
const CONTROL_PARAMETERS = new Set(['_format', '_count', '_pretty', '_summary', '_total']);
const INDEX_PARAMETERS = new Set<string>(SEARCH_PARAMETERS);

/** A view search: what goes to the encrypted index (undefined: none) and the filters run on decrypted resources. */
export interface ViewSearch {
  readonly index: URLSearchParams | undefined;
  readonly local: ReadonlyArray<readonly [SearchParameter, readonly string[]]>;
}

/** The documentation of the index-backed parameters, for the CapabilityStatement. */
export const INDEX_SEARCH_PARAMETERS: ReadonlyArray<Pick<SearchParameter, 'name' | 'type' | 'documentation'>> = [
  { name: 'code', type: 'token', documentation: 'system|code or code, from the encrypted index' },
  {
    name: 'date',
    type: 'date',
    documentation: 'clinical date with eq/ge/le/gt/lt/sa/eb, from the encrypted index (bucket decomposition, exact check after decryption)',
  },
  { name: 'status', type: 'token', documentation: 'status, from the encrypted index' },
  { name: '_content', type: 'string', documentation: 'words of the notes, from the encrypted index' },
  { name: '_text', type: 'string', documentation: 'words of the notes, from the encrypted index' },
];

/**
 * Splits the query string of a search on `resourceType` and checks the index part parses (so a bad value is a 400
 * before any request to the cloud). @throws FhirHttpError 400 for an unknown parameter; MalformedInputError or
 * LimitExceededError (400 through the view's error mapper) for a malformed or oversized value.
 */
export function parseViewSearch(resourceType: string, query: Record<string, string | string[]>, local: ReadonlyMap<string, SearchParameter>): ViewSearch {
  const index = new URLSearchParams();
  const filters: Array<readonly [SearchParameter, string[]]> = [];
  for (const [name, raw] of Object.entries(query)) {
    if (CONTROL_PARAMETERS.has(name)) continue;
    const values = Array.isArray(raw) ? raw : [raw];
    if (INDEX_PARAMETERS.has(name)) {
      for (const value of values) index.append(name, value);
      continue;
    }
    const parameter = local.get(name);
    if (parameter === undefined)
      throw new FhirHttpError(400, `unknown search parameter '${name}' (supported: ${[...local.keys(), ...INDEX_PARAMETERS].join(', ')})`);
    for (const value of values) filters.push([parameter, value.split(',')]);
  }
  if ([...index.keys()].length === 0) return { index: undefined, local: filters };
  parseQuery(resourceType, index);
  return { index, local: filters };
}
