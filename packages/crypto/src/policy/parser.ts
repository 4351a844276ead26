/**
 * Recursive-descent parser for policies and key attribute lists.
 *
 *   policy     := or END
 *   or         := and ('or' and)*
 *   and        := unary ('and' unary)*
 *   unary      := '(' or ')' | INT 'of' '(' or (',' or)* ')' | NAME ':' VALUE | NAME OP INT
 *   OP         := '<' | '<=' | '>' | '>=' | '=' | '=='
 *   VALUE      := word | "quoted string"
 *
 *   attributes := item (',' item)* END          item := NAME ':' VALUE | NAME '=' INT
 *
 * Keywords are case-insensitive. Names and values are Unicode NFC-normalised, so visually identical
 * text always means the same attribute. Errors name the position and what was expected.
 */
import { LimitExceededError, PolicySyntaxError } from '../errors.ts';
import { MAX_INTEGER, NAME, type ComparisonOperator, type GateNode, type PolicyNode, type StringAttribute } from './ast.ts';
import { tokenize, type Token } from './lexer.ts';
import { DEFAULT_MAX_OCCURRENCES } from './occurrence.ts';

/** Bounds that keep hostile policies from costing unbounded time or memory. */
export interface PolicyLimits {
  /** Characters of policy text. */
  maxLength: number;
  /** Nesting depth of parentheses and gates. */
  maxDepth: number;
  /** Children of one gate. */
  maxChildren: number;
  /** Leaves after numeric comparisons are expanded into bits (= rows of the span program). */
  maxLeaves: number;
  /**
   * Rows naming one attribute (after comparisons are expanded): the one-use transformation's bound K
   * (`occurrence.ts`). Keys carry that many copies of each attribute, so it must not exceed the keys' bound.
   */
  maxOccurrences: number;
}

export const DEFAULT_POLICY_LIMITS: PolicyLimits = {
  maxLength: 16_384,
  maxDepth: 32,
  maxChildren: 256,
  maxLeaves: 1024,
  maxOccurrences: DEFAULT_MAX_OCCURRENCES,
};

/** An attribute as a key holder states it: a string attribute or an integer one (`level=3`). */
export type KeyAttribute = StringAttribute | { kind: 'integer'; name: string; value: number };

class Parser {
  private index = 0;
  private depth = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly limits: PolicyLimits,
  ) {}

  private get current(): Token {
    return this.tokens[this.index]!;
  }

  private fail(expected: string): never {
    const t = this.current;
    const found = t.kind === 'end' ? 'end of input' : `'${t.text}'`;
    throw new PolicySyntaxError(`expected ${expected}, found ${found}`, t.position);
  }

  /** Whether the current token is of `kind` (a method, so TypeScript does not narrow across advances). */
  private at(kind: Token['kind']): boolean {
    return this.current.kind === kind;
  }

  private isKeyword(word: string): boolean {
    return this.current.kind === 'word' && this.current.text.toLowerCase() === word;
  }

  private expect(kind: Token['kind'], expected: string): Token {
    if (this.current.kind !== kind) this.fail(expected);
    return this.tokens[this.index++]!;
  }

  private enter(): void {
    if (++this.depth > this.limits.maxDepth) {
      throw new LimitExceededError(`policy nesting deeper than ${this.limits.maxDepth} at position ${this.current.position}`);
    }
  }

  parsePolicy(): PolicyNode {
    const node = this.or();
    this.expect('end', "'and', 'or' or end of policy");
    return node;
  }

  private or(): PolicyNode {
    return this.chain(
      'or',
      () => this.and(),
      () => 1,
    );
  }

  private and(): PolicyNode {
    return this.chain(
      'and',
      () => this.unary(),
      (n) => n,
    );
  }

  /** Parses `item (keyword item)*` into one flat gate; `threshold(n)` gives the gate's threshold. */
  private chain(keyword: string, item: () => PolicyNode, threshold: (n: number) => number): PolicyNode {
    const children = [item()];
    while (this.isKeyword(keyword)) {
      this.index++;
      children.push(item());
      if (children.length > this.limits.maxChildren) throw new LimitExceededError(`more than ${this.limits.maxChildren} operands of '${keyword}'`);
    }
    return children.length === 1 ? children[0]! : gate(threshold(children.length), children);
  }

  private unary(): PolicyNode {
    const t = this.current;
    if (t.kind === '(') {
      this.enter();
      this.index++;
      const inner = this.or();
      this.expect(')', "')'");
      this.depth--;
      return inner;
    }
    if (t.kind === 'word' && /^\d+$/.test(t.text) && this.tokens[this.index + 1]?.text.toLowerCase() === 'of') {
      return this.threshold();
    }
    if (t.kind !== 'word' || this.isKeyword('and') || this.isKeyword('or')) this.fail("an attribute, a comparison, a threshold or '('");
    const name = this.name();
    if (this.current.kind === ':') {
      this.index++;
      return { kind: 'leaf', attribute: { kind: 'string', name, value: this.value() } };
    }
    if (this.current.kind === 'op') {
      const op = this.tokens[this.index++]!.text as ComparisonOperator;
      return { kind: 'compare', name, op, value: this.integer() };
    }
    return this.fail(`':' or a comparison operator after attribute name '${name}'`);
  }

  private threshold(): PolicyNode {
    const start = this.current.position;
    const k = Number(this.tokens[this.index]!.text);
    this.index += 2; // INT 'of'
    this.enter();
    this.expect('(', "'(' after 'of'");
    const children = [this.or()];
    while (this.at(',')) {
      this.index++;
      children.push(this.or());
      if (children.length > this.limits.maxChildren) throw new LimitExceededError(`more than ${this.limits.maxChildren} operands in a threshold gate`);
    }
    this.expect(')', "',' or ')'");
    this.depth--;
    if (!Number.isSafeInteger(k) || k < 1 || k > children.length) {
      throw new PolicySyntaxError(`threshold ${k} must be between 1 and the number of operands (${children.length})`, start);
    }
    return children.length === 1 ? children[0]! : gate(k, children);
  }

  name(): string {
    const t = this.current;
    if (t.kind !== 'word' || !NAME.test(t.text)) this.fail('an attribute name (a letter or _, then letters, digits, _ . -)');
    this.index++;
    return t.text.normalize('NFC');
  }

  value(): string {
    const t = this.current;
    if (t.kind !== 'word' && t.kind !== 'string') this.fail('an attribute value');
    if (t.kind === 'string' && t.text.length === 0) this.fail('a non-empty attribute value');
    this.index++;
    return t.text.normalize('NFC');
  }

  integer(): number {
    const t = this.current;
    if (t.kind !== 'word' || !/^\d+$/.test(t.text)) this.fail('a non-negative integer');
    const value = Number(t.text);
    if (!Number.isSafeInteger(value) || value > MAX_INTEGER) {
      throw new PolicySyntaxError(`integer ${t.text} is out of range (0 to ${MAX_INTEGER})`, t.position);
    }
    this.index++;
    return value;
  }

  parseAttributes(): KeyAttribute[] {
    const out: KeyAttribute[] = [];
    do {
      if (out.length > 0) this.index++; // ','
      const name = this.name();
      if (this.current.kind === ':') {
        this.index++;
        out.push({ kind: 'string', name, value: this.value() });
      } else if (this.current.kind === 'op' && this.current.text === '==') {
        this.index++;
        out.push({ kind: 'integer', name, value: this.integer() });
      } else {
        this.fail(`':' or '=' after attribute name '${name}'`);
      }
    } while (this.at(','));
    this.expect('end', "',' or end of attribute list");
    return out;
  }
}

function gate(threshold: number, children: PolicyNode[]): GateNode {
  // `a and (b and c)` is one 3-of-3 gate; the same for `or`. Other thresholds are not flattened.
  const isAnd = threshold === children.length;
  const isOr = threshold === 1;
  const flat = children.flatMap((child) => {
    const childIsAnd = child.kind === 'gate' && child.threshold === child.children.length;
    const childIsOr = child.kind === 'gate' && child.threshold === 1;
    return child.kind === 'gate' && ((isAnd && childIsAnd) || (isOr && childIsOr)) ? child.children : [child];
  });
  return { kind: 'gate', threshold: isAnd ? flat.length : threshold, children: flat };
}

function checkLength(text: string, limits: PolicyLimits, what: string): void {
  if (text.length > limits.maxLength) throw new LimitExceededError(`${what} longer than ${limits.maxLength} characters`);
}

/** Parses a policy such as `(role:doctor and dept:cardiology) or role:emergency`. */
export function parsePolicy(text: string, limits: PolicyLimits = DEFAULT_POLICY_LIMITS): PolicyNode {
  checkLength(text, limits, 'policy');
  return new Parser(tokenize(text), limits).parsePolicy();
}

/** Parses a key's attribute list such as `role:doctor, dept:cardiology, level=3`. Duplicates are rejected. */
export function parseAttributes(text: string, limits: PolicyLimits = DEFAULT_POLICY_LIMITS): KeyAttribute[] {
  checkLength(text, limits, 'attribute list');
  const tokens = tokenize(text);
  if (tokens.length === 1) throw new PolicySyntaxError('expected at least one attribute', 0);
  const attributes = new Parser(tokens, limits).parseAttributes();
  const integerNames = new Set<string>();
  const seen = new Set<string>();
  for (const a of attributes) {
    const key = a.kind === 'integer' ? `#${a.name}` : `${a.name}:${a.value}`;
    if (a.kind === 'integer') {
      // Two values of one integer attribute would mix their bits and satisfy ranges neither value does.
      if (integerNames.has(a.name)) throw new PolicySyntaxError(`integer attribute '${a.name}' is given more than one value`, 0);
      integerNames.add(a.name);
    } else if (seen.has(key)) {
      throw new PolicySyntaxError(`duplicate attribute '${key}'`, 0);
    }
    seen.add(key);
  }
  return attributes;
}
