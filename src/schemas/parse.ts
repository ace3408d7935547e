import { isText } from '../records/codecs.js';
import type { ColumnKind } from '../records/types.js';
import { FORMATS } from './formats.js';
import { EXTRA_POLICIES, pointerTo, RESCUED_COLUMN, schemaError, type DerivedSpec, type ExtraPolicy, type EnumValue, type JsonType, type PropertySpec, type SchemaSpec } from './spec.js';

/**
 * Checks one parsed schema file and turns it into a {@link SchemaSpec}, refusing anything the compiler does not
 * support rather than ignoring it: a keyword ignored would be a rule the operator believes holds and does not.
 * The first problem found is thrown as one `BI_SCHEMA` error naming the file, the JSON pointer and what is wrong.
 */

const DRAFT_2020_12 = 'https://json-schema.org/draft/2020-12/schema';
/** Annotations allowed anywhere: they change nothing. */
const ANNOTATIONS = ['$comment', 'description', 'examples'];
const TOP_KEYWORDS = new Set(['$schema', '$id', 'title', 'type', 'properties', 'required', 'x-table', 'x-key', 'x-derived', 'x-extra', ...ANNOTATIONS]);
const PROPERTY_KEYWORDS = new Set([
  'type', 'enum', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern', 'format', 'default',
  'x-column', 'x-pii', 'title', ...ANNOTATIONS,
]);
const DERIVED_KEYWORDS: Readonly<Record<string, ReadonlySet<string>>> = {
  'normalize-title': new Set(['derive', 'from', 'nonEmpty', 'maxLength', 'x-column', ...ANNOTATIONS]),
  'less-than': new Set(['derive', 'from', 'value', ...ANNOTATIONS]),
  'load-time': new Set(['derive', ...ANNOTATIONS]),
};
const NUMERIC_ONLY = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
const STRING_ONLY = ['minLength', 'maxLength', 'pattern', 'format'];
/** Column kinds a property of each JSON type may ask for with `x-column`; the first is the one inferred. */
const COLUMN_KINDS: Readonly<Record<JsonType, readonly ColumnKind[]>> = {
  string: ['string', 'text'], // inferred from maxLength
  integer: ['bigint', 'integer'],
  number: ['float'],
  boolean: ['boolean'],
};
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * A plain SQL identifier every dialect takes unquoted the same way: lower-case ASCII letters, digits and `_`, not
 * starting with a digit, at most 63 characters (PostgreSQL's limit). Used for tables and columns.
 */
const IDENTIFIER_RE = /^[a-z_][a-z0-9_]{0,62}$/;
/** Tables and columns the daemon owns (see load/schema.ts): a record type may not take these names. */
const RESERVED_TABLES = new Set([
  'rejected_records', 'ingest_files', 'ingest_listing', 'ingest_database', 'erasures', 'bucket_ingest_migrations', 'bucket_ingest_migrations_lock',
]);
/** `__proto__` too: as a property it would be an assignment to an object's prototype where records are built. */
const RESERVED_COLUMNS = new Set(['source_key', 'source_position', 'loaded_at', RESCUED_COLUMN, '__proto__']);

function reservedColumn(name: string): string {
  return name === '__proto__' ? 'column "__proto__" cannot be declared: it names an object\'s prototype where records are built'
    : `column ${JSON.stringify(name)} is the daemon's own (provenance)`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 59)}…` : s;
}

/** Parses the checked schema `doc` of `file`. */
export function parseSchema(file: string, doc: unknown): SchemaSpec {
  const fail = (pointer: string, what: string): never => {
    throw schemaError(file, pointer, what);
  };
  const unknownKeywords = (obj: Record<string, unknown>, pointer: string, allowed: ReadonlySet<string>, where: string): void => {
    for (const k of Object.keys(obj)) {
      if (allowed.has(k)) continue;
      const at = pointerTo(pointer, k);
      if (k === '$ref' || k === '$dynamicRef') fail(at, `${k} is not supported: declare the property inline`);
      fail(at, `unknown keyword ${describe(k)} in ${where} (supported: ${[...allowed].join(', ')})`);
    }
  };
  const identifier = (v: unknown, pointer: string, what: string): string => {
    if (typeof v !== 'string' || !IDENTIFIER_RE.test(v)) {
      fail(pointer, `${what} must be a plain identifier (a-z, 0-9, _, not starting with a digit, at most 63 characters), got ${describe(v)}`);
    }
    return v as string;
  };
  const count = (v: unknown, pointer: string, name: string): number => {
    if (!Number.isSafeInteger(v) || (v as number) < 0) fail(pointer, `${name} must be a non-negative integer, got ${describe(v)}`);
    return v as number;
  };

  if (!isObject(doc)) fail('', `a schema must be a JSON object, got ${describe(doc)}`);
  const root = doc as Record<string, unknown>;
  unknownKeywords(root, '', TOP_KEYWORDS, 'a record-type schema');
  if (root['$schema'] !== undefined && root['$schema'] !== DRAFT_2020_12) {
    fail('/$schema', `only JSON Schema draft 2020-12 is supported (${describe(DRAFT_2020_12)}), got ${describe(root['$schema'])}`);
  }
  if (root['$id'] !== undefined && typeof root['$id'] !== 'string') fail('/$id', `$id must be a string, got ${describe(root['$id'])}`);
  const type = root['title'];
  if (typeof type !== 'string' || type === '' || !isText(type) || type.length > 255) {
    fail('/title', `title (the record type) must be a non-empty string of at most 255 characters, got ${describe(type)}`);
  }
  if (root['type'] !== 'object') fail('/type', `a record-type schema has "type": "object", got ${describe(root['type'])}`);
  const table = identifier(root['x-table'], '/x-table', 'x-table (the table name)');
  if (RESERVED_TABLES.has(table)) fail('/x-table', `table ${describe(table)} is the daemon's own`);

  const props = root['properties'];
  if (!isObject(props) || Object.keys(props).length === 0) fail('/properties', `properties must be a non-empty object, got ${describe(props)}`);
  const required = new Set<string>();
  const req = root['required'] ?? [];
  if (!Array.isArray(req)) fail('/required', `required must be an array of property names, got ${describe(req)}`);
  (req as unknown[]).forEach((name, i) => {
    const at = pointerTo('/required', i);
    if (typeof name !== 'string' || !Object.hasOwn(props as object, name)) fail(at, `${describe(name)} is not a property of this schema`);
    if (required.has(name as string)) fail(at, `${describe(name)} is listed twice`);
    required.add(name as string);
  });

  const properties: PropertySpec[] = [];
  for (const [name, raw] of Object.entries(props as Record<string, unknown>)) {
    const at = pointerTo('/properties', name);
    identifier(name, at, 'a property name (it is a column)');
    if (RESERVED_COLUMNS.has(name)) fail(at, reservedColumn(name));
    properties.push(parseProperty(name, raw, at, required.has(name)));
  }

  function parseProperty(name: string, raw: unknown, at: string, isRequired: boolean): PropertySpec {
    if (!isObject(raw)) fail(at, `a property must be a schema object, got ${describe(raw)}`);
    const p = raw as Record<string, unknown>;
    unknownKeywords(p, at, PROPERTY_KEYWORDS, 'a property');
    let nullable = false;
    let jsonType: unknown = p['type'];
    if (Array.isArray(jsonType)) {
      const others = jsonType.filter((t) => t !== 'null');
      if (jsonType.length !== 2 || others.length !== 1) {
        fail(pointerTo(at, 'type'), `a type list must be one type and "null", got ${describe(jsonType)}`);
      }
      nullable = true;
      jsonType = others[0];
    }
    if (typeof jsonType !== 'string' || !Object.hasOwn(COLUMN_KINDS, jsonType)) {
      fail(pointerTo(at, 'type'), `type must be "string", "integer", "number" or "boolean" (or a list of one of them and "null"), got ${describe(p['type'])}`);
    }
    const t = jsonType as JsonType;
    const only = (keys: readonly string[], types: readonly JsonType[]): void => {
      for (const k of keys) if (p[k] !== undefined && !types.includes(t)) fail(pointerTo(at, k), `${k} does not apply to type ${describe(t)}`);
    };
    only(NUMERIC_ONLY, ['integer', 'number']);
    only(STRING_ONLY, ['string']);
    const bound = (k: string): number | undefined => {
      const v = p[k];
      if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) fail(pointerTo(at, k), `${k} must be a number, got ${describe(v)}`);
      return v as number | undefined;
    };
    const minimum = bound('minimum');
    const maximum = bound('maximum');
    const exclusiveMinimum = bound('exclusiveMinimum');
    const exclusiveMaximum = bound('exclusiveMaximum');
    const minLength = p['minLength'] === undefined ? undefined : count(p['minLength'], pointerTo(at, 'minLength'), 'minLength');
    const maxLength = p['maxLength'] === undefined ? undefined : count(p['maxLength'], pointerTo(at, 'maxLength'), 'maxLength');
    if (minLength !== undefined && maxLength !== undefined && minLength > maxLength) {
      fail(pointerTo(at, 'minLength'), `minLength ${minLength} is greater than maxLength ${maxLength}: no value would pass`);
    }
    const pattern = p['pattern'];
    if (pattern !== undefined) {
      if (typeof pattern !== 'string') fail(pointerTo(at, 'pattern'), `pattern must be a string, got ${describe(pattern)}`);
      try {
        new RegExp(pattern as string, 'u');
      } catch (err) {
        fail(pointerTo(at, 'pattern'), `pattern is not a valid regular expression: ${(err as Error).message}`);
      }
    }
    const format = p['format'];
    if (format !== undefined && (typeof format !== 'string' || !FORMATS.has(format))) {
      fail(pointerTo(at, 'format'), `format must be one of ${[...FORMATS.keys()].map((f) => `"${f}"`).join(', ')}, got ${describe(format)}`);
    }
    const enumValues = p['enum'];
    if (enumValues !== undefined) {
      if (!Array.isArray(enumValues) || enumValues.length === 0) fail(pointerTo(at, 'enum'), `enum must be a non-empty array, got ${describe(enumValues)}`);
      (enumValues as unknown[]).forEach((v, i) => {
        const ok = v === null ? nullable : t === 'integer' ? Number.isSafeInteger(v) : t === 'number' ? typeof v === 'number' : typeof v === t;
        if (!ok || (typeof v === 'string' && !isText(v))) fail(pointerTo(pointerTo(at, 'enum'), i), `${describe(v)} is not a value of type ${describe(p['type'])}`);
      });
      // JSON Schema would reject null then, which makes the "null" of the type a rule that never holds: say it once.
      if (nullable && !(enumValues as unknown[]).includes(null)) fail(pointerTo(at, 'enum'), 'the type allows null, so the enum must list null too');
    }
    const kinds = COLUMN_KINDS[t];
    // A string's kind, when not given, follows from its maxLength (see compile.ts): a bounded string is a VARCHAR.
    const column = p['x-column'] ?? (t === 'string' ? undefined : kinds[0]);
    if (column !== undefined && !kinds.includes(column as ColumnKind)) {
      fail(pointerTo(at, 'x-column'), `x-column for type ${describe(t)} must be ${kinds.map((k) => `"${k}"`).join(' or ')}, got ${describe(column)}`);
    }
    if (column === 'integer') {
      const lo = minimum ?? (exclusiveMinimum === undefined ? undefined : exclusiveMinimum + 1);
      const hi = maximum ?? (exclusiveMaximum === undefined ? undefined : exclusiveMaximum - 1);
      if (lo === undefined || hi === undefined || lo < INT32_MIN || hi > INT32_MAX) {
        fail(pointerTo(at, 'x-column'), `an "integer" column holds 32 bits: give minimum and maximum within ${INT32_MIN}..${INT32_MAX}, or use "bigint"`);
      }
    }
    const pii = p['x-pii'];
    if (pii !== undefined) {
      if (pii !== 'hash') fail(pointerTo(at, 'x-pii'), `x-pii must be "hash" (the value is stored as its keyed HMAC-SHA256), got ${describe(pii)}`);
      if (t !== 'string') fail(pointerTo(at, 'x-pii'), `x-pii applies to a string property; ${describe(name)} is ${describe(t)}`);
      if (p['x-column'] !== undefined) fail(pointerTo(at, 'x-column'), 'a hashed property is stored as 64 hex characters: it takes no x-column');
    }
    const hasDefault = Object.hasOwn(p, 'default');
    if (hasDefault && isRequired) fail(pointerTo(at, 'default'), 'a required property never takes its default: remove one of them');
    return {
      name, pointer: at, type: t, nullable, required: isRequired, enum: enumValues as EnumValue[] | undefined,
      minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength,
      pattern: pattern as string | undefined, format: format as string | undefined,
      hasDefault, default: p['default'], column: column as ColumnKind | undefined, pii: pii === 'hash',
    };
  }

  const byName = new Map(properties.map((p) => [p.name, p]));
  const derived: DerivedSpec[] = [];
  const rawDerived = root['x-derived'] ?? {};
  if (!isObject(rawDerived)) fail('/x-derived', `x-derived must be an object of derived columns, got ${describe(rawDerived)}`);
  for (const [name, raw] of Object.entries(rawDerived as Record<string, unknown>)) {
    const at = pointerTo('/x-derived', name);
    identifier(name, at, 'a derived column name');
    if (byName.has(name)) fail(at, `${describe(name)} is already a property`);
    if (RESERVED_COLUMNS.has(name)) fail(at, reservedColumn(name));
    if (!isObject(raw)) fail(at, `a derived column must be an object, got ${describe(raw)}`);
    const d = raw as Record<string, unknown>;
    const derive = d['derive'];
    if (typeof derive !== 'string' || !Object.hasOwn(DERIVED_KEYWORDS, derive)) {
      fail(pointerTo(at, 'derive'), `derive must be one of ${Object.keys(DERIVED_KEYWORDS).map((k) => `"${k}"`).join(', ')}, got ${describe(derive)}`);
    }
    unknownKeywords(d, at, DERIVED_KEYWORDS[derive as string] as ReadonlySet<string>, `a "${derive as string}" derivation`);
    const source = (types: readonly JsonType[]): string => {
      const from = d['from'];
      const p = typeof from === 'string' ? byName.get(from) : undefined;
      if (p === undefined) fail(pointerTo(at, 'from'), `from must name a property of this schema, got ${describe(from)}`);
      if (!types.includes((p as PropertySpec).type)) {
        fail(pointerTo(at, 'from'), `"${derive as string}" derives from a property of type ${types.map((x) => `"${x}"`).join(' or ')}; ${describe(from)} is ${describe((p as PropertySpec).type)}`);
      }
      if ((p as PropertySpec).pii) fail(pointerTo(at, 'from'), `${describe(from)} is personal data (x-pii): nothing may be derived from its raw value`);
      return from as string;
    };
    if (derive === 'normalize-title') {
      const nonEmpty = d['nonEmpty'] ?? false;
      if (typeof nonEmpty !== 'boolean') fail(pointerTo(at, 'nonEmpty'), `nonEmpty must be true or false, got ${describe(nonEmpty)}`);
      const column = d['x-column'];
      if (column !== undefined && column !== 'string' && column !== 'text') fail(pointerTo(at, 'x-column'), `x-column of a normalized title must be "string" or "text", got ${describe(column)}`);
      const maxLength = d['maxLength'] === undefined ? undefined : count(d['maxLength'], pointerTo(at, 'maxLength'), 'maxLength');
      derived.push({ derive, name, pointer: at, from: source(['string']), nonEmpty: nonEmpty as boolean, maxLength, column: column as 'string' | 'text' | undefined });
    } else if (derive === 'less-than') {
      const value = d['value'];
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(pointerTo(at, 'value'), `value must be a number, got ${describe(value)}`);
      derived.push({ derive, name, pointer: at, from: source(['integer', 'number']), value: value as number, column: 'boolean' });
    } else {
      derived.push({ derive: 'load-time', name, pointer: at, column: 'string' });
    }
  }
  const titleSources = new Set<string>();
  for (const d of derived) {
    if (d.derive !== 'normalize-title') continue;
    if (titleSources.has(d.from)) fail(pointerTo(d.pointer, 'from'), `${describe(d.from)} is normalized twice; derive it once`);
    titleSources.add(d.from);
  }

  const rawKey = root['x-key'];
  if (!Array.isArray(rawKey) || rawKey.length === 0) fail('/x-key', `x-key must be a non-empty array of column names (the upsert key), got ${describe(rawKey)}`);
  const key: string[] = [];
  (rawKey as unknown[]).forEach((name, i) => {
    const at = pointerTo('/x-key', i);
    if (typeof name !== 'string') fail(at, `a key part must be a column name, got ${describe(name)}`);
    if (key.includes(name as string)) fail(at, `${describe(name)} is listed twice`);
    const p = byName.get(name as string);
    const d = derived.find((x) => x.name === name);
    if (p === undefined && d === undefined) fail(at, `${describe(name)} is neither a property nor a derived column`);
    if (d?.derive === 'load-time') fail(at, `${describe(name)} is the load time, which no two loads share: it cannot be part of the key`);
    const source = p ?? byName.get((d as { from: string }).from) as PropertySpec;
    const via = p === undefined ? ` (through ${describe(source.name)}, its source)` : '';
    if (!source.required) fail(at, `key part ${describe(name)}${via} must be a required property: a record without it has no key`);
    if (source.nullable) fail(at, `key part ${describe(name)}${via} must not be nullable: a null key matches nothing on upsert`);
    key.push(name as string);
  });
  const extra = root['x-extra'] ?? 'ignore';
  if (!EXTRA_POLICIES.includes(extra as ExtraPolicy)) {
    fail('/x-extra', `x-extra must be ${EXTRA_POLICIES.map((x) => `"${x}"`).join(', ')}, got ${describe(extra)}`);
  }
  return { file, type: type as string, table, properties, derived, key, extra: extra as ExtraPolicy };
}
