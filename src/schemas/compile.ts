import * as t from 'io-ts';
import { maxLength as columnLimit } from '../load/schema.js';
import { isText, NOT_TEXT } from '../records/codecs.js';
import { describeValue } from '../records/reasons.js';
import { normalizeTitle } from '../records/normalize.js';
import type { ColumnKind, ColumnSpec, RecordType } from '../records/types.js';
import { FORMATS } from './formats.js';
import { rowBuilder } from './row.js';
import { pointerTo, schemaError, type DerivedSpec, type PropertySpec, type SchemaSpec } from './spec.js';

/**
 * Compiles a checked schema ({@link SchemaSpec}) into a {@link RecordType}, once: every property becomes a closure
 * that tests a value with the schema's constants already bound, so decoding a record interprets nothing. Failures
 * are io-ts errors whose type names and messages give the same reasons as the coded types of src/records/
 * (`year: expected SafeInteger, got "1999"`, `original_title: expected TitleWithLetterOrDigit, got "!!!"`).
 */

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
  return { name: p.name, required: p.required, nullable: p.nullable, hasDefault: p.hasDefault, default: p.default, check, codec };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The codec of a record's `data`: each property in order, every failure collected (as `t.type` does). */
function dataCodec(name: string, props: readonly CompiledProperty[]): t.Type<SchemaData, SchemaData, unknown> {
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
      const value = failure.key === undefined ? v : failure.value;
      (errors ??= []).push({ value, context: [...c, { key, type: p.codec, actual: value }], message: failure.message });
    }
    return errors === undefined ? t.success(out) : t.failures(errors);
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

function capitalized(type: string): string {
  return `${type.charAt(0).toUpperCase()}${type.slice(1)}Data`;
}

/** Compiles `spec`; throws `BI_SCHEMA` for what only shows once compiled (a default that fails, an unbounded key column). */
export function compileSchema(spec: SchemaSpec): SchemaRecordType {
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
  const toRow = rowBuilder(order);
  const rt: SchemaRecordType = {
    type: spec.type,
    table: spec.table,
    file: spec.file,
    spec,
    codec: dataCodec(capitalized(spec.type), props),
    columns,
    key: spec.key,
    keyCells: spec.key.map((k) => columns.findIndex((c) => c.name === k)),
    toRow,
  };
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
