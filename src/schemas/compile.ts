import * as t from 'io-ts';
import { maxLength as columnLimit } from '../load/schema.js';
import { isText, NOT_TEXT } from '../records/codecs.js';
import { ConfigError } from '../errors.js';
import { hashPii, PII_HASH_LENGTH } from '../records/pii.js';
import { rawJson } from '../records/raw-json.js';
import { describeKind, describeValue, Undisclosed } from '../records/reasons.js';
import { normalizeTitle } from '../records/normalize.js';
import type { ColumnKind, ColumnSpec, RecordType } from '../records/types.js';
import { FORMATS } from './formats.js';
import { rowBuilder } from './row.js';
import { pointerTo, RESCUED_COLUMN, schemaError, type DerivedSpec, type PropertySpec, type SchemaSpec } from './spec.js';

/**
 * Compiles a checked schema ({@link SchemaSpec}) into a {@link RecordType}, once: every property becomes a closure
 * that tests a value with the schema's constants already bound, so decoding a record interprets nothing. Failures
 * are io-ts errors whose type names and messages give the same reasons as the coded types of src/records/
 * (`year: expected SafeInteger, got "1999"`, `original_title: expected TitleWithLetterOrDigit, got "!!!"`).
 */

/** What compiling needs besides the schema. */
export interface CompileOptions {
  /** `PII_HASH_KEY`: the HMAC key of `x-pii: "hash"` properties; a schema with one is refused without it. */
  readonly piiKey?: string | undefined;
}

/** The decoded `data` of a record: its own object (unknown fields kept, as io-ts' `t.type` keeps them), defaults filled in. */
export type SchemaData = Readonly<Record<string, unknown>>;

/** A column of a compiled type: always says whether it takes NULL. */
export interface SchemaColumnSpec extends ColumnSpec {
  readonly nullable: boolean;
}

export interface SchemaRecordType extends RecordType<SchemaData> {
  readonly columns: readonly SchemaColumnSpec[];
  /** The schema file it was compiled from. */
  readonly file: string;
  /** The checked schema it was compiled from. */
  readonly spec: SchemaSpec;
}

/** Why one value fails: `message` undefined means `expected <the property's type name>`; `key` is another column than the property's. */
interface Failure {
  readonly message: string | undefined;
  readonly key?: string;
  readonly value?: unknown;
}
/** null when the value passes. */
type Check = (v: unknown) => Failure | null;

const FAIL: Failure = { message: undefined };
const FAIL_TEXT: Failure = { message: NOT_TEXT };

function lengthFailure(bound: 'least' | 'most', limit: number, s: string, key?: string): Failure {
  const f = { message: `expected at ${bound} ${limit} character${limit === 1 ? '' : 's'} (has ${s.length})` };
  return key === undefined ? f : { ...f, key, value: s };
}

/** `NonNegativeSafeInteger`, `SafeInteger >= 1 and <= 12`, `FiniteNumber > 0`, `"a" | "b"`, `string matching /^x/`, … */
function typeName(p: PropertySpec, title: DerivedSpec | undefined): string {
  let name: string;
  if (p.enum !== undefined) name = p.enum.filter((v) => v !== null).map((v) => JSON.stringify(v)).join(' | ');
  else if (p.type === 'string') name = p.format !== undefined ? (FORMATS.get(p.format)?.name ?? 'string') : 'string';
  else if (p.type === 'boolean') name = 'boolean';
  else {
    const bounds = [
      p.minimum === undefined ? '' : `>= ${p.minimum}`,
      p.exclusiveMinimum === undefined ? '' : `> ${p.exclusiveMinimum}`,
      p.maximum === undefined ? '' : `<= ${p.maximum}`,
      p.exclusiveMaximum === undefined ? '' : `< ${p.exclusiveMaximum}`,
    ].filter((b) => b !== '');
    const base = p.type === 'integer' ? 'SafeInteger' : 'FiniteNumber';
    // The name the coded types of src/records/ give this common case (sizes, budgets), so reasons stay the same.
    if (p.type === 'integer' && bounds.length === 1 && p.minimum === 0) name = 'NonNegativeSafeInteger';
    else name = bounds.length === 0 ? base : `${base} ${bounds.join(' and ')}`;
  }
  if (p.pattern !== undefined) name += ` matching /${p.pattern}/`;
  if (title?.derive === 'normalize-title' && title.nonEmpty) name = name === 'string' ? 'TitleWithLetterOrDigit' : `${name} with a letter or digit`;
  return p.nullable ? `${name} | null` : name;
}

/** The test of one non-null value against everything `p` says, in the order the coded types check (type, text, rest). */
function compileCheck(p: PropertySpec, title: DerivedSpec | undefined): Check {
  const allowed = p.enum === undefined ? undefined : new Set<unknown>(p.enum);
  if (p.type === 'boolean') {
    return (v) => (typeof v !== 'boolean' || (allowed !== undefined && !allowed.has(v)) ? FAIL : null);
  }
  if (p.type === 'integer' || p.type === 'number') {
    const isInteger = p.type === 'integer';
    const { minimum: min, maximum: max, exclusiveMinimum: xmin, exclusiveMaximum: xmax } = p;
    return (v) => {
      if (typeof v !== 'number' || (isInteger ? !Number.isSafeInteger(v) : !Number.isFinite(v))) return FAIL;
      if ((min !== undefined && v < min) || (max !== undefined && v > max) || (xmin !== undefined && v <= xmin) || (xmax !== undefined && v >= xmax)) return FAIL;
      return allowed !== undefined && !allowed.has(v) ? FAIL : null;
    };
  }
  const format = p.format === undefined ? undefined : FORMATS.get(p.format)?.test;
  const pattern = p.pattern === undefined ? undefined : new RegExp(p.pattern, 'u');
  const { minLength, maxLength } = p;
  const normalized = title?.derive === 'normalize-title' ? title : undefined;
  return (v) => {
    if (typeof v !== 'string') return FAIL;
    // A format is checked before text: a date or UUID is ASCII, and `expected CalendarDate(…)` says more than NOT_TEXT.
    if (format !== undefined && !format(v)) return FAIL;
    if (!isText(v)) return FAIL_TEXT;
    if (allowed !== undefined && !allowed.has(v)) return FAIL;
    if (pattern !== undefined && !pattern.test(v)) return FAIL;
    // Lengths in UTF-16 code units, the measure of the columns' limits (see validate.ts): never more characters than that.
    if (minLength !== undefined && v.length < minLength) return lengthFailure('least', minLength, v);
    if (maxLength !== undefined && v.length > maxLength) return lengthFailure('most', maxLength, v);
    if (normalized !== undefined) {
      const n = normalizeTitle(v);
      if (normalized.nonEmpty && n === '') return FAIL;
      if (normalized.maxLength !== undefined && n.length > normalized.maxLength) return lengthFailure('most', normalized.maxLength, n, normalized.name);
    }
    return null;
  };
}

interface CompiledProperty {
  readonly name: string;
  /** `x-pii`: a failure never quotes the value. */
  readonly pii: boolean;
  readonly required: boolean;
  readonly nullable: boolean;
  readonly hasDefault: boolean;
  readonly default: unknown;
  readonly check: Check;
  /** The io-ts type a failure's context names (its `name` is what `expected …` shows). */
  readonly codec: t.Type<unknown>;
}

function compileProperty(p: PropertySpec, title: DerivedSpec | undefined): CompiledProperty {
  const check = compileCheck(p, title);
  const name = typeName(p, title);
  const ok = (v: unknown): v is unknown => (v === null ? p.nullable : check(v) === null);
  const codec = new t.Type<unknown>(name, ok, (v, c) => (ok(v) ? t.success(v) : t.failure(v, c, v === null ? undefined : check(v)?.message)), t.identity);
  return { name: p.name, pii: p.pii, required: p.required, nullable: p.nullable, hasDefault: p.hasDefault, default: p.default, check, codec };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * What a type does beyond checking its properties, each only where its schema asks for it, so a type asking for
 * neither (the MacPaw types) pays one test of `undefined` per record.
 */
interface Extras {
  /** `x-extra: reject`: the message naming the properties of `u` the schema does not declare, or null for none. */
  readonly unknown: ((u: Record<string, unknown>) => string | null) | undefined;
  /** `x-pii`: the valid data with its personal values hashed (a copy; the input is never altered). */
  readonly hash: ((d: Record<string, unknown>) => Record<string, unknown>) | undefined;
}

/** The properties of `u` that are not in `declared`, in `u`'s order, or undefined for none. */
function undeclared(u: Record<string, unknown>, declared: ReadonlySet<string>): string[] | undefined {
  let names: string[] | undefined;
  for (const k of Object.keys(u)) if (!declared.has(k)) (names ??= []).push(k);
  return names;
}

/** Most unknown properties a reason names one by one. */
const MAX_NAMED = 10;

function unknownMessage(names: readonly string[]): string {
  const shown = names.slice(0, MAX_NAMED).map((n) => describeValue(n)).join(', ');
  const more = names.length > MAX_NAMED ? ` and ${names.length - MAX_NAMED} more` : '';
  return `unknown propert${names.length === 1 ? 'y' : 'ies'} ${shown}${more} (x-extra is "reject")`;
}

/**
 * A personal value as it is stored: a string as its keyed hash; null as null (it holds nothing); any other value (a
 * phone number sent as a number, an object) as the hash of its JSON text, so that nothing of it is stored either.
 */
/** A personal value as a rejection stores it (hashPii's output). */
const STORED_HASH_RE = /^[0-9a-f]{64}$/;

function hashedValue(key: string, v: unknown): unknown {
  if (v === null || v === undefined) return v;
  return hashPii(key, typeof v === 'string' ? v : rawJson(v));
}

/** The codec of a record's `data`: each property in order, every failure collected (as `t.type` does). */
function dataCodec(name: string, props: readonly CompiledProperty[], extras: Extras): t.Type<SchemaData, SchemaData, unknown> {
  const { unknown, hash } = extras;
  const validate = (u: unknown, c: t.Context): t.Validation<SchemaData> => {
    if (!isPlainObject(u)) return t.failure(u, c);
    let errors: t.ValidationError[] | undefined;
    let out: Record<string, unknown> = u;
    for (const p of props) {
      const v = u[p.name];
      let failure: Failure | null;
      if (v === undefined) {
        if (p.hasDefault) {
          if (out === u) out = { ...u }; // the input is never altered
          out[p.name] = p.default;
          continue;
        }
        failure = p.required ? FAIL : null;
      } else {
        failure = v === null ? (p.nullable ? null : FAIL) : p.check(v);
      }
      if (failure === null) continue;
      const key = failure.key ?? p.name;
      let value = failure.key === undefined ? v : failure.value;
      if (p.pii) value = new Undisclosed(describeKind(value)); // personal data: never in a reason
      (errors ??= []).push({ value, context: [...c, { key, type: p.codec, actual: value }], message: failure.message });
    }
    if (unknown !== undefined) {
      const message = unknown(u);
      if (message !== null) (errors ??= []).push({ value: new Undisclosed(null), context: c, message });
    }
    if (errors !== undefined) return t.failures(errors);
    return t.success(hash === undefined ? out : hash(out));
  };
  const codec: t.Type<SchemaData, SchemaData, unknown> = new t.Type<SchemaData, SchemaData, unknown>(
    name,
    (u): u is SchemaData => validate(u, [{ key: '', type: codec, actual: u }])._tag === 'Right',
    validate,
    t.identity,
  );
  return codec;
}

/**
 * The type's columns: each property in the file's order, each derived column right after the property it derives
 * from, and derived columns of no property (the load time) last. This is the order of the coded types' columns.
 */
function columnOrder(spec: SchemaSpec): Array<PropertySpec | DerivedSpec> {
  const order: Array<PropertySpec | DerivedSpec> = [];
  for (const p of spec.properties) {
    order.push(p);
    for (const d of spec.derived) if (d.derive !== 'load-time' && d.from === p.name) order.push(d);
  }
  for (const d of spec.derived) if (d.derive === 'load-time') order.push(d);
  return order;
}

/**
 * RecordType.redact of a type with personal data: the record with `data`'s personal properties hashed (see
 * hashedValue), or, when `data` is not an object, `data` itself hashed, since it may be some of them.
 */
function redactor(names: readonly string[], key: string): (record: Readonly<Record<string, unknown>>) => Record<string, unknown> {
  return (record) => {
    const data = record['data'];
    if (!isPlainObject(data)) return { ...record, data: hashedValue(key, data) };
    const hashed = { ...data };
    for (const n of names) if (Object.hasOwn(hashed, n)) hashed[n] = hashedValue(key, hashed[n]);
    return { ...record, data: hashed };
  };
}

function capitalized(type: string): string {
  return `${type.charAt(0).toUpperCase()}${type.slice(1)}Data`;
}

/**
 * Compiles `spec`; throws `BI_SCHEMA` for what only shows once compiled (a default that fails, an unbounded key
 * column), and `BI_CONFIG` for a schema with personal data (`x-pii`) when `options.piiKey` is missing.
 */
export function compileSchema(spec: SchemaSpec, options: CompileOptions = {}): SchemaRecordType {
  const pii = spec.properties.filter((p) => p.pii);
  const piiKey = options.piiKey ?? '';
  if (pii.length > 0 && piiKey === '') {
    const first = pii[0] as PropertySpec;
    throw new ConfigError(`PII_HASH_KEY is not set, and ${spec.file} at #${pointerTo(first.pointer, 'x-pii')} declares ${JSON.stringify(first.name)} ` +
      'personal data, stored only as its keyed hash: set PII_HASH_KEY (environment or config.ini) to a secret key');
  }
  const titles = new Map<string, DerivedSpec>();
  for (const d of spec.derived) if (d.derive === 'normalize-title') titles.set(d.from, d);
  const props = spec.properties.map((p) => compileProperty(p, titles.get(p.name)));
  for (const [i, p] of props.entries()) {
    const source = spec.properties[i] as PropertySpec;
    if (!p.hasDefault || (p.default === null && p.nullable)) continue;
    const failure = p.default === null ? FAIL : p.check(p.default);
    if (failure !== null) {
      throw schemaError(spec.file, pointerTo(source.pointer, 'default'),
        `the default ${describeValue(p.default)} is not a value of this property: ${failure.message ?? `expected ${p.codec.name}`}`);
    }
  }
  const order = columnOrder(spec);
  const nullableOf = (c: PropertySpec | DerivedSpec): boolean => {
    if ('derive' in c && c.derive === 'load-time') return false;
    const source = spec.properties.find((p) => p.name === ('derive' in c ? c.from : c.name)) as PropertySpec;
    return source.nullable || (!source.required && !(source.hasDefault && source.default !== null));
  };
  /** A string's bound: its maxLength, or the longest value of its enum (which bounds it as well). */
  const declaredMax = (c: PropertySpec | DerivedSpec): number | undefined => {
    if ('derive' in c) return c.derive === 'normalize-title' ? c.maxLength : undefined;
    if (c.pii) return PII_HASH_LENGTH; // the column holds the hash; the schema's maxLength bounds the raw value

    if (c.maxLength !== undefined || c.enum === undefined || c.type !== 'string') return c.maxLength;
    return Math.max(0, ...c.enum.map((v) => (typeof v === 'string' ? v.length : 0)));
  };
  /**
   * A string column without `x-column` is a bounded `string` (VARCHAR) when its maxLength fits that kind's limit
   * (255 in a key, 512 elsewhere: load/schema.ts), else unbounded `text` (which a key still bounds, to 500).
   */
  const kindOf = (c: PropertySpec | DerivedSpec): ColumnKind => {
    if (c.column !== undefined) return c.column;
    const max = declaredMax(c);
    const limit = columnLimit(spec, { name: c.name, kind: 'string' }) as number;
    return max !== undefined && max <= limit ? 'string' : 'text';
  };
  const columns: SchemaColumnSpec[] = order.map((c) => ({ name: c.name, kind: kindOf(c), nullable: nullableOf(c) }));
  const declared = new Set(spec.properties.map((p) => p.name));
  let rescue: ((d: Readonly<Record<string, unknown>>) => string | null) | undefined;
  if (spec.extra === 'rescue') {
    columns.push({ name: RESCUED_COLUMN, kind: 'text', nullable: true });
    rescue = (d) => {
      const names = undeclared(d, declared);
      if (names === undefined) return null;
      // No prototype: a property named `__proto__` is then kept as one, not taken for the object's prototype.
      const kept = Object.create(null) as Record<string, unknown>;
      for (const n of names) kept[n] = d[n];
      return rawJson(kept);
    };
  }
  const extras: Extras = {
    unknown: spec.extra === 'reject'
      ? (u) => {
        const names = undeclared(u, declared);
        return names === undefined ? null : unknownMessage(names);
      }
      : undefined,
    hash: pii.length === 0
      ? undefined
      : (d) => {
        const out = { ...d };
        for (const p of pii) if (Object.hasOwn(out, p.name)) out[p.name] = hashedValue(piiKey, out[p.name]);
        return out;
      },
  };
  const toRow = rowBuilder(order, rescue);
  // Records as their rejections stored them: a personal value is already its hash (64 lower-case hex), so it is
  // taken as one, never checked against the raw value's rules (they were, when it came) nor hashed again.
  const storedProps = props.map((p): CompiledProperty => {
    if (!p.pii) return p;
    const check: Check = (v) => (typeof v === 'string' && STORED_HASH_RE.test(v) ? null : FAIL);
    const ok = (v: unknown): v is unknown => (v === null ? p.nullable : check(v) === null);
    return { ...p, check, codec: new t.Type<unknown>(`${p.codec.name} (stored as its hash)`, ok, (v, c) => (ok(v) ? t.success(v) : t.failure(v, c)), t.identity) };
  });
  const rt: SchemaRecordType = {
    type: spec.type,
    table: spec.table,
    file: spec.file,
    spec,
    codec: dataCodec(capitalized(spec.type), props, extras),
    columns,
    key: spec.key,
    keyCells: spec.key.map((k) => columns.findIndex((c) => c.name === k)),
    toRow,
    ...(pii.length === 0 ? {} : { redact: redactor(pii.map((p) => p.name), piiKey) }),
  };
  if (pii.length > 0) {
    (rt as { stored?: SchemaRecordType }).stored = { ...rt, codec: dataCodec(capitalized(spec.type), storedProps, { ...extras, hash: undefined }) };
  }
  // Bounded columns (key VARCHARs, see load/schema.ts): the schema must say the bound, so what it accepts is stored.
  order.forEach((c, i) => {
    const column = columns[i] as SchemaColumnSpec;
    const limit = columnLimit(rt, column);
    if (limit === null || ('derive' in c && c.derive === 'load-time')) return; // the load time is 24 characters
    const declared = declaredMax(c);
    if (declared === undefined || declared > limit) {
      const inKey = spec.key.includes(c.name) ? 'key ' : '';
      throw schemaError(spec.file, declared === undefined ? c.pointer : pointerTo(c.pointer, 'maxLength'),
        `a ${inKey}"${column.kind}" column holds at most ${limit} characters: declare "maxLength" of at most ${limit}` +
        (declared === undefined ? '' : `, not ${declared}`));
    }
  });
  return rt;
}
