import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { decodeStream, decodeWhole, DEFAULT_RULES, validateBatch, type FormatRules } from '../../src/formats/index.js';
import { checkRoutes } from '../../src/formats/routes.js';
import { settingsCodec } from '../../src/config/schema.js';
import { Catalog } from '../../src/schemas/catalog.js';
import { rowsOf, type Rejection } from '../../src/validate.js';
import type { IngestError } from '../../src/errors.js';

/** A type with one property of each JSON type; `x-extra` as asked. */
function catalogWith(extra: 'ignore' | 'rescue' | 'reject'): Catalog {
  return new Catalog([{
    file: 'order.json',
    doc: {
      title: 'order',
      type: 'object',
      'x-table': 'orders',
      'x-extra': extra,
      properties: {
        id: { type: 'integer' },
        quantity: { type: 'integer' },
        price: { type: ['number', 'null'] },
        paid: { type: 'boolean' },
        note: { type: 'string' },
        day: { type: 'string', format: 'date' },
      },
      required: ['id', 'quantity', 'day'],
      'x-key': ['id'],
    },
  }]);
}
const catalog = catalogWith('ignore');

function rulesWith(routes: string, delimiter = ','): FormatRules {
  const decoded = settingsCodec.props.ROUTES.decode(routes);
  if (decoded._tag === 'Left') throw new Error('bad routes');
  return { ...DEFAULT_RULES, routes: decoded.right, csvDelimiter: delimiter };
}
const RULES = rulesWith('orders/**=order');

async function* chunks(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

interface Loaded {
  rows: Record<string, unknown>[];
  rejections: Rejection[];
}

/** Rows and rejections of a file, or its error; read whole and streamed (several chunk sizes, batches of 2), which must agree. */
async function load(key: string, text: string | Buffer, rules = RULES, types = catalog): Promise<Loaded | string> {
  const body = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const type = types.typeFor('order');
  if (type === undefined) throw new Error('no order');
  const collect = (files: ReturnType<typeof validateBatch>[]): Loaded => ({
    rows: files.flatMap((f) => [...f.rows.values()].flatMap((cells) => rowsOf(type, cells))),
    rejections: files.flatMap((f) => f.rejections),
  });
  const error = (err: IngestError): string => `${err.code}: ${err.message}`;
  const now = '2026-01-01T00:00:00.000Z';
  const whole = await decodeWhole(key, body, rules).then((b) => collect([validateBatch(types, b, now)])).catch(error);
  for (const size of [1, 7, 1 << 16]) {
    const streamed = await (async () => {
      const files = [];
      for await (const b of decodeStream(key, chunks(body, size), rules, { batchRecords: 2, batchBytes: 1 << 20 })) files.push(validateBatch(types, b, now));
      return collect(files);
    })().catch(error);
    expect(streamed, `chunks of ${size}`).to.deep.equal(whole);
  }
  return whole;
}

const HEADER = 'id,quantity,price,paid,note,day';

describe('CSV and TSV', () => {
  it('converts fields by the property types: integers, numbers, booleans, strings; an empty field is null or absent', async () => {
    const out = await load('orders/a.csv', `${HEADER}\n1,2,3.5,true,hi,2024-01-02\n2,-7,1e3,false,,2024-02-03\n3,0,,,x,2024-03-04\n`);
    expect(out).to.deep.equal({
      rows: [
        { id: 1, quantity: 2, price: 3.5, paid: true, note: 'hi', day: '2024-01-02' },
        { id: 2, quantity: -7, price: 1000, paid: false, note: null, day: '2024-02-03' },
        { id: 3, quantity: 0, price: null, paid: null, note: 'x', day: '2024-03-04' },
      ],
      rejections: [],
    });
  });

  it('rejects a field that does not convert, naming the column and line, storing the row as it was', async () => {
    const out = await load('orders/a.csv', `${HEADER}\n1,2,,,,2024-01-02\n2,2x,,,,2024-01-02\n\n3,9007199254740993,,,,2024-01-02\n4,1,NaN,,,2024-01-02\n5,1,,yes,,2024-01-02\n6,,,,,2024-01-02\n7,1,,,,2024-13-40\n`) as Loaded;
    expect(out.rows.map((r) => r['id'])).to.deep.equal([1]);
    expect(out.rejections.map((r) => [r.recordIndex, r.type, r.reason, r.raw])).to.deep.equal([
      [1, 'order', 'line 3: quantity: expected SafeInteger, got "2x"', '2,2x,,,,2024-01-02'],
      [2, 'order', 'line 5: quantity: expected SafeInteger, got "9007199254740993"', '3,9007199254740993,,,,2024-01-02'],
      [3, 'order', 'line 6: price: expected FiniteNumber, got "NaN"', '4,1,NaN,,,2024-01-02'],
      [4, 'order', 'line 7: paid: expected boolean, got "yes"', '5,1,,yes,,2024-01-02'],
      [5, 'order', 'line 8: quantity: expected SafeInteger, got null', '6,,,,,2024-01-02'],
      [6, 'order', 'line 9: day: expected CalendarDate(YYYY-MM-DD), got "2024-13-40"', '7,1,,,,2024-13-40'],
    ]);
  });

  it('reads quoting, embedded newlines, a BOM and CRLF with csv-parse; lines count from the row\'s first line', async () => {
    const text = `\uFEFF${HEADER}\r\n1,2,,,"a, ""quoted""\r\nnote",2024-01-02\r\n\r\n2,x,,,,2024-01-02\r\n3,3,,,"",2024-01-02`;
    const out = await load('orders/a.csv', text) as Loaded;
    expect(out.rows).to.deep.equal([
      { id: 1, quantity: 2, price: null, paid: null, note: 'a, "quoted"\r\nnote', day: '2024-01-02' },
      { id: 3, quantity: 3, price: null, paid: null, note: null, day: '2024-01-02' },
    ]);
    expect(out.rejections.map((r) => [r.recordIndex, r.reason, r.raw])).to.deep.equal([[1, 'line 5: quantity: expected SafeInteger, got "x"', '2,x,,,,2024-01-02']]);
  });

  it('uses CSV_DELIMITER for .csv and a tab for .tsv; each also gzip', async () => {
    const semi = await load('orders/a.csv', 'id;quantity;day\n1;2;2024-01-02\n', rulesWith('orders/**=order', ';')) as Loaded;
    expect(semi.rows.map((r) => [r['id'], r['quantity']])).to.deep.equal([[1, 2]]);
    const tsv = await load('orders/a.tsv', 'id\tquantity\tday\n1\t2\t2024-01-02\n', rulesWith('orders/**=order', ';')) as Loaded;
    expect(tsv.rows.map((r) => [r['id'], r['quantity']])).to.deep.equal([[1, 2]]);
    const gz = await load('orders/a.tsv.gz', gzipSync('id\tquantity\tday\n1\t2\t2024-01-02\n2\tz\t2024-01-02\n')) as Loaded;
    expect(gz.rows.map((r) => r['id'])).to.deep.equal([1]);
    expect(gz.rejections.map((r) => [r.recordIndex, r.reason])).to.deep.equal([[1, 'line 3: quantity: expected SafeInteger, got "z"']]);
    expect(await load('orders/a.csv.gz', gzipSync(`${HEADER}\n1,2,,,,2024-01-02\n`))).to.have.nested.property('rows[0].id', 1);
  });

  it('fails the file up front when a required property without a default has no column, naming them', async () => {
    expect(await load('orders/a.csv', 'id,note\n1,x\n')).to.equal('BI_SCHEMA: orders/a.csv: no column for required properties quantity, day of type order (header: id, note)');
  });

  it('a row with more or fewer fields than the header is a rejection of that row', async () => {
    const out = await load('orders/a.csv', `${HEADER}\n1,2,,,,2024-01-02,extra\n2,2\n3,3,,,,2024-01-02\n`) as Loaded;
    expect(out.rows.map((r) => r['id'])).to.deep.equal([3]);
    expect(out.rejections.map((r) => [r.recordIndex, r.reason, r.raw])).to.deep.equal([
      [0, 'line 2: 7 fields, the header has 6', '1,2,,,,2024-01-02,extra'],
      [1, 'line 3: 2 fields, the header has 6', '2,2'],
    ]);
  });

  it('an unknown column follows the type\'s x-extra policy: ignored, rescued, or the record rejected', async () => {
    const text = 'id,quantity,day,colour\n1,2,2024-01-02,red\n';
    expect(await load('orders/a.csv', text, RULES, catalogWith('ignore'))).to.have.nested.property('rows[0].id', 1);
    const rescued = await load('orders/a.csv', text, RULES, catalogWith('rescue')) as Loaded;
    expect(rescued.rows[0]?.['_rescued']).to.equal('{"colour":"red"}');
    const rejected = await load('orders/a.csv', text, RULES, catalogWith('reject')) as Loaded;
    expect(rejected.rows).to.deep.equal([]);
    expect(rejected.rejections.map((r) => [r.reason, r.raw])).to.deep.equal([['line 2: data: unknown property "colour" (x-extra is "reject")', '1,2,2024-01-02,red']]);
  });

  it('ROUTES: the first matching glob gives the type; none matches: BI_ROUTE naming the key; an undeclared type is refused', async () => {
    const rules = rulesWith('archive/**=nothing, orders/*.csv=order');
    expect(await load('orders/x.csv', 'id,quantity,day\n1,2,2024-01-02\n', rules)).to.have.nested.property('rows[0].id', 1);
    expect(await load('orders/sub/x.csv', 'id,quantity,day\n1,2,2024-01-02\n', rules)).to.equal('BI_ROUTE: orders/sub/x.csv: no ROUTES glob matches this key, and CSV records carry no type');
    expect(() => checkRoutes(rules.routes, (t) => catalog.typeFor(t) !== undefined)).to.throw('ROUTES: "archive/**=nothing" names type "nothing", which no schema of SCHEMAS declares');
    expect(settingsCodec.props.ROUTES.decode('a/**')._tag).to.equal('Left');
  });

  it('CSV_DELIMITER: one character, `\\t` a tab; anything else is refused', () => {
    const d = (u: string): unknown => { const r = settingsCodec.props.CSV_DELIMITER.decode(u); return r._tag === 'Right' ? r.right : 'refused'; };
    expect([d(';'), d('\\t'), d('|'), d(''), d(';;'), d('"'), d('\n')]).to.deep.equal([';', '\t', '|', 'refused', 'refused', 'refused', 'refused']);
  });

  it('a rejected row of a type with personal data stores the record with those values hashed, not the row', async () => {
    const types = new Catalog([{
      file: 'order.json',
      doc: { title: 'order', type: 'object', 'x-table': 'orders', properties: { id: { type: 'integer' }, quantity: { type: 'integer' }, day: { type: 'string' }, email: { type: 'string', 'x-pii': 'hash' } }, required: ['id', 'quantity', 'day'], 'x-key': ['id'] },
    }], { piiKey: 'k'.repeat(32) });
    const out = await load('orders/a.csv', 'id,quantity,day,email\n1,2x,d,someone@example.com\n2,2,d,other@example.com\n', RULES, types) as Loaded;
    expect(out.rows.map((r) => r['id'])).to.deep.equal([2]);
    expect(out.rejections).to.have.length(1);
    expect(out.rejections[0]?.reason).to.equal('line 2: quantity: expected SafeInteger, got "2x"');
    expect(out.rejections[0]?.raw).to.not.include('someone');
    expect(JSON.parse(out.rejections[0]?.raw ?? '')).to.have.nested.property('data.quantity', '2x');
  });

  it('a quote never closed fails the file, as bytes that are not UTF-8 do', async () => {
    expect(await load('orders/a.csv', `${HEADER}\n1,2,,,"open,2024-01-02\n`)).to.match(/^BI_DECODE: orders\/a\.csv: not CSV/);
    expect(await load('orders/a.csv', Buffer.concat([Buffer.from(`${HEADER}\n1,2,,,`), Buffer.from([0xff]), Buffer.from(',2024-01-02\n')]))).to.match(/^BI_DECODE: orders\/a\.csv: not UTF-8 \(invalid byte 0xff at byte 38\)/);
  });
});
