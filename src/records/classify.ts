import { isText, NOT_TEXT } from './codecs.js';
import { describeKind, describeValue, formatErrors } from './reasons.js';
import type { RecordType, Row } from './types.js';

/** What to do with one element of a bucket file. */
export type Classification =
  /** A known type whose data is valid: write `row` to `type.table`. */
  | { readonly kind: 'row'; readonly type: RecordType; readonly row: Row }
  /** Malformed: `type` is the record's `type` when it was a string, else `null`. */
  | { readonly kind: 'reject'; readonly type: string | null; readonly reason: string }
  /** A well-formed record of a type this daemon does not load (e.g. `book`). */
  | { readonly kind: 'skip'; readonly type: string };

/** The declared types a record's `type` is looked up in (a schemas/ Catalog). */
export interface RecordTypes {
  typeFor(type: string): RecordType | undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Classifies one element of a bucket file (`{"type": T, "data": {...}}`).
 *
 * - not a non-null, non-array object → reject (`record is not an object, got [1]`), type `null`;
 * - `type` not a string → reject (`type: expected string, got 5`), type `null`;
 * - `type` holding U+0000 or a lone surrogate → reject (`type: expected text without …`), type `null` (see isText);
 * - `data` not a non-null, non-array object → reject (`data: expected object, got null`);
 * - `type` not a known record type → skip;
 * - `data` failing the type's codec → reject with {@link formatErrors}' reason (`year: expected SafeInteger, …`);
 * - otherwise → the row, built with `now` (UTC ISO-8601 load time).
 *
 * Reasons do not say the record's position in its file: the caller stores it next to the reason. Hot path: no pipes, one `decode`, one result object.
 */
export function classifyRecord(types: RecordTypes, raw: unknown, now: string): Classification {
  if (!isPlainObject(raw)) {
    return { kind: 'reject', type: null, reason: `record is not an object, got ${describeValue(raw)}` };
  }
  const type = raw['type'];
  if (typeof type !== 'string') {
    return { kind: 'reject', type: null, reason: `type: expected string, got ${describeValue(type)}` };
  }
  if (!isText(type)) return { kind: 'reject', type: null, reason: `type: ${NOT_TEXT}, got ${describeValue(type)}` };
  const data = raw['data'];
  const rt = types.typeFor(type);
  if (!isPlainObject(data)) {
    // A type with personal data: whatever came in place of its object may be some of it, so it is not quoted.
    return { kind: 'reject', type, reason: `data: expected object, got ${rt?.redact === undefined ? describeValue(data) : describeKind(data)}` };
  }
  if (rt === undefined) return { kind: 'skip', type };
  return classifyData(rt, data, now);
}

/** The `data` of a record known to be of type `rt` (a routed format's, which has no envelope): a row or a rejection. */
export function classifyData(rt: RecordType, data: unknown, now: string): Classification {
  const decoded = rt.codec.decode(data);
  if (decoded._tag === 'Left') return { kind: 'reject', type: rt.type, reason: formatErrors(decoded.left) };
  return { kind: 'row', type: rt, row: rt.toRow(decoded.right, now) };
}
