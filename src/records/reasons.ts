import type * as t from 'io-ts';
import { stringifyDeep } from './raw-json.js';

/** Longest rendering of one offending value before it is cut with `…`. */
const MAX_VALUE_CHARS = 60;
/** Longest whole reason before it is cut with `…`. */
const MAX_REASON_CHARS = 500;

/**
 * Renders a value for a reason: JSON text, `missing` for `undefined`, `NaN`/`Infinity` spelled out (JSON would
 * say `null`), cut to about {@link MAX_VALUE_CHARS} characters.
 */
export function describeValue(v: unknown): string {
  let s: string;
  if (v === undefined) return 'missing';
  if (typeof v === 'number') s = Object.is(v, -0) ? '-0' : String(v);
  else if (typeof v === 'bigint') s = `${v}n`;
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch (err) {
      // Nested too deeply for JSON.stringify (JSON.parse has no such limit): the start of the same text.
      s = err instanceof RangeError ? stringifyDeep(v, MAX_VALUE_CHARS) : Object.prototype.toString.call(v);
    }
  }
  return cut(s, MAX_VALUE_CHARS);
}

/**
 * What a reason says in place of a value it must not quote (personal data, `x-pii`), or of no value at all (`said`
 * null: the failure's message says everything, e.g. unknown properties). Put as the `value` of an io-ts error.
 */
export class Undisclosed {
  constructor(readonly said: string | null) {}
}

/**
 * A value described by its JSON type and size only, never its content: `a string of 12 characters`, `a number`,
 * `an array of 2 elements`, `an object`, `a boolean`; `null` and `missing` as themselves (they hold nothing personal).
 */
export function describeKind(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (typeof v === 'string') return `a string of ${v.length} character${v.length === 1 ? '' : 's'}`;
  if (Array.isArray(v)) return `an array of ${v.length} element${v.length === 1 ? '' : 's'}`;
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** Cuts a one-line reason to about {@link MAX_REASON_CHARS} characters. */
export function capReason(s: string): string {
  return cut(s, MAX_REASON_CHARS);
}

/**
 * `s` cut to `max` characters with `…`, never between the two halves of a surrogate pair: a reason is stored, and
 * a lone surrogate is not text (see isText).
 */
function cut(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max - 1;
  const last = s.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--; // a high surrogate whose low half would be cut off
  return `${s.slice(0, end)}…`;
}

/**
 * Turns io-ts decoding errors into one readable line, one part per failing leaf:
 * `year: expected SafeInteger, got "1999"; title: expected string, got missing`.
 *
 * The path is dotted and relative to the decoded object (the `data` of a record); an error on the object
 * itself is reported under `root`. Identical parts are listed once, and the whole line is capped at about
 * 500 characters.
 */
export function formatErrors(errors: t.Errors, root = 'data'): string {
  const parts = new Set<string>();
  for (const e of errors) {
    const ctx = e.context;
    let path = '';
    // ctx[0] is the decoded object itself (key ''); the rest are the keys down to the failing leaf.
    for (let i = 1; i < ctx.length; i++) {
      const key = ctx[i]?.key ?? '';
      if (key !== '') path = path === '' ? key : `${path}.${key}`;
    }
    const leaf = ctx[ctx.length - 1];
    const expected = e.message ?? `expected ${leaf?.type.name ?? 'valid value'}`;
    const got = e.value instanceof Undisclosed ? (e.value.said === null ? '' : `, got ${e.value.said}`) : `, got ${describeValue(e.value)}`;
    parts.add(`${path === '' ? root : path}: ${expected}${got}`);
  }
  if (parts.size === 0) return 'invalid data';
  return capReason([...parts].join('; '));
}
