import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { expect } from 'chai';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { decodeStream, decodeWhole, DEFAULT_RULES, validateBatch, type FormatRules } from '../../src/formats/index.js';
import { Catalog } from '../../src/schemas/catalog.js';
import { rowsOf, type Rejection } from '../../src/validate.js';
import type { IngestError } from '../../src/errors.js';

/** A type with a property for each Parquet column the tests write. */
const catalog = new Catalog([{
  file: 'event.json',
  doc: {
    title: 'event',
    type: 'object',
    'x-table': 'events',
    properties: {
      id: { type: 'integer' },
      n: { type: ['integer', 'null'] },
      price: { type: ['number', 'null'] },
      paid: { type: ['boolean', 'null'] },
      note: { type: ['string', 'null'] },
      day: { type: ['string', 'null'], format: 'date' },
      at: { type: ['string', 'null'], format: 'date-time' },
    },
    required: ['id'],
    'x-key': ['id'],
  },
}]);
const RULES: FormatRules = { ...DEFAULT_RULES, routes: [{ glob: 'events/**', type: 'event' }] };

interface Column {
  name: string;
  data: unknown[];
  type: string;
  converted_type?: string;
  logical_type?: unknown;
  repetition_type?: string;
}

/** A Parquet file of these columns (all optional unless said), in row groups of `rowGroupSize` rows. */
function parquetFile(columns: Column[], rowGroupSize = 2): Buffer {
  const schema = [{ name: 'root', num_children: columns.length }, ...columns.map(({ data: _, ...el }) => ({ repetition_type: 'OPTIONAL', ...el }))];
  return Buffer.from(parquetWriteBuffer({ columnData: columns.map((c) => ({ name: c.name, data: c.data })), schema, rowGroupSize } as never));
}

const d = (s: string): Date => new Date(s);
/** Rows of each kind: int32, int64 (with one beyond 2^53, one null), double, boolean, string, date, timestamp. */
const FILE = parquetFile([
  { name: 'id', data: [1, 2, 3, 4, 5], type: 'INT32', repetition_type: 'REQUIRED' },
  { name: 'n', data: [10n, -9007199254740991n, 9007199254740993n, null, 7n], type: 'INT64' },
  { name: 'price', data: [1.5, null, 0, -2.25, 1e300], type: 'DOUBLE' },
  { name: 'paid', data: [true, false, null, true, false], type: 'BOOLEAN' },
  { name: 'note', data: ['héllo', '', null, 'x', 'y'], type: 'BYTE_ARRAY', converted_type: 'UTF8' },
  { name: 'day', data: [d('2024-02-29'), d('1969-12-31'), null, d('2000-01-01'), d('2024-01-02')], type: 'INT32', converted_type: 'DATE' },
  { name: 'at', data: [d('2024-01-02T03:04:05.678Z'), new Date(-1), null, d('2024-01-02T00:00:00.000Z'), d('2024-01-02T00:00:00.001Z')], type: 'INT64', converted_type: 'TIMESTAMP_MILLIS' },
]);

async function* chunks(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

interface Loaded {
  rows: Record<string, unknown>[];
  rejections: Rejection[];
  firsts: number[];
}

/** Rows and rejections of a file, or its error; read whole and streamed (several chunk sizes, batches of 2), which must agree. */
async function load(key: string, body: Buffer, rules = RULES): Promise<{ whole: Loaded | string; streamed: Loaded | string }> {
  const type = catalog.typeFor('event');
  if (type === undefined) throw new Error('no event');
  const now = '2026-01-01T00:00:00.000Z';
  const error = (err: IngestError): string => `${err.code}: ${err.message}`;
  const collect = (files: ReturnType<typeof validateBatch>[], firsts: number[]): Loaded => ({
    rows: files.flatMap((f) => [...f.rows.values()].flatMap((cells) => rowsOf(type, cells))),
    rejections: files.flatMap((f) => f.rejections),
    firsts,
  });
  const whole = await decodeWhole(key, body, rules).then((b) => collect([validateBatch(catalog, b, now)], [b.first])).catch(error);
  let streamed: Loaded | string | undefined;
  for (const size of [3, 1 << 16]) {
    const s = await (async () => {
      const files = [];
      const firsts = [];
      for await (const b of decodeStream(key, chunks(body, size), rules, { batchRecords: 2, batchBytes: 1 << 20 })) {
        firsts.push(b.first);
        files.push(validateBatch(catalog, b, now));
      }
      return collect(files, firsts);
    })().catch(error);
    if (streamed !== undefined) expect(s, `chunks of ${size}`).to.deep.equal(streamed);
    streamed = s;
  }
  return { whole, streamed: streamed as Loaded | string };
}

const strip = (l: Loaded | string): unknown => (typeof l === 'string' ? l : { rows: l.rows, rejections: l.rejections });

describe('Parquet', () => {
  it('maps each type onto the schema: int32, int64, double, boolean, string, date, timestamp, nulls; whole and streamed alike', async () => {
    const { whole, streamed } = await load('events/a.parquet', FILE);
    expect(strip(streamed)).to.deep.equal(strip(whole));
    expect((whole as Loaded).rows).to.deep.equal([
      { id: 1, n: 10, price: 1.5, paid: true, note: 'héllo', day: '2024-02-29', at: '2024-01-02T03:04:05.678Z' },
      { id: 2, n: -9007199254740991, price: null, paid: false, note: '', day: '1969-12-31', at: '1969-12-31T23:59:59.999Z' },
      { id: 4, n: null, price: -2.25, paid: true, note: 'x', day: '2000-01-01', at: '2024-01-02T00:00:00.000Z' },
      { id: 5, n: 7, price: 1e300, paid: false, note: 'y', day: '2024-01-02', at: '2024-01-02T00:00:00.001Z' },
    ]);
  });

  it('rejects an INT64 beyond 2^53 (never a rounded number), at its row number, storing the row with its exact digits', async () => {
    const { whole, streamed } = await load('events/a.parquet', FILE);
    const expected = [{
      recordIndex: 2,
      type: 'event',
      reason: 'n: expected SafeInteger, got 9007199254740993',
      raw: '{"id":3,"n":9007199254740993,"price":0,"paid":null,"note":null,"day":null,"at":null}',
    }];
    expect((whole as Loaded).rejections).to.deep.equal(expected);
    expect((streamed as Loaded).rejections).to.deep.equal(expected);
  });

  it('streams row group by row group, each batch at its first row number, leaving no temporary file', async () => {
    const before = (await readdir(tmpdir())).filter((f) => f.startsWith('bucket-ingest-parquet-'));
    const { streamed } = await load('events/a.parquet', FILE);
    expect((streamed as Loaded).firsts).to.deep.equal([0, 2, 4]); // row groups of 2, 2, 1
    expect((await readdir(tmpdir())).filter((f) => f.startsWith('bucket-ingest-parquet-'))).to.deep.equal(before);
  });

  /** Every batch of a stream in batches of `batchRecords`: where each starts, and all its records in order. */
  async function streamedRecords(key: string, body: Buffer, batchRecords: number): Promise<{ firsts: number[]; records: unknown[] }> {
    const firsts: number[] = [];
    const records: unknown[] = [];
    for await (const b of decodeStream(key, chunks(body, 1 << 12), RULES, { batchRecords, batchBytes: 1 << 20 })) {
      expect(b.records.length).to.be.at.most(batchRecords);
      firsts.push(b.first);
      records.push(...b.records);
    }
    return { firsts, records };
  }

  it('reads a row group larger than a batch page by page, in batches at their row numbers: the records read whole', async () => {
    // One row group of 1,000 rows over many small pages (a dictionary-encoded column among them), batches of 64.
    const n = 1000;
    const body = Buffer.from(parquetWriteBuffer({
      columnData: [
        { name: 'id', data: Array.from({ length: n }, (_, i) => i) },
        { name: 'n', data: Array.from({ length: n }, (_, i) => (i % 3 === 0 ? null : BigInt(i * 1000))) },
        { name: 'paid', data: Array.from({ length: n }, (_, i) => (i % 5 === 0 ? null : i % 2 === 0)) },
        { name: 'note', data: Array.from({ length: n }, (_, i) => (i % 7 === 0 ? null : `note ${i % 4}`)) },
        { name: 'day', data: Array.from({ length: n }, (_, i) => new Date(Date.UTC(2024, 0, 1 + (i % 40)))) },
      ],
      schema: [
        { name: 'root', num_children: 5 }, { name: 'id', type: 'INT32', repetition_type: 'REQUIRED' }, { name: 'n', type: 'INT64', repetition_type: 'OPTIONAL' },
        { name: 'paid', type: 'BOOLEAN', repetition_type: 'OPTIONAL' }, { name: 'note', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'day', type: 'INT32', converted_type: 'DATE', repetition_type: 'OPTIONAL' },
      ],
      rowGroupSize: n,
      pageSize: 256,
    } as never));
    const whole = (await decodeWhole('events/p.parquet', body, RULES)).records;
    const day = (i: number): string => new Date(Date.UTC(2024, 0, 1 + (i % 40))).toISOString().slice(0, 10);
    expect(whole).to.deep.equal(Array.from({ length: n }, (_, i) => [i, i % 3 === 0 ? null : i * 1000, i % 5 === 0 ? null : i % 2 === 0, i % 7 === 0 ? null : `note ${i % 4}`, day(i)]));
    const { firsts, records } = await streamedRecords('events/p.parquet', body, 64);
    expect(firsts).to.deep.equal(Array.from({ length: Math.ceil(n / 64) }, (_, i) => i * 64));
    expect(records).to.deep.equal(whole);
  });

  it('reads a file with a nested column (a list) by row ranges, in batches: the records read whole', async () => {
    const n = 50;
    const body = Buffer.from(parquetWriteBuffer({
      columnData: [
        { name: 'id', data: Array.from({ length: n }, (_, i) => i) },
        { name: 'tags', data: Array.from({ length: n }, (_, i) => (i % 4 === 0 ? null : Array.from({ length: i % 3 }, (_, k) => `t${k}`))) },
      ],
      schema: [
        { name: 'root', num_children: 2 }, { name: 'id', type: 'INT32', repetition_type: 'REQUIRED' },
        { name: 'tags', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      ],
      rowGroupSize: 20,
    } as never));
    const whole = (await decodeWhole('events/l.parquet', body, RULES)).records;
    expect(whole.slice(0, 3)).to.deep.equal([[0, null], [1, ['t0']], [2, ['t0', 't1']]]);
    const { firsts, records } = await streamedRecords('events/l.parquet', body, 8);
    expect(firsts).to.deep.equal([0, 8, 16, 20, 28, 36, 40, 48]); // row groups of 20, 20, 10
    expect(records).to.deep.equal(whole);
  });

  it('keeps microseconds and nanoseconds of a timestamp, and rejects binary with no string annotation', async () => {
    const body = parquetFile([
      { name: 'id', data: [1, 2], type: 'INT32', repetition_type: 'REQUIRED' },
      { name: 'at', data: [1704164645678901n, -1n], type: 'INT64', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' } },
      { name: 'note', data: [null, new Uint8Array([0xca, 0xfe])], type: 'BYTE_ARRAY' },
    ]);
    const { whole } = await load('events/b.parquet', body);
    expect((whole as Loaded).rows).to.deep.equal([{ id: 1, n: null, price: null, paid: null, note: null, day: null, at: '2024-01-02T03:04:05.678901Z' }]);
    expect((whole as Loaded).rejections).to.deep.equal([{
      recordIndex: 1,
      type: 'event',
      reason: 'note: expected string, got 2 bytes of binary (a BYTE_ARRAY with no string annotation)',
      raw: '{"id":2,"at":"1969-12-31T23:59:59.999999Z","note":"cafe"}',
    }]);
    const nanos = parquetFile([
      { name: 'id', data: [1], type: 'INT32', repetition_type: 'REQUIRED' },
      { name: 'at', data: [1704164645678901234n], type: 'INT64', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'NANOS' } },
    ]);
    expect(((await load('events/c.parquet', nanos)).whole as Loaded).rows[0]?.['at']).to.equal('2024-01-02T03:04:05.678901234Z');
  });

  it('is detected by its first bytes PAR1 where the key says nothing', async () => {
    const { whole } = await load('events/a.data', FILE);
    expect((whole as Loaded).rows).to.have.length(4);
  });

  it('fails a corrupt or cut file with BI_DECODE, whole and streamed, leaving no temporary file', async () => {
    const before = (await readdir(tmpdir())).filter((f) => f.startsWith('bucket-ingest-parquet-'));
    for (const body of [FILE.subarray(0, FILE.length - 100), FILE.subarray(0, 10), Buffer.concat([FILE.subarray(0, FILE.length - 4), Buffer.from('PAR2')])]) {
      const { whole, streamed } = await load('events/a.parquet', body);
      expect(whole).to.match(/^BI_DECODE: events\/a\.parquet: not Parquet, or corrupt \(/);
      expect(streamed).to.equal(whole);
    }
    const pages = Buffer.from(FILE);
    pages.fill(0xff, 4, 60); // the first column chunk's pages
    const { whole } = await load('events/a.parquet', pages);
    expect(whole).to.match(/^BI_DECODE: events\/a\.parquet: not Parquet, or corrupt \(/);
    expect((await readdir(tmpdir())).filter((f) => f.startsWith('bucket-ingest-parquet-'))).to.deep.equal(before);
  });

  it('fails a file whose UTF8 column holds bytes that are not UTF-8 with BI_DECODE (no U+FFFD loaded)', async () => {
    const body = parquetFile([{ name: 'id', data: [1], type: 'INT32', repetition_type: 'REQUIRED' }, { name: 'note', data: [new Uint8Array([0x61, 0xff])], type: 'BYTE_ARRAY', converted_type: 'UTF8' }]);
    const { whole, streamed } = await load('events/a.parquet', body);
    expect(whole).to.match(/^BI_DECODE: events\/a\.parquet: not Parquet, or corrupt \(.*(invalid|encoded)/i);
    expect(streamed).to.equal(whole);
  });

  it('reads a DECIMAL of up to 15 digits as a number, and fails a file with a wider one rather than round it', async () => {
    const decimal = (precision: number, data: unknown[]): Buffer => parquetFile([
      { name: 'id', data: [1, 2], type: 'INT32', repetition_type: 'REQUIRED' },
      { name: 'price', data, type: 'FIXED_LEN_BYTE_ARRAY', type_length: 16, converted_type: 'DECIMAL', precision, scale: 2 } as Column,
    ]);
    const ok = (await load('events/a.parquet', decimal(15, [12.34, -0.5]))).whole as Loaded;
    expect(ok.rows.map((r) => r['price'])).to.deep.equal([12.34, -0.5]);
    const { whole, streamed } = await load('events/a.parquet', decimal(20, [12.34, 1]));
    expect(whole).to.equal('BI_DECODE: events/a.parquet: column price is DECIMAL(20, 2), more digits than a number holds exactly (15); not read rather than rounded');
    expect(streamed).to.equal(whole);
  });

  it('fails a file no route matches with BI_ROUTE', async () => {
    const { whole, streamed } = await load('other/a.parquet', FILE);
    expect(whole).to.equal('BI_ROUTE: other/a.parquet: no ROUTES glob matches this key, and Parquet records carry no type');
    expect(streamed).to.equal(whole);
  });
});
