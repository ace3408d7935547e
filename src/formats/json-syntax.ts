/** What is wrong with a text that is not JSON, and where: `at` is an index into the text (UTF-16 code units). */
export interface JsonSyntaxError {
  at: number;
  /** A few words, never any of the text itself: it goes into one-line messages (`status`, `--dry-run`, logs). */
  what: string;
}

/**
 * Where `text` stops being JSON (RFC 8259, what `JSON.parse` accepts), or null if it is JSON. `JSON.parse` says where
 * only for some mistakes, and for others quotes the text around it (newlines included) instead, which must not reach
 * one-line outputs; this finds the same place, for a message of our own. Run only after `JSON.parse` failed, so it
 * favours being plainly right over fast; it keeps its own stack, so any depth of nesting is fine.
 *
 * @example findJsonSyntaxError('[1,\n2,x]') // { at: 6, what: 'unexpected character' }
 */
export function findJsonSyntaxError(text: string): JsonSyntaxError | null {
  const open: number[] = []; // the brackets of the containers the scan is in
  type Expect = 'value' | 'value-or-close' | 'key' | 'key-or-close' | 'colon' | 'after';
  let expect: Expect = 'value';
  let i = 0;
  for (;;) {
    while (i < text.length && isSpace(text.charCodeAt(i))) i++;
    if (i === text.length) return expect === 'after' && open.length === 0 ? null : { at: i, what: 'unexpected end of the text' };
    const c = text.charCodeAt(i);
    if (expect === 'after') {
      const top = open[open.length - 1];
      if (top === undefined) return { at: i, what: 'data after the JSON value' };
      if (c === COMMA) expect = top === OPEN_ARRAY ? 'value' : 'key';
      else if (c === (top === OPEN_ARRAY ? CLOSE_ARRAY : CLOSE_OBJECT)) open.pop();
      else return unexpected(i);
      i++;
    } else if (expect === 'colon') {
      if (c !== COLON) return unexpected(i);
      i++;
      expect = 'value';
    } else if (expect === 'key' || expect === 'key-or-close') {
      if (expect === 'key-or-close' && c === CLOSE_OBJECT) {
        open.pop();
        i++;
        expect = 'after';
      } else {
        if (c !== QUOTE) return unexpected(i);
        const end = scanString(text, i);
        if (typeof end !== 'number') return end;
        i = end;
        expect = 'colon';
      }
    } else if (expect === 'value-or-close' && c === CLOSE_ARRAY) {
      open.pop();
      i++;
      expect = 'after';
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      open.push(c);
      i++;
      expect = c === OPEN_ARRAY ? 'value-or-close' : 'key-or-close';
    } else {
      const end = scanScalar(text, i);
      if (typeof end !== 'number') return end;
      i = end;
      expect = 'after';
    }
  }
}

/** The bytes of JSON's structure, shared with the streamed splitter (json-array-stream.ts). */
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COMMA = 0x2c;
const COLON = 0x3a;
export const OPEN_ARRAY = 0x5b;
export const CLOSE_ARRAY = 0x5d;
export const OPEN_OBJECT = 0x7b;
export const CLOSE_OBJECT = 0x7d;
const LITERALS = ['true', 'false', 'null'];

/** JSON's white space: space, line feed, carriage return, tab. */
export const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isHex = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

function unexpected(at: number): JsonSyntaxError {
  return { at, what: 'unexpected character' };
}

/** Past the string starting (with its quote) at `i`, or what is wrong in it. */
function scanString(text: string, i: number): number | JsonSyntaxError {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === QUOTE) return j + 1;
    if (c < 0x20) return { at: j, what: 'unescaped control character in a string' };
    if (c !== BACKSLASH) continue;
    const e = text.charCodeAt(++j);
    if (j === text.length) break;
    if (e === 0x75) { // \uXXXX
      for (let k = 1; k <= 4; k++) {
        if (j + k === text.length) return { at: j + k, what: 'unexpected end of the text' };
        if (!isHex(text.charCodeAt(j + k))) return { at: j + k, what: 'bad \\u escape in a string' };
      }
      j += 4;
    } else if (!'"\\/bfnrt'.includes(text[j] as string)) {
      return { at: j, what: 'bad escape in a string' };
    }
  }
  return { at: text.length, what: 'unexpected end of the text' };
}

/** Past the string, number or literal starting at `i`, or what is wrong with it. */
function scanScalar(text: string, i: number): number | JsonSyntaxError {
  const c = text.charCodeAt(i);
  if (c === QUOTE) return scanString(text, i);
  if (c === 0x2d || isDigit(c)) return scanNumber(text, i);
  const literal = LITERALS.find((l) => l.charCodeAt(0) === c);
  if (literal === undefined) return unexpected(i);
  for (let k = 1; k < literal.length; k++) {
    if (i + k === text.length) return { at: i + k, what: 'unexpected end of the text' };
    if (text.charCodeAt(i + k) !== literal.charCodeAt(k)) return unexpected(i + k);
  }
  return i + literal.length;
}

/** `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`: past it, or where it goes wrong. */
function scanNumber(text: string, i: number): number | JsonSyntaxError {
  let j = i;
  const need = (ok: boolean): JsonSyntaxError | null => (ok ? null : j === text.length ? { at: j, what: 'unexpected end of the text' } : unexpected(j));
  if (text.charCodeAt(j) === 0x2d) j++;
  const first = need(isDigit(text.charCodeAt(j)));
  if (first) return first;
  if (text.charCodeAt(j) === 0x30) j++;
  else while (isDigit(text.charCodeAt(j))) j++;
  if (text.charCodeAt(j) === 0x2e) {
    j++;
    const fraction = need(isDigit(text.charCodeAt(j)));
    if (fraction) return fraction;
    while (isDigit(text.charCodeAt(j))) j++;
  }
  if (text.charCodeAt(j) === 0x65 || text.charCodeAt(j) === 0x45) {
    j++;
    if (text.charCodeAt(j) === 0x2b || text.charCodeAt(j) === 0x2d) j++;
    const exponent = need(isDigit(text.charCodeAt(j)));
    if (exponent) return exponent;
    while (isDigit(text.charCodeAt(j))) j++;
  }
  return j;
}
