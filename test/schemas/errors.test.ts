import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { IngestError } from '../../src/errors.js';
import { compileSchemaDocument, loadSchemaDirectory } from '../../src/schemas/index.js';
import { RUN_ID } from '../helpers/run-id.js';

type Doc = Record<string, unknown>;

function base(): Doc {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'thing',
    type: 'object',
    'x-table': 'things',
    properties: { id: { type: 'string', maxLength: 255 }, n: { type: 'integer' }, s: { type: 'string' } },
    required: ['id'],
    'x-key': ['id'],
  };
}

function props(doc: Doc): Record<string, Doc> {
  return doc['properties'] as Record<string, Doc>;
}

/** The one BI_SCHEMA message compiling `base()` changed by `change` gives. */
function errorOf(change: (doc: Doc) => void): string {
  const doc = base();
  change(doc);
  try {
    compileSchemaDocument('schemas/thing.json', doc);
  } catch (err) {
    expect(err).to.be.instanceOf(IngestError);
    expect((err as IngestError).code).to.equal('BI_SCHEMA');
    expect((err as IngestError).retriable).to.equal(false);
    return (err as Error).message;
  }
  throw new Error('expected a BI_SCHEMA error');
}

describe('schema files: every error names the file, the JSON pointer and what is wrong', () => {
  it('the base schema compiles (so each case below fails for its own change only)', () => {
    expect(compileSchemaDocument('schemas/thing.json', base()).table).to.equal('things');
  });

  const cases: Array<[string, (d: Doc) => void, string]> = [
    ['an unknown top-level keyword', (d) => { d['additionalProperties'] = false; }, 'at #/additionalProperties: unknown keyword "additionalProperties" in a record-type schema'],
    ['an unknown property keyword', (d) => { props(d)['n']!['multipleOf'] = 2; }, 'at #/properties/n/multipleOf: unknown keyword "multipleOf" in a property'],
    ['a $ref', (d) => { props(d)['n'] = { $ref: '#/$defs/n' }; }, 'at #/properties/n/$ref: $ref is not supported: declare the property inline'],
    ['another draft', (d) => { d['$schema'] = 'http://json-schema.org/draft-07/schema#'; }, 'at #/$schema: only JSON Schema draft 2020-12 is supported'],
    ['no title', (d) => { delete d['title']; }, 'at #/title: title (the record type) must be a non-empty string of at most 255 characters, got undefined'],
    ['not type object', (d) => { d['type'] = 'array'; }, 'at #/type: a record-type schema has "type": "object", got "array"'],
    ['a table name that is not a plain identifier', (d) => { d['x-table'] = 'my table; drop'; }, 'at #/x-table: x-table (the table name) must be a plain identifier'],
    ['an upper-case table name', (d) => { d['x-table'] = 'Things'; }, 'at #/x-table: x-table (the table name) must be a plain identifier'],
    ["the daemon's own table", (d) => { d['x-table'] = 'rejected_records'; }, 'at #/x-table: table "rejected_records" is the daemon\'s own'],
    ["the daemon's migration table", (d) => { d['x-table'] = 'bucket_ingest_migrations'; }, 'at #/x-table: table "bucket_ingest_migrations" is the daemon\'s own'],
    // As JSON.parse reads a schema file: an own property named __proto__.
    ['a property named __proto__', (d) => { Object.defineProperty(props(d), '__proto__', { value: { type: 'string' }, enumerable: true }); }, 'at #/properties/__proto__: column "__proto__" cannot be declared'],
    ['a rescued-fields column', (d) => { props(d)['_rescued'] = { type: 'string' }; }, 'at #/properties/_rescued: column "_rescued" is the daemon\'s own'],
    ['x-pii other than "hash"', (d) => { props(d)['s']!['x-pii'] = 'mask'; }, 'at #/properties/s/x-pii: x-pii must be "hash"'],
    ['x-pii on a number', (d) => { props(d)['n']!['x-pii'] = 'hash'; }, 'at #/properties/n/x-pii: x-pii applies to a string property; "n" is "integer"'],
    ['a column kind for a hashed property', (d) => { props(d)['s']!['x-pii'] = 'hash'; props(d)['s']!['x-column'] = 'text'; }, 'at #/properties/s/x-column: a hashed property is stored as 64 hex characters'],
    ['a column derived from personal data', (d) => {
      props(d)['s']!['x-pii'] = 'hash'; d['x-derived'] = { s_n: { derive: 'normalize-title', from: 's' } };
    }, 'at #/x-derived/s_n/from: "s" is personal data (x-pii): nothing may be derived from its raw value'],
    ['an unknown x-extra policy', (d) => { d['x-extra'] = 'keep'; }, 'at #/x-extra: x-extra must be "ignore", "rescue", "reject", got "keep"'],
    ['no properties', (d) => { d['properties'] = {}; }, 'at #/properties: properties must be a non-empty object'],
    ['a property name that is not an identifier', (d) => { props(d)['a-b'] = { type: 'string' }; }, 'at #/properties/a-b: a property name (it is a column) must be a plain identifier'],
    ['a provenance column', (d) => { props(d)['loaded_at'] = { type: 'string' }; }, 'at #/properties/loaded_at: column "loaded_at" is the daemon\'s own (provenance)'],
    ['a property that is not an object', (d) => { props(d)['n'] = 'integer' as unknown as Doc; }, 'at #/properties/n: a property must be a schema object, got "integer"'],
    ['an unknown type', (d) => { props(d)['n']!['type'] = 'object'; }, 'at #/properties/n/type: type must be "string", "integer", "number" or "boolean"'],
    ['a type list without null', (d) => { props(d)['n']!['type'] = ['integer', 'string']; }, 'at #/properties/n/type: a type list must be one type and "null"'],
    ['required naming no property', (d) => { d['required'] = ['id', 'nope']; }, 'at #/required/1: "nope" is not a property of this schema'],
    ['required twice', (d) => { d['required'] = ['id', 'id']; }, 'at #/required/1: "id" is listed twice'],
    ['minimum on a string', (d) => { props(d)['s']!['minimum'] = 1; }, 'at #/properties/s/minimum: minimum does not apply to type "string"'],
    ['maxLength on an integer', (d) => { props(d)['n']!['maxLength'] = 1; }, 'at #/properties/n/maxLength: maxLength does not apply to type "integer"'],
    ['a bound that is not a number', (d) => { props(d)['n']!['maximum'] = '9'; }, 'at #/properties/n/maximum: maximum must be a number, got "9"'],
    ['a negative maxLength', (d) => { props(d)['s']!['maxLength'] = -1; }, 'at #/properties/s/maxLength: maxLength must be a non-negative integer, got -1'],
    ['minLength above maxLength', (d) => { Object.assign(props(d)['s']!, { minLength: 3, maxLength: 2 }); }, 'at #/properties/s/minLength: minLength 3 is greater than maxLength 2'],
    ['a bad pattern', (d) => { props(d)['s']!['pattern'] = '(['; }, 'at #/properties/s/pattern: pattern is not a valid regular expression'],
    ['an unknown format', (d) => { props(d)['s']!['format'] = 'ipv4'; }, 'at #/properties/s/format: format must be one of "date", "date-time", "email", "uuid", got "ipv4"'],
    ['an empty enum', (d) => { props(d)['s']!['enum'] = []; }, 'at #/properties/s/enum: enum must be a non-empty array'],
    ['an enum value of another type', (d) => { props(d)['n']!['enum'] = [1, '2']; }, 'at #/properties/n/enum/1: "2" is not a value of type "integer"'],
    ['a nullable enum without null', (d) => { props(d)['n'] = { type: ['integer', 'null'], enum: [1, 2] }; }, 'at #/properties/n/enum: the type allows null, so the enum must list null too'],
    ['a column kind the type cannot have', (d) => { props(d)['n']!['x-column'] = 'text'; }, 'at #/properties/n/x-column: x-column for type "integer" must be "bigint" or "integer", got "text"'],
    ['a 32-bit column without bounds', (d) => { props(d)['n']!['x-column'] = 'integer'; }, 'at #/properties/n/x-column: an "integer" column holds 32 bits'],
    ['a default on a required property', (d) => { props(d)['id']!['default'] = 'x'; }, 'at #/properties/id/default: a required property never takes its default'],
    ['a default that fails its own property', (d) => { Object.assign(props(d)['n']!, { minimum: 1, default: 0 }); }, 'at #/properties/n/default: the default 0 is not a value of this property: expected SafeInteger >= 1'],
    ['no key', (d) => { delete d['x-key']; }, 'at #/x-key: x-key must be a non-empty array of column names (the upsert key), got undefined'],
    ['a key naming nothing', (d) => { d['x-key'] = ['nope']; }, 'at #/x-key/0: "nope" is neither a property nor a derived column'],
    ['a key property that is not required', (d) => { d['x-key'] = ['id', 'n']; }, 'at #/x-key/1: key part "n" must be a required property: a record without it has no key'],
    ['a nullable key property', (d) => { props(d)['id']!['type'] = ['string', 'null']; }, 'at #/x-key/0: key part "id" must not be nullable'],
    ['a key column without its bound', (d) => { delete props(d)['id']!['maxLength']; }, 'at #/properties/id: a key "text" column holds at most 500 characters: declare "maxLength" of at most 500'],
    ['a key column bound above its limit', (d) => { Object.assign(props(d)['id']!, { maxLength: 300, 'x-column': 'string' }); }, 'at #/properties/id/maxLength: a key "string" column holds at most 255 characters: declare "maxLength" of at most 255, not 300'],
    ['x-derived not an object', (d) => { d['x-derived'] = []; }, 'at #/x-derived: x-derived must be an object of derived columns'],
    ['an unknown derivation', (d) => { d['x-derived'] = { x: { derive: 'sql', from: 'n' } }; }, 'at #/x-derived/x/derive: derive must be one of "normalize-title", "less-than", "load-time", got "sql"'],
    ['a derivation keyword of another derivation', (d) => { d['x-derived'] = { x: { derive: 'load-time', value: 1 } }; }, 'at #/x-derived/x/value: unknown keyword "value" in a "load-time" derivation'],
    ['a derived column named like a property', (d) => { d['x-derived'] = { n: { derive: 'load-time' } }; }, 'at #/x-derived/n: "n" is already a property'],
    ['a derivation from no property', (d) => { d['x-derived'] = { x: { derive: 'less-than', from: 'm', value: 1 } }; }, 'at #/x-derived/x/from: from must name a property of this schema, got "m"'],
    ['a derivation from a property of the wrong type', (d) => { d['x-derived'] = { x: { derive: 'less-than', from: 's', value: 1 } }; }, 'at #/x-derived/x/from: "less-than" derives from a property of type "integer" or "number"; "s" is "string"'],
    ['less-than without a number', (d) => { d['x-derived'] = { x: { derive: 'less-than', from: 'n', value: '1' } }; }, 'at #/x-derived/x/value: value must be a number, got "1"'],
    ['the load time in the key', (d) => { d['x-derived'] = { t: { derive: 'load-time' } }; d['x-key'] = ['t']; }, 'at #/x-key/0: "t" is the load time, which no two loads share: it cannot be part of the key'],
    ['a derived key part from an optional property', (d) => { d['x-derived'] = { k: { derive: 'normalize-title', from: 's', maxLength: 10 } }; d['x-key'] = ['k']; },
      'at #/x-key/0: key part "k" (through "s", its source) must be a required property'],
    ['a derived key column without its bound', (d) => { d['x-derived'] = { k: { derive: 'normalize-title', from: 'id' } }; d['x-key'] = ['k']; },
      'at #/x-derived/k: a key "text" column holds at most 500 characters: declare "maxLength" of at most 500'],
  ];
  it('refuses a document that is not an object', () => {
    expect(() => compileSchemaDocument('schemas/thing.json', [base()])).to.throw('schemas/thing.json at #: a schema must be a JSON object, got [{');
  });

  for (const [what, change, expected] of cases) {
    it(`refuses ${what}`, () => {
      const message = errorOf(change);
      expect(message.startsWith('schemas/thing.json at #'), message).to.equal(true);
      expect(message).to.contain(expected);
    });
  }
});

describe('loadSchemaDirectory', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), `bi-schemas-${RUN_ID}-`));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (name: string, doc: unknown): void => writeFileSync(join(dir, name), typeof doc === 'string' ? doc : JSON.stringify(doc));
  const failure = (): string => {
    try {
      loadSchemaDirectory(dir);
    } catch (err) {
      expect((err as IngestError).code).to.equal('BI_SCHEMA');
      return (err as Error).message;
    }
    throw new Error('expected a BI_SCHEMA error');
  };

  it('compiles the bundled MacPaw schemas in name order', () => {
    expect(loadSchemaDirectory('schemas').map((t) => `${t.type}:${t.table}`)).to.deep.equal(['app:apps', 'movie:movies', 'song:songs']);
  });

  it('reads only *.json files, in name order', () => {
    write('b.json', { ...base(), title: 'b', 'x-table': 'bs' });
    write('a.json', base());
    write('notes.txt', 'not a schema');
    expect(loadSchemaDirectory(dir).map((t) => t.type)).to.deep.equal(['thing', 'b']);
  });

  it('reads a symbolic link to a schema file (as a ConfigMap mounts it), not one to a directory', () => {
    write('real.txt', base());
    symlinkSync(join(dir, 'real.txt'), join(dir, 'a.json'));
    symlinkSync(dir, join(dir, 'b.json'));
    expect(loadSchemaDirectory(dir).map((t) => t.type)).to.deep.equal(['thing']);
  });

  it('refuses a file that is not JSON, naming it', () => {
    write('bad.json', '{"title": ');
    expect(failure()).to.match(new RegExp(`^${join(dir, 'bad.json')} at #: not a JSON file: `));
  });

  it('refuses two files of one type, or of one table', () => {
    write('a.json', base());
    write('b.json', { ...base(), 'x-table': 'others' });
    expect(failure()).to.equal(`${join(dir, 'b.json')} at #/title: record type "thing" is already declared by ${join(dir, 'a.json')}`);
    write('b.json', { ...base(), title: 'other' });
    expect(failure()).to.equal(`${join(dir, 'b.json')} at #/x-table: table "things" is already the table of ${join(dir, 'a.json')}`);
  });

  it('refuses an empty or missing directory', () => {
    expect(failure()).to.equal(`${dir}: no *.json schema files`);
    rmSync(dir, { recursive: true });
    expect(failure()).to.match(new RegExp(`^${dir}: cannot read the schema directory: ENOENT`));
  });

  it('names the file of a schema error', () => {
    write('a.json', { ...base(), 'x-table': '1things' });
    expect(failure()).to.match(new RegExp(`^${join(dir, 'a.json')} at #/x-table: x-table \\(the table name\\) must be a plain identifier`));
  });
});
