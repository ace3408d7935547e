import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { decodeStream, decodeWhole, DEFAULT_RULES, type FormatRules, type RecordBatch } from '../../src/formats/index.js';
import { settingsCodec } from '../../src/config/schema.js';
import type { IngestError } from '../../src/errors.js';
import { formatOfKey, isArchive, memberOf } from '../../src/formats/detect.js';

const records = [{ type: 'song', data: { title: 'a' } }, { type: 'movie', data: { title: 'b' } }];
const ARRAY = Buffer.from(JSON.stringify(records));
const LINES = Buffer.from(records.map((r) => JSON.stringify(r)).join('\n'));

async function* chunks(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

/**
 * The format a file is read as (NDJSON's batches carry line numbers) and its records, or its error: whole, and
 * streamed in chunks of several sizes, which must agree (on the error's code: the JSON array's two readers word some
 * errors differently).
 */
async function readAs(key: string, body: Buffer, rules: FormatRules = DEFAULT_RULES): Promise<string> {
  const name = (batches: RecordBatch[]): string => `${batches[0]?.lines ? 'ndjson' : 'json'} ${JSON.stringify(batches.flatMap((b) => b.records))}`;
  const error = (err: IngestError): string => `${err.code}: ${err.message}`;
  const whole = await decodeWhole(key, body, rules).then((b) => name([b]), error);
  for (const size of [1, 2, 5, 1 << 16]) {
    const streamed = await (async () => {
      const out: RecordBatch[] = [];
      for await (const b of decodeStream(key, chunks(body, size), rules, { batchRecords: 100, batchBytes: 1 << 20 })) out.push(b);
      return out.length === 0 ? name([{ first: 0, records: [], ...(whole.startsWith('ndjson') ? { lines: [] } : {}) }]) : name(out);
    })().catch(error);
    if (whole.startsWith('BI_DECODE') && streamed.startsWith('BI_DECODE')) continue;
    if (streamed !== whole) expect.fail(`${key}, chunks of ${size}: streamed ${streamed.slice(0, 300)}, whole ${whole.slice(0, 300)}`);
  }
  return whole;
}

const AS_JSON = `json ${JSON.stringify(records)}`;
const AS_NDJSON = `ndjson ${JSON.stringify(records)}`;

describe('format detection', () => {
  it('by extension: .json, .ndjson, .jsonl, each also .gz, whatever the content', async () => {
    expect(await readAs('a/b.json', ARRAY)).to.equal(AS_JSON);
    expect(await readAs('a/b.JSON.gz', gzipSync(ARRAY))).to.equal(AS_JSON);
    expect(await readAs('b.ndjson', LINES)).to.equal(AS_NDJSON);
    expect(await readAs('b.jsonl', LINES)).to.equal(AS_NDJSON);
    expect(await readAs('b.jsonl.gz', gzipSync(LINES))).to.equal(AS_NDJSON);
    // The extension wins over the content: an array in a .jsonl file is one record (line 1), not two.
    expect(await readAs('b.jsonl', ARRAY)).to.equal(`ndjson ${JSON.stringify([records])}`);
    expect(await readAs('b.json', LINES)).to.match(/^BI_DECODE: b\.json: not JSON \(data after the JSON value at byte \d+\)$/);
  });

  it('by content otherwise: gzip magic bytes, then `[` a JSON array and `{` NDJSON (after a BOM and white space)', async () => {
    expect(await readAs('x.data', ARRAY)).to.equal(AS_JSON);
    expect(await readAs('x.data', Buffer.from(`\uFEFF \r\n\t${ARRAY.toString()}`))).to.equal(AS_JSON);
    expect(await readAs('x.data', LINES)).to.equal(AS_NDJSON);
    expect(await readAs('x', Buffer.from(`\uFEFF\n\n${LINES.toString()}`))).to.equal(AS_NDJSON);
    expect(await readAs('x.data', gzipSync(LINES))).to.equal(AS_NDJSON);
    expect(await readAs('x.data', gzipSync(ARRAY))).to.equal(AS_JSON);
    // Neither: read as a JSON array, whose error says what the body starts with (as before formats).
    expect(await readAs('x.data', Buffer.from('"a"'))).to.equal('BI_DECODE: x.data: not a JSON array (got string)');
    expect(await readAs('x.data', Buffer.alloc(0))).to.equal('BI_DECODE: x.data: empty body');
  });

  it('reads .csv and .tsv (each also .gz) as CSV, which without a route fails with BI_ROUTE naming the key', async () => {
    expect(await readAs('t/a.csv', Buffer.from('a,b\n1,2\n'))).to.equal('BI_ROUTE: t/a.csv: no ROUTES glob matches this key, and CSV records carry no type');
    expect(await readAs('t/a.tsv.gz', gzipSync('a\tb\n'))).to.equal('BI_ROUTE: t/a.tsv.gz: no ROUTES glob matches this key, and TSV records carry no type');
  });

  it('reads .parquet, and a body starting PAR1, as Parquet, which without a route fails with BI_ROUTE naming the key', async () => {
    expect(await readAs('a.data', Buffer.from('PAR1\x15\x04'))).to.equal('BI_ROUTE: a.data: no ROUTES glob matches this key, and Parquet records carry no type');
    expect(await readAs('t/a.parquet', ARRAY)).to.equal('BI_ROUTE: t/a.parquet: no ROUTES glob matches this key, and Parquet records carry no type');
  });

  it('fails a ZIP archive where a file is decoded with BI_FORMAT (by content, or inside an archive), never skips it', async () => {
    expect(await readAs('a.data', Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0]))).to.equal('BI_FORMAT: a.data: ZIP archive detected (by its first bytes 0x50 0x4b 0x03 0x04); an archive is read as its members only when its key names it one (a .zip extension, or FORMAT / FORMAT_OVERRIDES glob=zip)');
    expect(await readAs('a.zip!b.zip', ARRAY)).to.equal('BI_FORMAT: a.zip!b.zip: ZIP archive detected (by its key); a ZIP archive inside an archive is not opened');
    expect(await readAs('a.zip!b.data', Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0]))).to.match(/^BI_FORMAT: a\.zip!b\.data: ZIP archive detected \(by its first bytes .*\); a ZIP archive inside an archive is not opened$/);
  });

  it('tells archives and their members by key: `.zip`, FORMAT=zip, FORMAT_OVERRIDES glob=zip; a member by its own name', () => {
    const rules = (format: string, overrides: string): FormatRules => {
      const decoded = settingsCodec.props.FORMAT_OVERRIDES.decode(overrides);
      if (decoded._tag === 'Left') throw new Error('bad overrides');
      return { ...DEFAULT_RULES, format: format as FormatRules['format'], overrides: decoded.right };
    };
    const auto = rules('auto', '');
    expect(isArchive('a/b.ZIP', auto)).to.equal(true);
    expect(isArchive('a/b.zip!c.zip', auto)).to.equal(false); // a member, never an archive itself
    expect(memberOf('a/b.zip!c/d.csv', auto)).to.deep.equal({ archive: 'a/b.zip', name: 'c/d.csv' });
    expect(memberOf('a!b.zip!c.csv', auto)).to.deep.equal({ archive: 'a!b.zip', name: 'c.csv' });
    expect(memberOf('a!b.csv', auto)).to.equal(null);
    expect(formatOfKey('a/b.zip!c/d.csv.gz', auto)).to.equal('csv');
    const all = rules('zip', '');
    expect(isArchive('x.data', all)).to.equal(true);
    expect(formatOfKey('x.data!m.jsonl', all)).to.equal('ndjson'); // FORMAT=zip is for archives, not members
    expect(formatOfKey('x.data!m', all)).to.equal('auto');
    const some = rules('auto', 'dumps/*.bin=zip, dumps/*.bin!*=csv');
    expect(isArchive('dumps/a.bin', some)).to.equal(true);
    expect(isArchive('other/a.bin', some)).to.equal(false);
    expect(formatOfKey('dumps/a.bin!x.txt', some)).to.equal('csv'); // an override matches a member's whole key
  });

  it('FORMAT names the format of every file, and FORMAT_OVERRIDES of the keys its globs match, first match first', async () => {
    const rules = (format: string, overrides: string): FormatRules => {
      const decoded = settingsCodec.props.FORMAT_OVERRIDES.decode(overrides);
      if (decoded._tag === 'Left') throw new Error('bad overrides');
      return { format: format as FormatRules['format'], overrides: decoded.right, maxBytes: 1 << 20, routes: [], csvDelimiter: ',' };
    };
    expect(await readAs('x.data', ARRAY, rules('ndjson', ''))).to.equal(`ndjson ${JSON.stringify([records])}`);
    expect(await readAs('x.jsonl', ARRAY, rules('json', ''))).to.equal(AS_JSON);
    expect(await readAs('x.csv', ARRAY, rules('json', ''))).to.equal(AS_JSON); // told so: no extension is looked at
    const o = rules('auto', 'logs/**=ndjson, **/*.txt = json, logs/x.txt=json');
    expect(o.overrides).to.deep.equal([{ glob: 'logs/**', format: 'ndjson' }, { glob: '**/*.txt', format: 'json' }, { glob: 'logs/x.txt', format: 'json' }]);
    expect(await readAs('logs/x.txt', ARRAY, o)).to.equal(`ndjson ${JSON.stringify([records])}`); // the first glob
    expect(await readAs('a/b.txt', LINES, o)).to.match(/^BI_DECODE: a\/b\.txt: not JSON/);
    expect(await readAs('a/b.ndjson', LINES, o)).to.equal(AS_NDJSON); // no glob: by extension
    expect(await readAs('logs/a.csv', LINES, rules('auto', 'logs/*.csv=auto'))).to.match(/^BI_ROUTE/); // auto: as without
  });

  it('refuses a FORMAT or FORMAT_OVERRIDES it cannot read, saying what is allowed', () => {
    const say = (codec: { decode(u: unknown): { _tag: string } }, u: string): string => codec.decode(u)._tag;
    expect(say(settingsCodec.props.FORMAT, 'rar')).to.equal('Left');
    expect(say(settingsCodec.props.FORMAT, 'zip')).to.equal('Right');
    expect(say(settingsCodec.props.FORMAT, 'parquet')).to.equal('Right');
    expect(say(settingsCodec.props.FORMAT, 'csv')).to.equal('Right');
    expect(say(settingsCodec.props.FORMAT, 'ndjson')).to.equal('Right');
    expect(say(settingsCodec.props.FORMAT_OVERRIDES, 'logs/**')).to.equal('Left');
    expect(say(settingsCodec.props.FORMAT_OVERRIDES, '=json')).to.equal('Left');
    expect(say(settingsCodec.props.FORMAT_OVERRIDES, 'a=rar')).to.equal('Left');
    expect(say(settingsCodec.props.FORMAT_OVERRIDES, 'a=zip')).to.equal('Right');
    expect(say(settingsCodec.props.FORMAT_OVERRIDES, 'a=TSV')).to.equal('Right');
    expect(say(settingsCodec.props.FORMAT_OVERRIDES, '')).to.equal('Right');
  });
});

describe('gzip', () => {
  const big = Buffer.from(Array.from({ length: 2000 }, (_, i) => JSON.stringify({ type: 'song', data: { title: `t${i}` } })).join('\n'));
  const gz = gzipSync(big);

  it('a corrupt or cut-short body fails the file with BI_DECODE, whole and streamed', async () => {
    expect(await readAs('x.ndjson.gz', gz.subarray(0, gz.length - 10))).to.match(/^BI_DECODE: x\.ndjson\.gz: bad gzip body: unexpected end of file$/);
    const corrupt = Buffer.from(gz);
    const mid = Math.floor(gz.length / 2);
    corrupt[mid] = (corrupt[mid] as number) ^ 0xff;
    expect(await readAs('x.ndjson.gz', corrupt)).to.match(/^BI_DECODE: x\.ndjson\.gz: bad gzip body: /);
  });

  it('fails a body over MAX_FILE_MB once decompressed (a gzip bomb), whole and streamed', async () => {
    expect(gz.length).to.be.below(big.length / 4);
    expect(await readAs('x.ndjson.gz', gz, { ...DEFAULT_RULES, maxBytes: big.length - 1 })).to.equal(`BI_BODY_TOO_LARGE: x.ndjson.gz: body over MAX_FILE_MB (${big.length - 1} bytes) once decompressed`);
    expect(await readAs('x.ndjson.gz', gz, { ...DEFAULT_RULES, maxBytes: big.length })).to.match(/^ndjson /);
  });
});
