import { inspect } from 'node:util';
import { expect } from 'chai';
import { DecodePool, inThread } from '../../src/formats/threads/pool.js';
import { ConfigError } from '../../src/errors.js';
import { hashPii } from '../../src/records/pii.js';
import { formatErrors } from '../../src/records/reasons.js';
import { Catalog, compileSchemaDocument, type SchemaRecordType } from '../../src/schemas/index.js';
import { rowsOf, validateRecords } from '../../src/validate.js';

/**
 * Fields the schema does not know (`x-extra`: ignore, rescue, reject) and personal data (`x-pii: "hash"`): what is
 * stored, what a rejection says and keeps, and that the raw value of personal data is in none of them.
 */

const NOW = '2024-05-01T12:34:56.789Z';
const KEY = 'k3y-for-the-tests-ZQ';

function schema(extra: Record<string, unknown> = {}, props: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    title: 'visit',
    type: 'object',
    'x-table': 'visits',
    properties: { id: { type: 'string', maxLength: 40 }, n: { type: 'integer' }, tag: { type: 'string', default: 'none' }, ...props },
    required: ['id'],
    'x-key': ['id'],
    ...extra,
  };
}

function compile(extra: Record<string, unknown> = {}, props: Record<string, unknown> = {}, piiKey?: string): SchemaRecordType {
  return compileSchemaDocument('visit.json', schema(extra, props), { piiKey });
}

/** `ok` and the row, or the reason as a rejection would store it. */
function run(rt: SchemaRecordType, data: Record<string, unknown>): string {
  const d = rt.codec.decode(data);
  return d._tag === 'Left' ? formatErrors(d.left) : `ok ${JSON.stringify(rt.toRow(d.right, NOW))}`;
}

describe('x-extra: properties the schema does not declare', () => {
  it('ignore (the default): dropped, no column for them, the record valid', () => {
    for (const rt of [compile(), compile({ 'x-extra': 'ignore' })]) {
      expect(rt.columns.map((c) => c.name)).to.deep.equal(['id', 'n', 'tag']);
      expect(run(rt, { id: 'a', referrer: 'x', n: 1 })).to.equal('ok {"id":"a","n":1,"tag":"none"}');
    }
  });

  it('rescue: one nullable text column _rescued, last, holding exactly the unknown properties as one JSON object, NULL when none', () => {
    const rt = compile({ 'x-extra': 'rescue' });
    expect(rt.columns.at(-1)).to.deep.equal({ name: '_rescued', kind: 'text', nullable: true });
    expect(rt.columns.map((c) => c.name)).to.deep.equal(['id', 'n', 'tag', '_rescued']);
    expect(run(rt, { id: 'a', n: 1 })).to.equal('ok {"id":"a","n":1,"tag":"none","_rescued":null}');
    // A default filled in is not rescued; unknown values are kept as they came, nested ones too, in the record's order.
    const row = rt.toRow((rt.codec.decode({ referrer: 'https://x', id: 'a', deep: { a: [1, { b: null }] }, flag: false }) as { right: Record<string, unknown> }).right, NOW);
    expect(JSON.parse(row._rescued as string)).to.deep.equal({ referrer: 'https://x', deep: { a: [1, { b: null }] }, flag: false });
    expect(row._rescued).to.equal('{"referrer":"https://x","deep":{"a":[1,{"b":null}]},"flag":false}');
  });

  it('rescue keeps a property named __proto__ or _rescued as data, and a value nested deeper than JSON.stringify recurses', () => {
    const rt = compile({ 'x-extra': 'rescue' });
    const data = JSON.parse('{"id":"a","__proto__":{"x":1},"_rescued":"theirs"}') as Record<string, unknown>;
    const row = rt.toRow((rt.codec.decode(data) as { right: Record<string, unknown> }).right, NOW);
    expect(row._rescued).to.equal('{"__proto__":{"x":1},"_rescued":"theirs"}');
    const deep = JSON.parse(`{"id":"a","d":${'['.repeat(20_000)}${']'.repeat(20_000)}}`) as Record<string, unknown>;
    const deepRow = rt.toRow((rt.codec.decode(deep) as { right: Record<string, unknown> }).right, NOW);
    expect(deepRow._rescued).to.equal(`{"d":${'['.repeat(20_000)}${']'.repeat(20_000)}}`);
  });

  it('rescue: an invalid record is rejected for its own failures, its unknown properties not named', () => {
    expect(run(compile({ 'x-extra': 'rescue' }), { id: 'a', n: 'x', referrer: 1 })).to.equal('n: expected SafeInteger, got "x"');
  });

  it('reject: a record with unknown properties is a rejection naming them, with its other failures', () => {
    const rt = compile({ 'x-extra': 'reject' });
    expect(rt.columns.map((c) => c.name)).to.deep.equal(['id', 'n', 'tag']);
    expect(run(rt, { id: 'a', n: 2 })).to.equal('ok {"id":"a","n":2,"tag":"none"}');
    expect(run(rt, { id: 'a', referrer: 'https://x', x: 1 })).to.equal('data: unknown properties "referrer", "x" (x-extra is "reject")');
    expect(run(rt, { id: 'a', n: 1.5, x: 1 })).to.equal('n: expected SafeInteger, got 1.5; data: unknown property "x" (x-extra is "reject")');
    const many = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`p${i}`, i]));
    expect(run(rt, { id: 'a', ...many })).to.equal(
      `data: unknown properties ${Array.from({ length: 10 }, (_, i) => `"p${i}"`).join(', ')} and 2 more (x-extra is "reject")`);
  });

  it('reject, through validateRecords: a stored rejection of the file, the valid records loaded', () => {
    const catalog = new Catalog([{ file: 'visit.json', doc: schema({ 'x-extra': 'reject' }) }]);
    const out = validateRecords(catalog, [{ type: 'visit', data: { id: 'a' } }, { type: 'visit', data: { id: 'b', extra: 1 } }], NOW);
    expect(out.loaded).to.equal(1);
    expect(out.rejections).to.deep.equal([
      { recordIndex: 1, type: 'visit', reason: 'data: unknown property "extra" (x-extra is "reject")', raw: '{"type":"visit","data":{"id":"b","extra":1}}' },
    ]);
  });
});

describe('x-pii: "hash": personal data', () => {
  const EMAIL = { email: { type: 'string', format: 'email', maxLength: 254 } };
  const customer = (piiKey?: string, extra: Record<string, unknown> = {}) => compileSchemaDocument('schemas/customer.json', {
    title: 'customer',
    type: 'object',
    'x-table': 'customers',
    properties: { email: { ...EMAIL.email, 'x-pii': 'hash' }, name: { type: 'string', maxLength: 50 } },
    required: ['email'],
    'x-key': ['email'],
    ...extra,
  }, { piiKey });

  it('refuses to compile without PII_HASH_KEY, in one BI_CONFIG line naming the file and the property', () => {
    for (const piiKey of [undefined, '']) {
      let err: unknown;
      try {
        customer(piiKey);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(ConfigError);
      expect((err as ConfigError).message).to.equal('PII_HASH_KEY is not set, and schemas/customer.json at #/properties/email/x-pii declares "email" ' +
        'personal data, stored only as its keyed hash: set PII_HASH_KEY (environment or config.ini) to a secret key');
    }
    // A schema without personal data needs no key.
    expect(compile().type).to.equal('visit');
  });

  it('stores the HMAC-SHA256 of the value in a bounded string column of 64, also in the key, whatever maxLength the raw value has', () => {
    const rt = customer(KEY);
    expect(rt.columns).to.deep.equal([{ name: 'email', kind: 'string', nullable: false }, { name: 'name', kind: 'string', nullable: true }]);
    const out = run(rt, { email: 'maria@example.com', name: 'M' });
    expect(out).to.equal(`ok {"email":"${hashPii(KEY, 'maria@example.com')}","name":"M"}`);
    expect(out).to.not.contain('maria');
    // Deterministic, so a key of it still matches; another key, another hash.
    expect(run(customer(KEY), { email: 'maria@example.com' })).to.equal(run(rt, { email: 'maria@example.com' }).replace(',"name":"M"', ',"name":null'));
    expect(run(customer('other key'), { email: 'maria@example.com' })).to.not.equal(run(rt, { email: 'maria@example.com' }));
    // Without x-pii, a key column of maxLength 1000 is refused; hashed, it holds 64 characters.
    const long = compileSchemaDocument('l.json', {
      title: 'l', type: 'object', 'x-table': 'l', properties: { s: { type: 'string', maxLength: 1000, 'x-pii': 'hash' } }, required: ['s'], 'x-key': ['s'],
    }, { piiKey: KEY });
    expect(long.columns).to.deep.equal([{ name: 's', kind: 'string', nullable: false }]);
    expect(() => compileSchemaDocument('l.json', {
      title: 'l', type: 'object', 'x-table': 'l', properties: { s: { type: 'string', maxLength: 1000 } }, required: ['s'], 'x-key': ['s'],
    })).to.throw(/column holds at most 500 characters: declare "maxLength" of at most 500, not 1000/);
    // The decoded data is a copy: the record itself keeps its value.
    const data = { email: 'maria@example.com' };
    rt.codec.decode(data);
    expect(data.email).to.equal('maria@example.com');
  });

  it('validates the raw value first (format, maxLength), and a reason never quotes it', () => {
    const rt = customer(KEY);
    expect(run(rt, { email: 'not an email' })).to.equal('email: expected Email, got a string of 12 characters');
    expect(run(rt, { email: `${'a'.repeat(250)}@x.io` })).to.equal('email: expected Email, got a string of 255 characters');
    expect(run(rt, { email: 5551234 })).to.equal('email: expected Email, got a number');
    expect(run(rt, { email: ['a@b.io'] })).to.equal('email: expected Email, got an array of 1 element');
    expect(run(rt, {})).to.equal('email: expected Email, got missing');
    const short = compileSchemaDocument('s.json', {
      title: 's', type: 'object', 'x-table': 's', properties: { id: { type: 'string', maxLength: 9 }, p: { type: 'string', maxLength: 3, 'x-pii': 'hash' } }, required: ['id'], 'x-key': ['id'],
    }, { piiKey: KEY });
    expect(run(short, { id: 'a', p: 'secret' })).to.equal('p: expected at most 3 characters (has 6), got a string of 6 characters');
    expect(run(short, { id: 'a', p: null })).to.equal('p: expected string, got null');
  });

  it('a rejection stores the record with its personal values hashed, a non-string one by the hash of its JSON text, null kept', () => {
    const doc = customerDoc();
    doc.properties = { ...(doc.properties as object), phone: { type: ['string', 'null'], 'x-pii': 'hash' } };
    const catalog = new Catalog([{ file: 'customer.json', doc }], { piiKey: KEY });
    const records = [
      { type: 'customer', data: { email: 'ana@example.com', name: 7 } }, // valid email, another field fails
      { type: 'customer', data: { email: 'ana at example', phone: '+34 600 000 000' } },
      { type: 'customer', data: { email: 5551234, phone: null } },
      { type: 'customer', data: 'ana@example.com' }, // data not an object: all of it may be personal
      { type: 'customer', data: { email: 'bob@example.com', phone: '+1 555' } },
    ];
    const out = validateRecords(catalog, records, NOW);
    expect(out.loaded).to.equal(1);
    expect(out.rejections.map((r) => r.reason)).to.deep.equal([
      'name: expected string, got 7',
      'email: expected Email, got a string of 14 characters',
      'email: expected Email, got a number',
      'data: expected object, got a string of 15 characters',
    ]);
    expect(out.rejections.map((r) => JSON.parse(r.raw) as unknown)).to.deep.equal([
      { type: 'customer', data: { email: hashPii(KEY, 'ana@example.com'), name: 7 } },
      { type: 'customer', data: { email: hashPii(KEY, 'ana at example'), phone: hashPii(KEY, '+34 600 000 000') } },
      { type: 'customer', data: { email: hashPii(KEY, '5551234'), phone: null } },
      { type: 'customer', data: hashPii(KEY, 'ana@example.com') },
    ]);
    const [type, cells] = [...out.rows][0] as [SchemaRecordType, []];
    expect(rowsOf(type, cells)).to.deep.equal([{ email: hashPii(KEY, 'bob@example.com'), phone: hashPii(KEY, '+1 555'), name: null }]);
    const everything = JSON.stringify(out);
    for (const raw of ['ana@', 'ana at', '600 000', '5551234', 'bob@', '+1 555']) expect(everything).to.not.contain(raw);
    // The records as they came are not altered.
    expect(records[0]?.data).to.deep.equal({ email: 'ana@example.com', name: 7 });
  });

  it('the key is held by the catalog for the decoding threads, never shown when it is printed or serialized', () => {
    const catalog = new Catalog([{ file: 'customer.json', doc: customerDoc() }], { piiKey: KEY });
    expect(catalog.options.piiKey).to.equal(KEY);
    expect(JSON.stringify(catalog)).to.not.contain(KEY);
    expect(inspect(catalog, { depth: 10 })).to.not.contain(KEY);
  });

  it('decoding threads hash with the same key as the main thread', async function () {
    this.timeout(30_000);
    const catalog = new Catalog([{ file: 'customer.json', doc: customerDoc() }], { piiKey: KEY });
    const body = JSON.stringify([
      { type: 'customer', data: { email: 'ana@example.com' } }, { type: 'customer', data: { email: 'bad', name: 'x' } },
    ]);
    const pool = new DecodePool(catalog, 1);
    try {
      const threaded = await pool.decode('a.data', Buffer.from(body), NOW);
      expect(threaded).to.deep.equal(await inThread(catalog).decode('a.data', Buffer.from(body), NOW));
      expect([...threaded.rows.values()][0]).to.deep.equal([hashPii(KEY, 'ana@example.com'), null]);
      expect(JSON.stringify(threaded)).to.not.contain('ana@').and.not.contain('"bad"');
    } finally {
      await pool.close();
    }
  });

  function customerDoc(): Record<string, unknown> {
    return {
      title: 'customer', type: 'object', 'x-table': 'customers',
      properties: { email: { ...EMAIL.email, 'x-pii': 'hash' }, name: { type: 'string', maxLength: 50 } }, required: ['email'], 'x-key': ['email'],
    };
  }
});
