import { IngestError } from '../errors.js';
import { classifyData, type RecordTypes } from '../records/classify.js';
import { rawJson } from '../records/raw-json.js';
import { describeKind, describeValue } from '../records/reasons.js';
import type { SchemaRecordType } from '../schemas/compile.js';
import type { PropertySpec } from '../schemas/spec.js';
import { validateRecords, type Rejection, type ValidatedFile } from '../validate.js';
import { Mistyped, Undecodable, type RecordBatch, type Routed } from './types.js';

/**
 * A routed batch (CSV or Parquet rows of one type) sorted into rows, rejections and skips, as validateBatch does enveloped ones.
 * Fields are matched to the type's properties by header name (case as given) and converted from text by the
 * property's JSON type (see {@link convert}); a column no property has is passed on as text, so the type's `x-extra`
 * policy decides (ignored, rescued, or the record rejected). The data objects go to the type's codec as they are, with
 * no `{"type", "data"}` envelope around each. A rejection names the line (`line 4: quantity: expected SafeInteger, got
 * "2x"`) and stores the row's text as it was, or, for a type with personal data, the record as JSON with those
 * values hashed (as every rejection of such a type is stored).
 *
 * Parquet's rows (`typed`) hold values of their JSON type already (parquet.ts): only a null is converted (as an empty
 * field is), a Mistyped is a rejection, and, with no lines, a reason names no line (`record_index` is the row).
 *
 * A required property without a default that has no column fails the file up front (BI_SCHEMA, naming the columns).
 */
export function validateRouted(types: RecordTypes, batch: RecordBatch, routed: Routed, now: string, keyOrder: boolean): ValidatedFile {
  const rt = types.typeFor(routed.type) as SchemaRecordType | undefined;
  if (rt?.spec === undefined) throw new IngestError('BI_ROUTE', `${routed.key}: ROUTES gives type "${routed.type}", which no schema declares`);
  const props = new Map(rt.spec.properties.map((p) => [p.name, p]));
  const missing = rt.spec.properties.filter((p) => p.required && !p.hasDefault && !routed.columns.includes(p.name)).map((p) => p.name);
  if (missing.length > 0 && batch.records.length > 0) {
    throw new IngestError('BI_SCHEMA', `${routed.key}: no column for required propert${missing.length === 1 ? 'y' : 'ies'} ${missing.join(', ')} of type ${rt.type} (header: ${routed.columns.join(', ')})`);
  }
  const converters = routed.columns.map((c) => (routed.typed === true ? typedConverter : converter)(props.get(c)));
  const lines = batch.lines;
  const at_ = (i: number): string => (lines === undefined ? '' : `line ${lines[i] as number}: `);
  const values: unknown[] = [];
  const at: number[] = [];
  const unread: Rejection[] = [];
  const rejectAt = (i: number, reason: string, data: unknown): void => {
    unread.push({ recordIndex: batch.first + i, type: rt.type, reason, raw: stored(rt, routed.raw(i), data) });
  };
  for (let i = 0; i < batch.records.length; i++) {
    const row = batch.records[i];
    if (row instanceof Undecodable) {
      rejectAt(i, row.reason, undefined);
      continue;
    }
    const fields = row as string[];
    // No prototype: a column named `__proto__` is then a field like the others, not an assignment to the prototype.
    const data = Object.create(null) as Record<string, unknown>;
    let wrong: string | undefined;
    for (let j = 0; j < fields.length; j++) {
      const name = routed.columns[j] as string;
      const v = (converters[j] as Converter)(fields[j] as string);
      if (v === OMIT) continue;
      if (v instanceof Mistyped) {
        wrong ??= `${name}: expected ${v.expected}, got ${props.get(name)?.pii === true ? 'a value' : v.got}`;
        data[name] = v.got;
      } else if (v instanceof Unconverted) {
        wrong ??= `${name}: expected ${v.expected}, got ${props.get(name)?.pii === true ? describeKind(fields[j]) : describeValue(fields[j])}`;
        data[name] = fields[j];
      } else {
        data[name] = v;
      }
    }
    if (wrong !== undefined) rejectAt(i, `${at_(i)}${wrong}`, data);
    else {
      values.push(data);
      at.push(i);
    }
  }
  const file = validateRecords(types, values, now, 0, keyOrder, (_, data, n) => classifyData(rt, data, n));
  for (const r of file.rejections) {
    const v = r.recordIndex; // in `values`
    const i = at[v] as number;
    r.recordIndex = batch.first + i;
    r.reason = `${at_(i)}${r.reason}`;
    r.raw = stored(rt, routed.raw(i), values[v]);
  }
  if (unread.length > 0) file.rejections = [...file.rejections, ...unread].sort((a, b) => a.recordIndex - b.recordIndex);
  return file;
}

/** The raw text a rejection stores: the row as it was, unless the type has personal data (then hashed, as JSON). */
function stored(rt: SchemaRecordType, text: string, data: unknown): string {
  if (rt.redact === undefined) return text;
  return rawJson(rt.redact({ type: rt.type, data: data ?? {} }));
}

const OMIT = Symbol('omit');
class Unconverted {
  constructor(readonly expected: string) {}
}
type Converter = (field: string) => unknown;

const INTEGER = /^-?\d+$/;
const NUMBER = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NOT_INTEGER = new Unconverted('SafeInteger');
const NOT_NUMBER = new Unconverted('FiniteNumber');
const NOT_BOOLEAN = new Unconverted('boolean');

/**
 * How a field's text becomes the value its property's codec checks. An empty field is null, or, for an optional
 * property that does not take null, absent (stored NULL, or the property's default). Otherwise by the property's
 * JSON type: `integer` `-?\d+` within ±(2^53 − 1); `number` a finite decimal, with an exponent or not; `boolean`
 * `true` or `false` only; `string` as it is (a `format`, such as `date`, is the codec's to check). A column no
 * property has: its text, for the type's `x-extra` policy.
 */
function converter(p: PropertySpec | undefined): Converter {
  const empty = p === undefined || p.nullable || p.required ? null : OMIT;
  const type = p?.type ?? 'string';
  if (type === 'integer') {
    return (s) => {
      if (s === '') return empty;
      const n = INTEGER.test(s) ? Number(s) : NaN;
      return Number.isSafeInteger(n) ? n : NOT_INTEGER;
    };
  }
  if (type === 'number') {
    return (s) => {
      if (s === '') return empty;
      const n = NUMBER.test(s) ? Number(s) : NaN;
      return Number.isFinite(n) ? n : NOT_NUMBER;
    };
  }
  if (type === 'boolean') return (s) => (s === '' ? empty : s === 'true' ? true : s === 'false' ? false : NOT_BOOLEAN);
  return (s) => (s === '' ? empty : s);
}

/** A typed (Parquet) field: null as an empty CSV field (null, or absent where the property is optional and takes no null). */
function typedConverter(p: PropertySpec | undefined): Converter {
  const empty = p === undefined || p.nullable || p.required ? null : OMIT;
  return (v: unknown) => (v === null || v === undefined ? empty : v);
}
