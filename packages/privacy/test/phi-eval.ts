import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findPhi, type Finding, type NameMatcher } from '../src/index.ts';

/** The labelled free-text set (see fixtures/make-phi-sentences.ts for how it was made). */
export const PHI_SENTENCES = fileURLToPath(new URL('./fixtures/phi-sentences.jsonl', import.meta.url));

export interface LabelledSentence {
  text: string;
  spans: { start: number; end: number; kind: string }[];
}

export interface PhiScores {
  /** Per labelled kind: spans, spans fully removed (by findings of any kind), and removed as that kind. */
  byKind: Record<string, { spans: number; removed: number; removedAsKind: number }>;
  /** Per finding kind: findings, and those that overlap a labelled span (precision). */
  findings: Record<string, { total: number; onPhi: number }>;
  recall: number;
  precision: number;
  /** Words outside every labelled span, and those no finding touches. */
  words: { total: number; kept: number };
}

export function readSentences(path = PHI_SENTENCES): LabelledSentence[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as LabelledSentence);
}

/** Scores findPhi on labelled sentences: span recall (a span counts when findings cover all of it), precision, and ordinary words kept. */
export function scorePhi(sentences: LabelledSentence[], names: readonly NameMatcher[]): PhiScores {
  const scores: PhiScores = { byKind: {}, findings: {}, recall: 0, precision: 0, words: { total: 0, kept: 0 } };
  for (const { text, spans } of sentences) {
    const found: Finding[] = findPhi(text, names);
    const covers = (start: number, end: number, kind?: string) => {
      let at = start;
      for (const f of found) if ((kind === undefined || f.kind === kind) && f.start <= at && f.end > at) at = Math.max(at, f.end);
      return at >= end;
    };
    for (const span of spans) {
      const entry = (scores.byKind[span.kind] ??= { spans: 0, removed: 0, removedAsKind: 0 });
      entry.spans++;
      if (covers(span.start, span.end)) entry.removed++;
      if (covers(span.start, span.end, span.kind)) entry.removedAsKind++;
    }
    for (const f of found) {
      const entry = (scores.findings[f.kind] ??= { total: 0, onPhi: 0 });
      entry.total++;
      if (spans.some((s) => f.start < s.end && s.start < f.end)) entry.onPhi++;
    }
    for (const word of text.matchAll(/[\p{L}]+/gu)) {
      const start = word.index;
      const end = start + word[0].length;
      if (spans.some((s) => start < s.end && s.start < end)) continue;
      scores.words.total++;
      if (!found.some((f) => start < f.end && f.start < end)) scores.words.kept++;
    }
  }
  const kinds = Object.values(scores.byKind);
  scores.recall = kinds.reduce((a, k) => a + k.removed, 0) / kinds.reduce((a, k) => a + k.spans, 0);
  const finding = Object.values(scores.findings);
  scores.precision = finding.reduce((a, k) => a + k.onPhi, 0) / Math.max(1, finding.reduce((a, k) => a + k.total, 0));
  return scores;
}
