/**
 * The shape of a rejection reason without its offending values: every `got <value>` becomes `got …`, so
 * `year: expected SafeInteger, got "1999"` and `year: expected SafeInteger, got "2001"` group together.
 *
 * Values are rendered by `describeValue` (src/records/reasons.ts): JSON text (strings may hold `; ` and `, `),
 * `missing`, `NaN`, `123n`, and cut with `…` when long (a cut string has no closing quote). A small scanner
 * finds where each value ends instead of a regular expression that would stop inside such a string.
 */
export function reasonPattern(reason: string): string {
  const marker = ', got ';
  let out = '';
  let at = 0;
  for (;;) {
    const found = reason.indexOf(marker, at);
    if (found < 0) break;
    out += `${reason.slice(at, found)}${marker}…`;
    at = skipValue(reason, found + marker.length);
  }
  return out + reason.slice(at);
}

/** Index just past the value that starts at `i`. */
function skipValue(s: string, i: number): number {
  const first = s[i];
  if (first === '"' || first === '{' || first === '[') {
    let depth = 0;
    let inString = false;
    for (let j = i; j < s.length; j++) {
      const c = s[j];
      if (c === '…' && atPartEnd(s, j + 1)) return j + 1; // cut value
      if (inString) {
        if (c === '\\') j++;
        else if (c === '"') {
          inString = false;
          if (depth === 0) return j + 1;
        }
      } else if (c === '"') inString = true;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return s.length;
  }
  const end = s.indexOf('; ', i);
  return end < 0 ? s.length : end;
}

/** Whether a value may end here: at the end of the reason or before the `; ` that starts the next part. */
function atPartEnd(s: string, j: number): boolean {
  return j === s.length || s.startsWith('; ', j);
}
