/**
 * The JSON text of a record as a rejection stores it: `JSON.stringify`, which escapes U+0000, other control characters
 * and lone surrogates (`\u0000`, `\ud800`), so the text is storable in every dialect (see isText). A value nested
 * deeper than `JSON.stringify` can recurse (about 10,000 levels; `JSON.parse` has no such limit, so a valid file can
 * hold one) is written by {@link stringifyDeep} instead, so such a record is a stored rejection like any other, not
 * a failed file.
 */
export function rawJson(value: unknown): string {
  if (value === undefined) return 'null';
  try {
    return JSON.stringify(value);
  } catch (err) {
    if (err instanceof RangeError) return stringifyDeep(value);
    throw err;
  }
}

type Frame =
  | { readonly array: readonly unknown[]; i: number }
  | { readonly object: Readonly<Record<string, unknown>>; readonly keys: readonly string[]; i: number };

/**
 * `JSON.stringify(value)` for what `JSON.parse` makes (plain objects, arrays, strings, numbers, booleans, null), with
 * a stack of its own instead of recursion; the same text, character for character. Stops once the text is longer
 * than `max` characters (for a value shown cut in a reason). Only called where `JSON.stringify` ran out of stack.
 */
export function stringifyDeep(value: unknown, max = Infinity): string {
  let out = '';
  const stack: Frame[] = [];
  let next: unknown = value;
  let pending = true; // `next` is still to be written
  for (;;) {
    if (pending) {
      pending = false;
      if (Array.isArray(next)) {
        out += '[';
        stack.push({ array: next, i: 0 });
      } else if (next !== null && typeof next === 'object') {
        const object = next as Record<string, unknown>;
        out += '{';
        stack.push({ object, keys: Object.keys(object), i: 0 });
      } else {
        out += JSON.stringify(next) ?? 'null';
      }
    }
    if (out.length > max) return out;
    const top = stack[stack.length - 1];
    if (top === undefined) return out;
    if ('array' in top) {
      if (top.i < top.array.length) {
        if (top.i > 0) out += ',';
        next = top.array[top.i++];
        pending = true;
      } else {
        out += ']';
        stack.pop();
      }
    } else if (top.i < top.keys.length) {
      const key = top.keys[top.i++] as string;
      out += `${top.i > 1 ? ',' : ''}${JSON.stringify(key)}:`;
      next = top.object[key];
      pending = true;
    } else {
      out += '}';
      stack.pop();
    }
  }
}
