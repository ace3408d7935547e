import { expect } from 'chai';
import fc from 'fast-check';
import * as t from 'io-ts';
import { isText } from '../../src/records/codecs.js';
import { normalizeTitle } from '../../src/records/normalize.js';
import type { Row } from '../../src/records/types.js';
import { FORMATS } from '../../src/schemas/formats.js';
import { compileSchemaDocument, type SchemaRecordType } from '../../src/schemas/index.js';
import type { DerivedSpec, PropertySpec, SchemaSpec } from '../../src/schemas/spec.js';
import { app, movie, song } from '../helpers/types.js';

/**
 * The compiled validator (src/schemas/compile.ts: one closure per property, constants bound once) against a plain
 * interpretation of the same schema with io-ts' own combinators (`t.type`, `t.partial`, `t.union`, `t.refinement`),
 * over random and malformed data, for the bundled MacPaw schemas and for random schemas: the same decision, the same
 * row, and failures on the same fields. (The reasons' words are the compiled codec's own, asserted in records.test.ts.)
 */

const NOW = '2024-05-01T12:34:56.789Z';

/** The io-ts reading of one property, written from the schema keywords alone. */
function referenceProperty(p: PropertySpec, title: DerivedSpec | undefined): t.Mixed {
  const checks: Array<(v: never) => boolean> = [];
  let base: t.Mixed;
  if (p.type === 'boolean') base = t.boolean;
  else if (p.type === 'integer') base = t.refinement(t.number, Number.isSafeInteger, 'SafeInteger');
  else if (p.type === 'number') base = t.refinement(t.number, Number.isFinite, 'FiniteNumber');
  else base = t.refinement(t.string, isText, 'Text');
  if (p.minimum !== undefined) checks.push((v: number) => v >= (p.minimum as number));
  if (p.maximum !== undefined) checks.push((v: number) => v <= (p.maximum as number));
  if (p.exclusiveMinimum !== undefined) checks.push((v: number) => v > (p.exclusiveMinimum as number));
  if (p.exclusiveMaximum !== undefined) checks.push((v: number) => v < (p.exclusiveMaximum as number));
  if (p.enum !== undefined) checks.push((v: never) => (p.enum as unknown[]).includes(v));
  if (p.minLength !== undefined) checks.push((v: string) => v.length >= (p.minLength as number));
  if (p.maxLength !== undefined) checks.push((v: string) => v.length <= (p.maxLength as number));
  if (p.pattern !== undefined) checks.push((v: string) => new RegExp(p.pattern as string, 'u').test(v));
  if (p.format !== undefined) checks.push((v: string) => (FORMATS.get(p.format as string) as { test(s: string): boolean }).test(v));
  if (title?.derive === 'normalize-title') {
    if (title.nonEmpty) checks.push((v: string) => normalizeTitle(v) !== '');
    if (title.maxLength !== undefined) checks.push((v: string) => normalizeTitle(v).length <= (title.maxLength as number));
  }
  const refined = t.refinement(base, (v) => checks.every((c) => c(v as never)), p.name);
  return p.nullable ? t.union([refined, t.null]) : refined;
}

type Outcome = { row: Row } | { failed: string[] };

/** Decides a record's data as io-ts combinators read the schema, then builds its row from the columns' definitions. */
function reference(spec: SchemaSpec): (data: unknown) => Outcome {
  const titles = new Map(spec.derived.filter((d) => d.derive === 'normalize-title').map((d) => [(d as { from: string }).from, d]));
  const required: t.Props = {};
  const optional: t.Props = {};
  for (const p of spec.properties) (p.required ? required : optional)[p.name] = referenceProperty(p, titles.get(p.name));
  const codec = t.intersection([t.type(required), t.partial(optional)]);
  const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === 'object' && u !== null && !Array.isArray(u);
  return (data) => {
    const d = isRecord(data) ? codec.decode(data) : null;
    if (d === null || d._tag === 'Left') {
      const fields = d === null ? [''] : d.left.map((e) => e.context.find((c) => spec.properties.some((p) => p.name === c.key))?.key ?? '');
      return { failed: [...new Set(fields)].sort() };
    }
    const v = d.right as Record<string, unknown>;
    const value = (p: PropertySpec): unknown => (v[p.name] === undefined ? (p.hasDefault ? p.default : null) : v[p.name]);
    const row: Row = {};
    for (const p of spec.properties) {
      row[p.name] = value(p) as Row[string];
      for (const x of spec.derived) {
        if (x.derive === 'normalize-title' && x.from === p.name) row[x.name] = typeof value(p) === 'string' ? normalizeTitle(value(p) as string) : null;
        if (x.derive === 'less-than' && x.from === p.name) row[x.name] = typeof value(p) === 'number' ? (value(p) as number) < x.value : null;
      }
    }
    for (const x of spec.derived) if (x.derive === 'load-time') row[x.name] = NOW;
    return { row };
  };
}

function compiledOutcome(rt: SchemaRecordType, data: unknown): Outcome {
  const d = rt.codec.decode(data);
  if (d._tag === 'Right') return { row: rt.toRow(d.right, NOW) };
  // A failure's field: the property it is on (a derived column's failure names the column, from its property).
  const of = (key: string): string => rt.spec.properties.find((p) => p.name === key)?.name
    ?? (rt.spec.derived.find((x) => x.name === key) as { from?: string } | undefined)?.from ?? '';
  return { failed: [...new Set(d.left.map((e) => of(e.context[e.context.length - 1]?.key ?? '')))].sort() };
}

const wrongType = fc.constantFrom<unknown>(null, true, false, 0, 1, -1, '', '1999', [], {}, [1], { a: 1 }, NaN, Infinity, -0);
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('a\u0000b', '\ud800', 'x\udfffy', '!!!', '', '   ', '___', 'Hello, World!', 'Amélie', 'Stone & Ed', '東京物語', 'İİ', 'e\u0301', 'ABC-1234'),
  // around the limits: 255 / 500 / 512, in one- and two-unit characters, and 'İ', whose lower case is two units
  fc.tuple(fc.integer({ min: 240, max: 620 }), fc.constantFrom('x', 'é', '😀', ' a', '!', 'İ', 'ß')).map(([n, c]) => c.repeat(Math.ceil(n / c.length))),
);
const integer = fc.oneof(fc.integer(), fc.constantFrom(0, -0, 1, -1, 5, 10, 999_999, 1_000_000, 1_000_001, 2 ** 31, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1.5), fc.maxSafeInteger());
const number = fc.oneof(integer, fc.double(), fc.constantFrom(4, 4.5, NaN, Infinity, -Infinity));
const date = fc.oneof(
  fc.constantFrom('2020-02-29', '2021-02-29', '2021-02-30', '2021-2-3', '2021-02-03T00:00', '0000-01-01', '9999-12-31', '2021-13-01', '2021-00-10', '２０２１-01-01', '2021-01-01\u0000', '\ud800'),
  fc.tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }))
    .map(([y, m, d]) => `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`),
);
const formatted = fc.oneof(date, fc.uuid(), fc.emailAddress(), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom('2024-03-02T14:30:00', '2024-03-02T14:30:00+01:00', '2016-12-31T23:59:60Z', 'a@b', 'not a uuid'));
const either = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 10, arbitrary: good }, { weight: 1, arbitrary: wrongType }, { weight: 1, arbitrary: fc.anything() });
const valueOf = (p: PropertySpec): fc.Arbitrary<unknown> => {
  const good = p.type === 'string' ? (p.format === 'date' ? date : p.format !== undefined ? formatted : text) : p.type === 'integer' ? integer : p.type === 'number' ? number : fc.boolean();
  // The schema's own bounds and lengths, and their neighbours: where an off-by-one would show.
  const edges = [p.minimum, p.maximum, p.exclusiveMinimum, p.exclusiveMaximum].filter((b): b is number => b !== undefined).flatMap((b) => [b - 1, b, b + 1, b + 0.5]);
  const lengths = [p.minLength, p.maxLength].filter((b): b is number => b !== undefined).flatMap((n) => [n - 1, n, n + 1].filter((m) => m >= 0).map((m) => 'x'.repeat(m)));
  const near = [...edges, ...lengths];
  const bounded = near.length === 0 ? good : fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: fc.constantFrom(...near) });
  const listed = p.enum === undefined ? bounded : fc.oneof(bounded, fc.constantFrom(...p.enum));
  return either(p.nullable ? fc.oneof({ weight: 5, arbitrary: listed }, { weight: 1, arbitrary: fc.constant(null) }) : listed);
};

/** A data object: mostly the type's fields (each maybe missing), with extra unknown fields, or anything at all. */
function dataOf(spec: SchemaSpec): fc.Arbitrary<unknown> {
  const fields = Object.fromEntries(spec.properties.map((p) => [p.name, valueOf(p)]));
  const all = fc.record(fields);
  const some = fc.record(fields, { requiredKeys: [] });
  const extra = fc.dictionary(fc.string({ maxLength: 12 }), fc.anything(), { maxKeys: 3 });
  return fc.oneof(
    { weight: 3, arbitrary: all },
    { weight: 2, arbitrary: some },
    { weight: 2, arbitrary: fc.tuple(extra, all).map(([e, a]) => ({ ...e, ...a })) },
    { weight: 1, arbitrary: fc.anything() },
  );
}

/** Random property schemas: every keyword of the format, in combinations that compile. */
const propertySchema: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({
    type: fc.constantFrom<unknown>('integer', 'number', ['integer', 'null'], ['number', 'null']),
    minimum: fc.option(fc.integer({ min: -10, max: 10 }), { nil: undefined }),
    maximum: fc.option(fc.integer({ min: 10, max: 2_000_000 }), { nil: undefined }),
    exclusiveMinimum: fc.option(fc.double({ min: -10, max: 10, noNaN: true }), { nil: undefined }),
    exclusiveMaximum: fc.option(fc.constantFrom(1_000_000, 2 ** 40), { nil: undefined }),
  }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constantFrom<unknown>('boolean', ['boolean', 'null']) }),
  fc.record({ type: fc.constant('integer'), enum: fc.uniqueArray(fc.constantFrom(0, 1, 5, 10, -1), { minLength: 1 }) }),
  fc.record({
    type: fc.constantFrom<unknown>('string', ['string', 'null']),
    minLength: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
    maxLength: fc.option(fc.constantFrom(5, 255, 500, 600), { nil: undefined }),
    pattern: fc.option(fc.constantFrom('^[A-Z]{3}-[0-9]{4}$', 'a', '^\\p{L}+$', '^.{0,3}$'), { nil: undefined }),
  }, { requiredKeys: ['type'] }),
  fc.record({ type: fc.constant('string'), format: fc.constantFrom('date', 'date-time', 'email', 'uuid'), maxLength: fc.constant(254) }),
  fc.record({ type: fc.constant('string'), enum: fc.uniqueArray(fc.constantFrom('EUR', 'USD', 'GBP', ''), { minLength: 1 }) }),
);

const randomSchema = fc.record({
  props: fc.uniqueArray(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e'), propertySchema, fc.boolean()), { selector: ([n]) => n, minLength: 1, maxLength: 5 }),
  title: fc.option(fc.record({ nonEmpty: fc.boolean(), maxLength: fc.option(fc.constantFrom(3, 500), { nil: undefined }) }), { nil: undefined }),
  lessThan: fc.option(fc.double({ min: -5, max: 2_000_000, noNaN: true }), { nil: undefined }),
  defaults: fc.boolean(),
}).map(({ props, title, lessThan, defaults }) => {
  const properties: Record<string, unknown> = { k: { type: 'integer' } };
  const required = ['k'];
  const derived: Record<string, unknown> = { at: { derive: 'load-time' } };
  for (const [name, schema, isRequired] of props) {
    const p = { ...schema };
    for (const k of Object.keys(p)) if (p[k] === undefined) delete p[k];
    const nullable = Array.isArray(p.type);
    if (p.minLength !== undefined && p.maxLength !== undefined && (p.minLength as number) > (p.maxLength as number)) delete p.minLength;
    if (Array.isArray(p.enum) && nullable) p.enum = [...(p.enum as unknown[]), null];
    if (isRequired) required.push(name);
    // A default must pass the property's own rules: null for a nullable one is always such a value.
    else if (defaults && nullable) p.default = null;
    properties[name] = p;
  }
  const firstString = props.find(([, s]) => s.type === 'string' && s.format === undefined && s.enum === undefined && s.pattern === undefined)?.[0];
  if (title !== undefined && firstString !== undefined) derived['n'] = { derive: 'normalize-title', from: firstString, nonEmpty: title.nonEmpty, ...(title.maxLength === undefined ? {} : { maxLength: title.maxLength }) };
  const firstNumber = props.find(([, s]) => s.type === 'integer' || s.type === 'number')?.[0];
  if (lessThan !== undefined && firstNumber !== undefined) derived['lt'] = { derive: 'less-than', from: firstNumber, value: lessThan };
  return { title: 'r', type: 'object', 'x-table': 'r', properties, required, 'x-derived': derived, 'x-key': ['k'] };
});

function agree(rt: SchemaRecordType, data: unknown): boolean {
  const got = compiledOutcome(rt, data);
  expect(got, JSON.stringify(data)).to.deep.equal(reference(rt.spec)(data));
  return 'row' in got;
}

describe('the compiled validator agrees with io-ts combinators reading the same schema (fast-check)', () => {
  for (const rt of [song, movie, app]) {
    it(`${rt.type}: the same decision, row and failing fields for random and malformed data`, () => {
      let accepted = 0;
      let rejected = 0;
      fc.assert(fc.property(dataOf(rt.spec), (data) => {
        if (agree(rt, data)) accepted++;
        else rejected++;
      }), { numRuns: 3000 });
      // The generators reach both sides of every rule, not only rejections.
      expect(accepted, 'accepted records').to.be.greaterThan(25);
      expect(rejected, 'rejected records').to.be.greaterThan(100);
    });
  }

  it('random schemas (every keyword): the same decision, row and failing fields for random data', () => {
    let accepted = 0;
    fc.assert(fc.property(randomSchema.chain((doc) => {
      const rt = compileSchemaDocument('random.json', doc);
      return fc.tuple(fc.constant(rt), fc.array(dataOf(rt.spec), { minLength: 20, maxLength: 20 }));
    }), ([rt, records]) => {
      for (const data of records) if (agree(rt, data)) accepted++;
    }), { numRuns: 300 });
    expect(accepted, 'accepted records').to.be.greaterThan(300);
  });
});
