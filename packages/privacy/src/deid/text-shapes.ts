/**
 * Detectors that go by the shape and context of words rather than by a list of identifiers, for
 * the names and places no dictionary has (most of the world's names, small towns, streets written
 * number-last): a capitalised word that is no English word (SCOWL sizes 10-70, all spellings), a
 * name cue ("my name is X", "named X"), a place cue ("in X", "from X"), a street name followed by
 * its number ("Koskikatu 25", "Rua Igreja 25", "Kálmán Imre u. 12."), and, after the other
 * detectors, the growth of a found name over its initials, suffixes and the neighbouring words
 * that are names too ("Zoe Young", "Graves and Reed"), and of a found address over the city,
 * region and postal-code lines that follow it. Built once, with the built-in dictionaries
 * (free-text.ts builtinNameMatchers); they run only in the `all` text scope.
 */
import type { Finding, PhiKind } from './free-text.ts';
import { forEachMatch, groupSpans, wholeSpans, type Span } from './matches.ts';

/** A detector's span finder (free-text.ts runs them in order, earlier findings win). */
export type SpanFinder = (text: string) => Span[];
/** What a detector cannot match without, tested first (most scrubbed strings are short codes): the text and its digit count. */
export type ShapeGuard = (text: string, digits: number) => boolean;
const UPPER = /\p{Lu}/u;
const hasUpper: ShapeGuard = (t) => UPPER.test(t);
const upperAndDigit: ShapeGuard = (t, d) => d > 0 && UPPER.test(t);
// Cheap tests that let most strings skip a detector's regular expression.
const LETTER_THEN_NUMBER = /\p{L}\.?[ \t]+\d/u;
const STREET_TYPE_FIRST =
  /\d[ \t]+(?:Rue|Avenue|Av\.|Boulevard|Bd|Chemin|Allée|Impasse|Via|Viale|Vicolo|Calle|Avenida|Rua|Travessa|Largo|Piazza|Corso|Strada)\b/;
const NAME_CUE_WORD = /ame[ :d]|all|igned|egards|incerely/;

// A capitalised word: O'Reilly, McDowell, Szöllösy, Jean-Luc; a trailing possessive 's is not part of it.
const WORD = String.raw`\p{Lu}(?:['’]\p{Lu})?[\p{Ll}\p{M}]+(?:\p{Lu}[\p{Ll}\p{M}]+)*(?:-\p{L}[\p{Ll}\p{M}]+)*`;
const CAPITALISED = new RegExp(`(?<![\\p{L}\\p{N}'’-])${WORD}(?![\\p{L}\\p{N}])`, 'gu');
// Words in capitals (LAPPEENRANTA, ΛΕΥΚΩΣΙΑ), three letters or more.
const CAPITALS = /(?<![\p{L}\p{N}])\p{Lu}{3,}(?:[-]\p{Lu}+)*(?![\p{L}\p{N}])/gu;
const MONTHS_AND_DAYS =
  /^(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|monday|tuesday|wednesday|thursday|friday|saturday|sunday)$/i;
// Titles before a name are not part of it (the title detector of free-text.ts keeps them).
const TITLES = /^(?:mr|mrs|ms|mx|miss|dr|prof|sr|sra|srta|st)$/;
// Words that say the next capitalised word is a person's name.
const NAME_CUE = new RegExp(
  `\\b(?:[Nn]ame is|[Nn]amed(?: him| her)?|[Cc]alled|[Cc]alls me|[Cc]all me|[Nn]ame:|[Ss]igned|[Rr]egards,|[Ss]incerely,)\\s+(${WORD})`,
  'gu',
);
// Words that say the next capitalised words (or words in capitals) are a place.
const PLACE = String.raw`(?:${WORD}|\p{Lu}{3,}(?:-\p{Lu}+)*)`;
const PLACE_CUE = new RegExp(
  `\\b(?:[Ii]n|[Ff]rom|[Tt]o|[Aa]t|[Nn]ear|[Cc]ity|[Tt]own|[Ww]here:)\\s+(${PLACE}(?:[ -](?:${PLACE}|de|del|la|le|do|da|sur|am|an|upon|on)(?![\\p{L}]))*)`,
  'gu',
);
// A street name then its number: words or particles, then a house number not followed by a unit of measure.
const STREET_WORD = String.raw`(?:${WORD}|\p{Lu}[\p{L}\p{M}]*\.?|(?:ul|u|al|pl|str|rkp|út|útja|utca|tér|kapu|terrasse|gate|gata|gatan|vej|gade|straße|strasse|katu|tie|tee|kuja|vegur|veien|vei|vegen|weg|laan|straat|plein|de|do|da|dos|das|del|della|dei|di|du|des|la|le|van|von|der|den|ten|y|e)\.?)`;
// A house number, then a street type that comes first in French, Italian, Spanish and Portuguese ("95 Avenue des Tuileries").
const NUMBER_THEN_TYPE = new RegExp(
  `(?<![\\p{L}\\p{N}])\\d{1,6}\\s+(?:Rue|Avenue|Av\\.|Boulevard|Bd|Chemin|Allée|Impasse|Via|Viale|Vicolo|Calle|Avenida|Rua|Travessa|Largo|Piazza|Corso|Strada)(?:[ \\t]+(?:${WORD}|\\p{Lu}{2,}|de|del|della|dei|di|du|des|la|le|da|do|dos|das|al|el)(?![\\p{L}])){1,5}`,
  'gu',
);
// Capitalised words before a street type, without a number ("on Marina Fort Street").
const NAMED_STREET = new RegExp(`(?<![\\p{L}\\p{N}])(?:${WORD}[ \\t]+){1,3}(?:Street|Road|Avenue|Boulevard|Lane|Drive|Terrace|Parkway|Highway)\\b`, 'gu');
// The second street of a corner ("the corner of Dalbraut 99 and Frederikke Coves").
const CORNER = new RegExp(`(?<=\\bcorner of\\s[^\\n.?!]{1,60}?\\s)and\\s+(${WORD}(?:\\s+\\p{L}[\\p{L}'’-]*\\.?)?)`, 'gu');
const STREET_THEN_NUMBER = new RegExp(
  `(?<![\\p{L}\\p{N}])(?:\\d{1,6}[ \\t]+)?(${STREET_WORD}(?:[ \\t]+${STREET_WORD}){0,4})[ \\t]+\\d{1,5}[A-Za-z]?\\b\\.?(?!\\s*(?:mg|mcg|µg|g|kg|ml|mL|l|L|%|mmHg|mmol|units?|iu|IU|cm|mm|m|km|hours?|hrs?|days?|weeks?|months?|years?|times|x|min|minutes|seconds|bpm|beats|breaths)\\b)`,
  'gu',
);
const STREET_KEYWORD =
  /^(?:ul|u|al|pl|str|rkp|út|utca|tér|rua|via|calle|avenida|avenue|rue|strasse|straße|street|road|gasse|gatan|gata|gade|vej|veien|vegen|vegur|katu|tie|kuja|tee|weg|laan|straat|plein|piazza|viale|vicolo|corso|largo|travessa|estrada|camino|paseo)$/i;
// A name's initials, generational suffixes and particles, right after it.
const NAME_TAIL = /^\s+(?:\p{Lu}\.?(?=\s+\p{Lu})|(?:II|III|IV|Jr\.?|Sr\.?)(?![\p{L}])|(?:ten|van|von|de|da|del|der|den|le|la|bin|ibn|al)(?=\s+\p{Lu}))/u;
// A capitalised word right after a name, or joined to it by "and", "&" or a comma; and one right before it.
const NEXT_WORD = new RegExp(`^(?:[ \\t]|,[ \\t]|[ \\t](?:and|&)[ \\t])(${WORD})`, 'u');
const LOWER_NEXT = /^(?:\s|\s\p{Ll}\.\s)(\p{Ll}{3,})(?![\p{L}\p{N}])/u;
const PREVIOUS_WORD = new RegExp(`(?<![\\p{L}\\p{N}'’-])(${WORD})(?:[ \\t]|,[ \\t]|[ \\t](?:and|&)[ \\t])$`, 'u');
// What may follow an address on its lines: a city or region (capitalised words or capitals), a region code, a postal code.
const ADDRESS_TAIL = new RegExp(
  `^(?:[ \\t]*(?:,|\\n|\\n>|\\n\\?\\?\\?)?[ \\t]*(?:,[ \\t]*)?)(?:(?:${PLACE})(?:[ -](?:${PLACE}|de|del|la|do|da|nad|sur|am|an))*(?:[ \\t]*\\([\\p{L} ]+\\))?|[A-Z]{2}(?![\\p{L}])|nan|\\d{3,6}(?:[ -]\\d{2,4})?(?:[ ][A-Z]{2}(?![\\p{L}]))?|[A-Z]\\d[A-Z] ?\\d[A-Z]\\d)(?![\\p{L}\\p{N}]|[ \\t]*:)`,
  'u',
);
const NUMBER_BEFORE = /\d{1,6}[ \t]+$/;
const LOWER_CASE_WORD = /(?<![\p{L}\p{N}])\p{Ll}{3,}(?![\p{L}\p{N}])/gu;

export interface ShapeWords {
  /** Common English words of every SCOWL size up to 70, lower case: a word that is one of them is not taken for a name by its shape. */
  ordinary: ReadonlySet<string>;
  /** The built-in name list, capitalised, common words included ("Lily", "Young"): for neighbours of a found name. */
  allNames: ReadonlySet<string>;
}

export class TextShapes {
  constructor(private readonly words: ShapeWords) {}

  private isOrdinary(word: string): boolean {
    const lower = word.toLowerCase();
    return this.words.ordinary.has(lower) || this.words.ordinary.has(lower.replace(/['’]s$/, '')) || MONTHS_AND_DAYS.test(lower) || TITLES.test(lower);
  }

  private isName(word: string): boolean {
    return this.words.allNames.has(word) || this.words.allNames.has(word[0]!.toUpperCase() + word.slice(1).toLowerCase());
  }

  /** The street detectors, which run before the dictionaries (so that "Joaquin Suarez 2906" is a street, not two names). */
  early(): [PhiKind, SpanFinder, ShapeGuard][] {
    return [
      ['ADDRESS', (text) => this.streets(text), (t, d) => upperAndDigit(t, d) && LETTER_THEN_NUMBER.test(t)],
      ['ADDRESS', (text) => wholeSpans(text, NUMBER_THEN_TYPE), (t, d) => d > 0 && STREET_TYPE_FIRST.test(t)],
      ['ADDRESS', (text) => wholeSpans(text, NAMED_STREET), (t) => /Street|Road|Avenue|Boulevard|Lane|Drive|Terrace|Parkway|Highway/.test(t)],
      ['ADDRESS', (text) => groupSpans(text, CORNER), (t) => /corner of/i.test(t)],
    ];
  }

  /** The detectors that run after the dictionaries and the labelled-identifier patterns. */
  detectors(): [PhiKind, SpanFinder, ShapeGuard][] {
    return [
      ['NAME', (text) => groupSpans(text, NAME_CUE), (t) => NAME_CUE_WORD.test(t) && UPPER.test(t)],
      ['ADDRESS', (text) => this.places(text), hasUpper],
      ['NAME', (text) => this.unknownWords(text), hasUpper],
      // Lower-case names are looked for in texts written all in lower case only (see lowerCaseNames).
      ['NAME', (text) => this.lowerCaseNames(text), (t) => !UPPER.test(t) && t.includes(' ')],
    ];
  }

  private streets(text: string): Span[] {
    const found: Span[] = [];
    forEachMatch(text, STREET_THEN_NUMBER, (m) => {
      const words = m[1]!.split(/\s+/);
      if (words.some((w) => STREET_KEYWORD.test(w.replace(/\.$/, '')) || (/^\p{Lu}/u.test(w) && w.length > 2 && !this.isOrdinary(w.replace(/\.$/, '')))))
        found.push([m.index, m.index + m[0].length]);
    });
    return found;
  }

  private places(text: string): Span[] {
    const found: Span[] = [];
    forEachMatch(text, PLACE_CUE, (m) => {
      const place = m[1]!;
      if (place.split(/[ -]/).some((w) => /^\p{Lu}/u.test(w) && !this.isOrdinary(w))) {
        const start = m.index + m[0].length - place.length;
        found.push([start, start + place.length]);
      }
    });
    return found;
  }

  /** Capitalised words that are no English word, and runs of two or more such words in capitals. */
  private unknownWords(text: string): Span[] {
    const found: Span[] = [];
    forEachMatch(text, CAPITALISED, (m) => {
      if (!this.isOrdinary(m[0])) found.push([m.index, m.index + m[0].length]);
    });
    let previous: Span | undefined;
    forEachMatch(text, CAPITALS, (m) => {
      if (this.isOrdinary(m[0])) return;
      const current: Span = [m.index, m.index + m[0].length];
      // Two neighbours in capitals make one finding; the second then starts no pair.
      if (previous && /^[ \t]+$/.test(text.slice(previous[1], current[0]))) {
        found.push([previous[0], current[1]]);
        previous = undefined;
      } else previous = current;
    });
    return found;
  }

  /**
   * Lower-case words that are in the name list and no English word, in a text written all in lower
   * case ("follow up with patricia desrosiers"). Elsewhere a lower-case word of the name list is
   * more often a drug's brand name ("errin", "camila" in the Synthea notes) than a person.
   */
  private lowerCaseNames(text: string): Span[] {
    const found: Span[] = [];
    forEachMatch(text, LOWER_CASE_WORD, (m) => {
      if (!this.isOrdinary(m[0]) && this.isName(m[0])) found.push([m.index, m.index + m[0].length]);
    });
    return found;
  }

  /**
   * Grows the findings: a name over its initials, suffixes and neighbouring names (a capitalised
   * word of the name list next to it, or joined to it by "and" or a comma), an address over the
   * house number before it and the city, region and postal-code lines after it.
   */
  extend(text: string, findings: Finding[]): Finding[] {
    const out = [...findings].sort((a, b) => a.start - b.start);
    const free = (start: number, end: number, self: Finding) => !out.some((f) => f !== self && start < f.end && f.start < end);
    for (let i = 0; i < out.length; i++) {
      const f = out[i]!;
      if (f.kind === 'NAME') {
        for (let tail = NAME_TAIL.exec(text.slice(f.end)); tail && free(f.end, f.end + tail[0].length, f); tail = NAME_TAIL.exec(text.slice(f.end)))
          f.end += tail[0].length;
        // The capitalised word after a name is its surname or another name ("Zoe Young", "Graves and Reed"), whatever it
        // means in English (the name list has no surnames); after a lower-case name, a lower-case word that is no English word.
        const next = (/^\p{Ll}/u.test(text.slice(f.start, f.end)) ? LOWER_NEXT : NEXT_WORD).exec(text.slice(f.end));
        if (next && !MONTHS_AND_DAYS.test(next[1]!) && !TITLES.test(next[1]!.toLowerCase()) && (!/^\p{Ll}/u.test(next[1]!) || !this.isOrdinary(next[1]!))) {
          const start = f.end + next[0].length - next[1]!.length;
          if (free(start, start + next[1]!.length, f)) {
            if (/^(?:\s|\s\p{Ll}\.\s)$/u.test(next[0].slice(0, next[0].length - next[1]!.length))) f.end = start + next[1]!.length;
            else out.splice(i + 1, 0, { kind: 'NAME', start, end: start + next[1]!.length });
            i--;
            continue;
          }
        }
        const before = PREVIOUS_WORD.exec(text.slice(Math.max(0, f.start - 60), f.start));
        const from = Math.max(0, f.start - 60) + (before?.index ?? 0);
        // Not a sentence's first word: "Patient Antonia Ruelas", "Wife Maria" (both in the name list).
        const sentenceStart = /(?:^|[.!?:;\n]\s*)$/.test(text.slice(0, from));
        if (before && !sentenceStart && this.isName(before[1]!) && free(from, from + before[1]!.length, f)) {
          out.splice(i, 0, { kind: 'NAME', start: from, end: from + before[1]!.length });
          i++;
        }
      } else if (f.kind === 'ADDRESS') {
        const number = NUMBER_BEFORE.exec(text.slice(0, f.start));
        if (number && free(number.index, f.start, f)) f.start = number.index;
        for (let tail = ADDRESS_TAIL.exec(text.slice(f.end)); tail && tail[0].trim() !== ''; tail = ADDRESS_TAIL.exec(text.slice(f.end))) {
          const end = f.end + tail[0].length;
          // A later finding inside the tail (a city found by the gazetteer) joins the address.
          for (let j = out.length - 1; j > i; j--) if (out[j]!.start < end && out[j]!.end <= end) out.splice(j, 1);
          if (!free(f.end, end, f)) break;
          f.end = end;
        }
      }
    }
    return out.sort((a, b) => a.start - b.start);
  }
}
