import { expect } from 'chai';
import fc from 'fast-check';
import type * as t from 'io-ts';
import { app, movie, song, type RecordType, type Row } from '../../src/records/index.js';
import { describeValue, formatErrors } from '../../src/records/reasons.js';
import { loadSchemaDirectory, type SchemaRecordType } from '../../src/schemas/index.js';
import { rowsOf, validateRecords } from '../../src/validate.js';

/**
 * The compiled schemas/*.json against the coded types of src/records/, over random and malformed `data`: the same
 * decision, the same row, the same reason. The one documented difference is a string longer than its column allows:
 * the coded path checks it after the codec passed (validate.ts: `title: longer than 500 characters (501), the
 * column's limit`), the schema says it as `maxLength` in the codec, so the reason has the form of every other part
 * (`title: expected at most 500 characters (has 501), got "xxx…"`) and is listed with the record's other failures.
 */

const NOW = '2024-05-01T12:34:56.789Z';
const compiled = new Map(loadSchemaDirectory('schemas').map((rt) => [rt.type, rt]));
const CODED: readonly RecordType[] = [song, movie, app];
const LENGTH_RE = /^expected at most (\d+) characters \(has (\d+)\)$/;

type Outcome = { row: Row } | { reason: string };

/** The coded path as the pipeline runs it: classify, then the column limits. */
function coded(type: RecordType, data: unknown): Outcome {
  const out = validateRecords([{ type: type.type, data }], NOW);
  if (out.rejections.length === 1) return { reason: out.rejections[0]!.reason };
  expect(out.loaded).to.equal(1);
  return { row: rowsOf(type, out.rows.get(type) ?? [])[0] as Row };
}

/**
 * What the compiled type gives, and what the coded path gives by the documented difference: its non-length failures
 * in the coded reason's words, or (when the value is too long only) the coded limit's words for the first such column.
 */
function compiledAsCoded(rt: SchemaRecordType, data: unknown): { outcome: Outcome; lengthReason?: string } {
  const d = rt.codec.decode(data);
  if (d._tag === 'Right') return { outcome: { row: rt.toRow(d.right, NOW) } };
  const errors: t.ValidationError[] = d.left.filter((e) => e.message === undefined || !LENGTH_RE.test(e.message));
  if (errors.length > 0) return { outcome: { reason: formatErrors(errors) } };
  const first = d.left[0] as t.ValidationError;
  const [, limit, has] = LENGTH_RE.exec(first.message as string) as RegExpExecArray;
  const column = first.context[first.context.length - 1]?.key as string;
  return {
    outcome: { reason: `${column}: longer than ${limit} characters (${has}), the column's limit` },
    lengthReason: `${column}: expected at most ${limit} characters (has ${has}), got ${describeValue(first.value)}`,
  };
}

const wrongType = fc.constantFrom<unknown>(null, true, false, 0, 1, -1, '', '1999', [], {}, [1], { a: 1 }, NaN, Infinity, -0);
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('a\u0000b', '\ud800', 'x\udfffy', '!!!', '', '   ', '___', 'Hello, World!', 'Amélie', 'Stone & Ed', '東京物語', 'İİ', 'e\u0301'),
  // around the limits: 255 / 500 / 512, in one- and two-unit characters, and 'İ', whose lower case is two units
  fc.tuple(fc.integer({ min: 240, max: 620 }), fc.constantFrom('x', 'é', '😀', ' a', '!', 'İ', 'ß')).map(([n, c]) => c.repeat(Math.ceil(n / c.length))),
);
const integer = fc.oneof(fc.integer(), fc.constantFrom(0, -0, 1, -1, 999_999, 1_000_000, 1_000_001, 2 ** 31, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1.5), fc.maxSafeInteger());
const number = fc.oneof(integer, fc.double(), fc.constantFrom(4, 4.5, NaN, Infinity, -Infinity));
const date = fc.oneof(
  fc.constantFrom('2020-02-29', '2021-02-29', '2021-02-30', '2021-2-3', '2021-02-03T00:00', '0000-01-01', '9999-12-31', '2021-13-01', '2021-00-10', '２０２１-01-01', '2021-01-01\u0000', '\ud800'),
  fc.tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }))
    .map(([y, m, d]) => `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`),
);
const either = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 10, arbitrary: good }, { weight: 1, arbitrary: wrongType }, { weight: 1, arbitrary: fc.anything() });
const FIELDS: Record<string, Record<string, fc.Arbitrary<unknown>>> = {
  song: { artist_name: either(text), title: either(text), year: either(integer), release: either(text) },
  movie: { original_title: either(text), original_language: either(text), budget: either(integer), is_adult: either(fc.boolean()), release_date: either(date) },
  app: { name: either(text), genre: either(text), version: either(text), rating: either(number), size_bytes: either(integer) },
};

/** A data object: mostly the type's fields (each maybe missing), with extra unknown fields, or anything at all. */
function dataOf(type: string): fc.Arbitrary<Record<string, unknown>> {
  const fields = FIELDS[type] as Record<string, fc.Arbitrary<unknown>>;
  const all = fc.record(fields);
  const some = fc.record(fields, { requiredKeys: [] });
  const extra = fc.dictionary(fc.string({ maxLength: 12 }), fc.anything(), { maxKeys: 3 });
  return fc.oneof(
    { weight: 3, arbitrary: all },
    { weight: 2, arbitrary: some },
    { weight: 2, arbitrary: fc.tuple(extra, all).map(([e, a]) => ({ ...e, ...a })) },
    { weight: 1, arbitrary: fc.object() as fc.Arbitrary<Record<string, unknown>> },
  );
}

describe('compiled schemas agree with the coded record types (fast-check)', () => {
  for (const type of CODED) {
    const rt = compiled.get(type.type) as SchemaRecordType;

    it(`${type.type}: the same table, key and columns (names and kinds, in order)`, () => {
      expect(rt.table).to.equal(type.table);
      expect(rt.key).to.deep.equal(type.key);
      expect(rt.columns.map((c) => ({ name: c.name, kind: c.kind }))).to.deep.equal(type.columns);
      expect(rt.columns.every((c) => !c.nullable)).to.equal(true);
    });

    it(`${type.type}: the same decision, row and reason for random and malformed data`, () => {
      let accepted = 0;
      let lengthOnly = 0;
      fc.assert(
        fc.property(dataOf(type.type), (data) => {
          const want = coded(type, data);
          const got = compiledAsCoded(rt, data);
          expect(got.outcome).to.deep.equal(want);
          if ('row' in want) accepted++;
          if (got.lengthReason !== undefined) {
            lengthOnly++;
            const d = rt.codec.decode(data);
            expect(d._tag === 'Left' && formatErrors(d.left).startsWith(got.lengthReason)).to.equal(true);
          }
        }),
        { numRuns: 3000 },
      );
      // The generators reach both sides of every rule, not only rejections.
      expect(accepted, 'accepted records').to.be.greaterThan(100);
      expect(lengthOnly, 'records too long only').to.be.greaterThan(5);
    });
  }

  it('the documented difference, on one record: every failing field named, the limit in the form of the other parts', () => {
    const data = { artist_name: 'a'.repeat(256), title: 't', year: '1999', release: 'r' };
    expect(coded(song, data)).to.deep.equal({ reason: 'year: expected SafeInteger, got "1999"' });
    const d = (compiled.get('song') as SchemaRecordType).codec.decode(data);
    expect(d._tag === 'Left' && formatErrors(d.left)).to.equal(
      `artist_name: expected at most 255 characters (has 256), got "${'a'.repeat(58)}…; year: expected SafeInteger, got "1999"`);
    expect(coded(song, { ...data, year: 1999 })).to.deep.equal({ reason: "artist_name: longer than 255 characters (256), the column's limit" });
  });
});
