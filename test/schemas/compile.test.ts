import { expect } from 'chai';
import { formatErrors } from '../../src/records/reasons.js';
import { compileSchemaDocument, type SchemaRecordType } from '../../src/schemas/index.js';
import { isDateTime } from '../../src/schemas/formats.js';

const NOW = '2024-05-01T12:34:56.789Z';

/** A schema of type `thing` keyed by a required `id`, with `props` (required when listed in `required`). */
function thing(props: Record<string, unknown>, required: string[] = [], extra: Record<string, unknown> = {}): SchemaRecordType {
  return compileSchemaDocument('thing.json', {
    title: 'thing',
    type: 'object',
    'x-table': 'things',
    properties: { id: { type: 'string', maxLength: 255 }, ...props },
    required: ['id', ...required],
    'x-key': ['id'],
    ...extra,
  });
}

/** `ok` and the row, or the reason as a rejection would store it. */
function run(rt: SchemaRecordType, data: Record<string, unknown>): string {
  const d = rt.codec.decode({ id: 'k', ...data });
  return d._tag === 'Left' ? formatErrors(d.left) : `ok ${JSON.stringify(rt.toRow(d.right, NOW))}`;
}

describe('schema compiler: keywords', () => {
  it('type string: strings only, text only (no U+0000, no lone surrogate), the empty string allowed', () => {
    const rt = thing({ s: { type: 'string' } }, ['s']);
    expect(run(rt, { s: '' })).to.equal('ok {"id":"k","s":""}');
    expect(run(rt, { s: 5 })).to.equal('s: expected string, got 5');
    expect(run(rt, {})).to.equal('s: expected string, got missing');
    expect(run(rt, { s: null })).to.equal('s: expected string, got null');
    expect(run(rt, { s: 'a\u0000b' })).to.equal('s: expected text without U+0000 or lone surrogates, got "a\\u0000b"');
    expect(run(rt, { s: '\ud800' })).to.equal('s: expected text without U+0000 or lone surrogates, got "\\ud800"');
  });

  it('type integer: safe integers only, never strings or fractions; number: finite numbers only', () => {
    const rt = thing({ i: { type: 'integer' }, n: { type: 'number' } }, ['i', 'n']);
    expect(run(rt, { i: -3, n: 4 })).to.equal('ok {"id":"k","i":-3,"n":4}');
    expect(run(rt, { i: 2 ** 53, n: 4.5 })).to.equal('i: expected SafeInteger, got 9007199254740992');
    expect(run(rt, { i: '1', n: NaN })).to.equal('i: expected SafeInteger, got "1"; n: expected FiniteNumber, got NaN');
    expect(run(rt, { i: 1.5, n: '4' })).to.equal('i: expected SafeInteger, got 1.5; n: expected FiniteNumber, got "4"');
    expect(thing({ i: { type: 'integer', 'x-column': 'integer', minimum: 0, maximum: 10 } }).columns[1]).to.deep.equal({ name: 'i', kind: 'integer', nullable: true });
  });

  it('type boolean: true and false only', () => {
    const rt = thing({ b: { type: 'boolean' } }, ['b']);
    expect(run(rt, { b: false })).to.equal('ok {"id":"k","b":false}');
    expect(run(rt, { b: 0 })).to.equal('b: expected boolean, got 0');
    expect(run(rt, { b: 'true' })).to.equal('b: expected boolean, got "true"');
  });

  it('a type list with "null": null is a value (NULL), anything else is checked', () => {
    const rt = thing({ i: { type: ['integer', 'null'] } }, ['i']);
    expect(run(rt, { i: null })).to.equal('ok {"id":"k","i":null}');
    expect(run(rt, { i: 2 })).to.equal('ok {"id":"k","i":2}');
    expect(run(rt, { i: 'x' })).to.equal('i: expected SafeInteger | null, got "x"');
    expect(run(rt, {})).to.equal('i: expected SafeInteger | null, got missing');
    expect(rt.columns[1]?.nullable).to.equal(true);
  });

  it('required: a missing required property rejects; a missing optional one is NULL, a null optional one rejects', () => {
    const rt = thing({ o: { type: 'string' } });
    expect(run(rt, {})).to.equal('ok {"id":"k","o":null}');
    expect(run(rt, { o: null })).to.equal('o: expected string, got null');
  });

  it('enum: one of the listed values, by type (1 is not "1")', () => {
    const rt = thing({ e: { type: 'string', enum: ['a', 'b'] }, n: { type: ['integer', 'null'], enum: [1, 2, null] } }, ['e']);
    expect(run(rt, { e: 'b', n: null })).to.equal('ok {"id":"k","e":"b","n":null}');
    expect(run(rt, { e: 'c', n: 3 })).to.equal('e: expected "a" | "b", got "c"; n: expected 1 | 2 | null, got 3');
    expect(run(rt, { e: 'a', n: '1' })).to.equal('n: expected 1 | 2 | null, got "1"');
    // A string enum bounds its values: a bounded column without a maxLength, in the key too.
    expect(rt.columns.find((c) => c.name === 'e')?.kind).to.equal('string');
    const keyed = compileSchemaDocument('k.json', {
      title: 'k', type: 'object', 'x-table': 'k', properties: { cur: { type: 'string', enum: ['EUR', 'USD'] } }, required: ['cur'], 'x-key': ['cur'],
    });
    expect(keyed.columns.map((c) => [c.name, c.kind])).to.deep.equal([['cur', 'string']]);
  });

  it('minimum, maximum, exclusiveMinimum, exclusiveMaximum, named in the reason; minimum 0 alone is NonNegativeSafeInteger', () => {
    const rt = thing({
      a: { type: 'integer', minimum: 1, maximum: 12 },
      b: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
      c: { type: 'integer', minimum: 0 },
    }, ['a', 'b', 'c']);
    expect(run(rt, { a: 1, b: 0.5, c: 0 })).to.equal('ok {"id":"k","a":1,"b":0.5,"c":0}');
    expect(run(rt, { a: 12, b: 0.999, c: 7 })).to.match(/^ok /);
    expect(run(rt, { a: 0, b: 0, c: -1 })).to.equal(
      'a: expected SafeInteger >= 1 and <= 12, got 0; b: expected FiniteNumber > 0 and < 1, got 0; c: expected NonNegativeSafeInteger, got -1');
    expect(run(rt, { a: 13, b: 1, c: '0' })).to.equal(
      'a: expected SafeInteger >= 1 and <= 12, got 13; b: expected FiniteNumber > 0 and < 1, got 1; c: expected NonNegativeSafeInteger, got "0"');
  });

  it('minLength and maxLength, in UTF-16 code units (the measure of the column limits), saying how long the value is', () => {
    const rt = thing({ s: { type: 'string', minLength: 2, maxLength: 3 } }, ['s']);
    expect(run(rt, { s: 'ab' })).to.match(/^ok /);
    expect(run(rt, { s: 'abc' })).to.match(/^ok /);
    expect(run(rt, { s: 'a' })).to.equal('s: expected at least 2 characters (has 1), got "a"');
    expect(run(rt, { s: 'abcd' })).to.equal('s: expected at most 3 characters (has 4), got "abcd"');
    expect(run(rt, { s: '😀😀' })).to.equal('s: expected at most 3 characters (has 4), got "😀😀"');
    expect(run(thing({ s: { type: 'string', minLength: 1 } }, ['s']), { s: '' })).to.equal('s: expected at least 1 character (has 0), got ""');
  });

  it('pattern: an ECMAScript regular expression with Unicode semantics, unanchored as JSON Schema says', () => {
    const rt = thing({ s: { type: 'string', pattern: '^[A-Z]{2}\\p{N}$' } }, ['s']);
    expect(run(rt, { s: 'AB٣' })).to.match(/^ok /);
    expect(run(rt, { s: 'ab1' })).to.equal('s: expected string matching /^[A-Z]{2}\\p{N}$/, got "ab1"');
    expect(run(thing({ s: { type: 'string', pattern: 'x' } }, ['s']), { s: 'axb' })).to.match(/^ok /);
  });

  it('format date: a real calendar date, YYYY-MM-DD exactly', () => {
    const rt = thing({ d: { type: 'string', format: 'date' } }, ['d']);
    expect(run(rt, { d: '2020-02-29' })).to.match(/^ok /);
    for (const bad of ['2021-02-29', '2021-2-3', '2021-02-03T00:00', '2021-13-01']) {
      expect(run(rt, { d: bad })).to.equal(`d: expected CalendarDate(YYYY-MM-DD), got "${bad}"`);
    }
    expect(run(rt, { d: 20200229 })).to.equal('d: expected CalendarDate(YYYY-MM-DD), got 20200229');
  });

  it('format date-time: RFC 3339 with an offset, a real date and time, leap seconds only at 23:59 UTC', () => {
    for (const ok of ['2024-05-01T12:34:56Z', '2024-05-01t12:34:56.789+02:00', '2016-12-31T23:59:60Z', '2017-01-01T00:59:60+01:00', '2024-02-29T00:00:00-23:59']) {
      expect(isDateTime(ok), ok).to.equal(true);
    }
    for (const bad of ['2024-05-01T12:34:56', '2024-05-01 12:34:56Z', '2023-02-29T00:00:00Z', '2024-05-01T24:00:00Z', '2024-05-01T12:60:00Z',
      '2024-05-01T12:00:60Z', '2024-05-01T12:00:00+24:00', '2024-05-01T12:00:00+0200', '2024-05-01T12:00Z']) {
      expect(isDateTime(bad), bad).to.equal(false);
    }
    const rt = thing({ t: { type: 'string', format: 'date-time' } }, ['t']);
    expect(run(rt, { t: '2024-05-01T12:34:56' })).to.equal('t: expected DateTime(RFC 3339 with offset), got "2024-05-01T12:34:56"');
  });

  it('format email and uuid', () => {
    const rt = thing({ e: { type: 'string', format: 'email' }, u: { type: 'string', format: 'uuid' } }, ['e', 'u']);
    expect(run(rt, { e: 'ann.lee+tag@mail.example.com', u: '123e4567-E89B-12d3-a456-426614174000' })).to.match(/^ok /);
    expect(run(rt, { e: 'ann@', u: '123e4567e89b12d3a456426614174000' })).to.equal(
      'e: expected Email, got "ann@"; u: expected UUID, got "123e4567e89b12d3a456426614174000"');
    for (const bad of ['@x.com', 'a b@x.com', 'a@-x.com', 'a@x..com', 'a..b@x.com', `${'a'.repeat(250)}@x.com`]) expect(run(rt, { e: bad, u: '00000000-0000-0000-0000-000000000000' }), bad).to.match(/^e: expected Email/);
  });

  it('default: a missing property takes it (the input object is not altered); a present one keeps its value', () => {
    const rt = thing({ n: { type: 'integer', default: 7 }, s: { type: ['string', 'null'], default: null } });
    const input = { id: 'k' };
    const d = rt.codec.decode(input);
    expect(d._tag === 'Right' && rt.toRow(d.right, NOW)).to.deep.equal({ id: 'k', n: 7, s: null });
    expect(input).to.deep.equal({ id: 'k' });
    expect(run(rt, { n: 1, s: 'x' })).to.equal('ok {"id":"k","n":1,"s":"x"}');
    expect(run(rt, { n: 'x' })).to.equal('n: expected SafeInteger, got "x"');
    expect(rt.columns.map((c) => c.nullable)).to.deep.equal([false, false, true]);
  });

  it('derived columns: normalize-title (nonEmpty, maxLength), less-than, load-time, each after its source, the load time last', () => {
    const rt = thing({ name: { type: 'string', 'x-column': 'text' }, size: { type: ['number', 'null'] } }, ['name'], {
      'x-derived': {
        when: { derive: 'load-time' },
        name_key: { from: 'name', derive: 'normalize-title', nonEmpty: true, maxLength: 5, 'x-column': 'text' },
        small: { from: 'size', derive: 'less-than', value: 10 },
      },
    });
    expect(rt.columns.map((c) => `${c.name}:${c.kind}`)).to.deep.equal(['id:string', 'name:text', 'name_key:text', 'size:float', 'small:boolean', 'when:string']);
    expect(run(rt, { name: ' Hé Yo! ', size: 9.5 })).to.equal(`ok {"id":"k","name":" Hé Yo! ","name_key":"hé_yo","size":9.5,"small":true,"when":"${NOW}"}`);
    expect(run(rt, { name: 'a', size: 10 })).to.match(/"small":false/);
    expect(run(rt, { name: 'a' })).to.match(/"size":null,"small":null/);
    expect(run(rt, { name: '!!!' })).to.equal('name: expected TitleWithLetterOrDigit, got "!!!"');
    expect(run(rt, { name: 7 })).to.equal('name: expected TitleWithLetterOrDigit, got 7');
    expect(run(rt, { name: 'abc def' })).to.equal('name_key: expected at most 5 characters (has 7), got "abc_def"');
  });

  it('every failing property is named, in the order of the schema, as t.type does', () => {
    const rt = thing({ a: { type: 'integer' }, b: { type: 'boolean' } }, ['a', 'b']);
    expect(run(rt, { b: 1 })).to.equal('a: expected SafeInteger, got missing; b: expected boolean, got 1');
    expect(rt.codec.decode([])._tag).to.equal('Left');
    expect(rt.codec.decode(null)._tag).to.equal('Left');
  });

  it('unknown properties of the data are ignored', () => {
    expect(run(thing({}), { extra: { deep: [1] } })).to.equal('ok {"id":"k"}');
  });
});

describe('schema compiler: generated toRow', () => {
  it('holds only checked identifiers: a column name parse.ts would refuse is refused again', async () => {
    const { rowBuilder } = await import('../../src/schemas/row.js');
    const spec = { name: 'x', pointer: '', column: 'string', derive: 'load-time' } as const;
    expect(rowBuilder([spec])({}, NOW)).to.deep.equal({ x: NOW });
    expect(() => rowBuilder([{ ...spec, name: 'x: 1 }; process.exit(); ({ y' }])).to.throw('unsafe column name');
    expect(() => rowBuilder([{ derive: 'less-than', name: 'x', pointer: '', column: 'boolean', from: 'a', value: NaN }])).to.throw('not a finite number');
  });
});
