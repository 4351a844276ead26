/**
 * Tokens of the policy and attribute-list languages. Words are maximal runs of `[A-Za-z0-9_.@/+-]`;
 * the parser decides from context whether a word is a name, a value, a number or a keyword.
 */
import { PolicySyntaxError } from '../errors.ts';

export type TokenKind = 'word' | 'string' | '(' | ')' | ',' | ':' | 'op' | 'end';

export interface Token {
  kind: TokenKind;
  text: string;
  position: number;
}

/** One character of a word token. */
export const WORD_CHAR = /[A-Za-z0-9_.@/+-]/;

/** Splits `input` into tokens; an unterminated string or a stray character is a PolicySyntaxError. */
export function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if ('(),:'.includes(c)) {
      tokens.push({ kind: c as TokenKind, text: c, position: i });
      i++;
    } else if ('<>='.includes(c)) {
      const two = input.slice(i, i + 2);
      const text = two === '<=' || two === '>=' || two === '==' ? two : c;
      tokens.push({ kind: 'op', text: text === '=' ? '==' : text, position: i });
      i += text.length;
    } else if (c === '"') {
      const start = i;
      let value = '';
      i++;
      for (;;) {
        if (i >= input.length) throw new PolicySyntaxError('unterminated quoted string', start);
        const d = input[i]!;
        if (d === '"') break;
        if (d === '\\') {
          const next = input[i + 1];
          if (next !== '"' && next !== '\\') throw new PolicySyntaxError('invalid escape (only \\" and \\\\)', i);
          value += next;
          i += 2;
        } else {
          value += d;
          i++;
        }
      }
      tokens.push({ kind: 'string', text: value, position: start });
      i++;
    } else if (WORD_CHAR.test(c)) {
      const start = i;
      while (i < input.length && WORD_CHAR.test(input[i]!)) i++;
      tokens.push({ kind: 'word', text: input.slice(start, i), position: start });
    } else {
      throw new PolicySyntaxError(`unexpected character '${c}'`, i);
    }
  }
  tokens.push({ kind: 'end', text: '', position: input.length });
  return tokens;
}
