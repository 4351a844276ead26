/**
 * The reader's side of encrypted FHIR search with nothing Node-only in it, for a reader's browser (the portal bundles
 * it: `@medshare/server/search`) as much as for the SDK: parse a query, find its category, run it against the
 * cloud through any `post`, decrypt and check the records where the reader's key is.
 */
export { cloudSearchTransport, searchRecords, SubIndexCache, type CloudPost, type SearchStats } from './reader.ts';
export { parseQuery, SEARCH_PARAMETERS } from './keywords.ts';
export { categoryOf, DEFAULT_CATEGORY_MAPPING, type CategoryMapping, type FhirResource } from '../gateway/fhir.ts';
