/** @medshare/privacy: desensitization of FHIR records and anonymization of tables for research release. */
export { parseConfig, parseConfigText, METHODS, type DeidConfig, type Rule, type Parameters, type Method } from './deid/config.ts';
export { Deidentifier, patientId, type ResourceContext } from './deid/engine.ts';
export { profileConfig, PROFILES, type ProfileName, type ProfileKeys } from './deid/profiles.ts';
export { dateShiftOffset, shiftDate, partialDate, indicatesAgeOver89 } from './deid/dates.ts';
export { cryptoHash, cryptoHashReference, encryptValue, decryptValue, perturbNumber } from './deid/methods.ts';
export {
  scrubText,
  findPhi,
  nameMatcher,
  termMatcher,
  builtinNameMatcher,
  builtinNameMatchers,
  type Finding,
  type PhiKind,
  type NameMatcher,
  type NameDictionary,
  type TermMatcher,
} from './deid/free-text.ts';
export { pseudonym, ReidentificationTable } from './pseudonyms.ts';
export { parseCsv, formatCsv, tableFromFhir, columnIndex, type Table } from './anon/table.ts';
export { Hierarchy, type HierarchyNode } from './anon/hierarchy.ts';
export { encode, modelCheck, type QuasiIdentifier, type AnonymizationOptions, type EncodedTable, type EncodedSensitive } from './anon/encoding.ts';
export { mondrian, type MondrianOptions, type MondrianResult, type EquivalenceClass, type SiblingGroup } from './anon/mondrian.ts';
export { checkModel, isLDiverse, earthMoversDistance, HierarchicalDistance, type PrivacyModel, type LDiversity } from './anon/models.ts';
export { measure, originalClasses, type Metrics } from './anon/metrics.ts';
export { globalRecoding, intervalLevels, MAX_LATTICE, type GlobalOptions, type GlobalResult } from './anon/lattice.ts';
export { riskReport, fitPitman, pitmanLogLikelihood, logGamma, type RiskReport, type RiskModelFigures } from './anon/risk.ts';
export { researchTable, resourcesFromText, MAX_RESOURCES, type ResearchField, type ResearchTableOptions } from './anon/fhir-table.ts';
export {
  anonymizeWithReport,
  runMethod,
  utilityCurve,
  utilityPlotSvg,
  riskPlotSvg,
  type AnonymizationReport,
  type CurvePoint,
  type Method as AnonymizationMethod,
  type MethodReport,
  type MethodRun,
  type ReleaseOptions,
} from './anon/report.ts';
export { deidentifyFile, deidentifyPath, type DeidTarget } from './deid/files.ts';
