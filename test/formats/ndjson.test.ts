import { expect } from 'chai';
import { decodeStream, decodeWhole, DEFAULT_RULES, validateBatch, type RecordBatch } from '../../src/formats/index.js';
import { Undecodable } from '../../src/formats/types.js';
import type { IngestError } from '../../src/errors.js';
import { catalog } from '../helpers/types.js';

const NOW = '2026-01-01T00:00:00.000Z';
const song = (title: string): string => JSON.stringify({ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } });

async function* chunks(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

/** Whole, and streamed in chunks of several sizes (cutting lines, CRLFs and characters), with small batches. */
async function everyWay(key: string, body: Buffer, maxLineBytes = Infinity): Promise<RecordBatch[][]> {
  const ways: RecordBatch[][] = [[await decodeWhole(key, body)]];
  for (const size of [1, 3, 7, 64, 1 << 20]) {
    const out: RecordBatch[] = [];
    for await (const b of decodeStream(key, chunks(body, size), { ...DEFAULT_RULES, maxBytes: maxLineBytes }, { batchRecords: 2, batchBytes: 16 })) out.push(b);
    ways.push(out);
  }
  return ways;
}

/** A way's batches as one list of [record_index, line, record]. */
function flat(batches: RecordBatch[]): Array<[number, number, unknown]> {
  return batches.flatMap((b) => b.records.map((r, i) => [b.first + i, b.lines?.[i] ?? -1, r] as [number, number, unknown]));
}

async function failure(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'no error', (err: IngestError) => `${err.code}: ${err.message}`);
}

describe('NDJSON', () => {
  it('reads one value per line: blank lines skipped but counted, CRLF, a BOM, a last line without newline', async () => {
    const body = Buffer.from(`\uFEFF${song('a')}\r\n\r\n  \n${song('é東😀')}\n\n${song('c')}`);
    for (const way of await everyWay('k.ndjson', body)) {
      expect(flat(way)).to.deep.equal([
        [0, 1, JSON.parse(song('a'))], [1, 4, JSON.parse(song('é東😀'))], [2, 6, JSON.parse(song('c'))],
      ]);
    }
  });

  it('makes a line that is not JSON a rejection naming its line and column, its text stored as it was', async () => {
    const bad = '{"type": "song", oops}';
    const body = Buffer.from(`${song('a')}\n\n${bad}\r\n${song('b')}\n{"type":"song","data":{"title":1}}\n{"type":"song"`);
    for (const way of await everyWay('k.ndjson', body)) {
      const rejections = way.flatMap((b) => validateBatch(catalog, b, NOW).rejections);
      const loaded = way.reduce((n, b) => n + validateBatch(catalog, b, NOW).loaded, 0);
      expect(loaded).to.equal(2);
      expect(rejections.map((r) => [r.recordIndex, r.reason.replace(/^(line \d+: [^:(]*).*$/, '$1'), r.raw])).to.deep.equal([
        [1, 'line 3: not JSON ', bad],
        [3, 'line 5: artist_name', '{"type":"song","data":{"title":1}}'],
        [4, 'line 6: not JSON ', '{"type":"song"'], // cut short at the end of the file: still a record
      ]);
      expect(rejections[0]?.reason).to.equal('line 3: not JSON (unexpected character at column 18)');
      expect(rejections[2]?.reason).to.equal('line 6: not JSON (unexpected end of the text at column 15)');
    }
  });

  it('stores a bad line holding U+0000 as a JSON string, and says so', () => {
    const batch: RecordBatch = { first: 0, records: [new Undecodable('line 1: not JSON (x)', 'a\u0000b')], lines: [1] };
    expect(validateBatch(catalog, batch, NOW).rejections).to.deep.equal([
      { recordIndex: 0, type: null, reason: 'line 1: not JSON (x); raw stored as a JSON string (it holds U+0000)', raw: '"a\\u0000b"' },
    ]);
  });

  it('fails the file for bytes that are not UTF-8, naming the byte offset, whole and streamed', async () => {
    const body = Buffer.concat([Buffer.from(`${song('a')}\n{"type":"song","data":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]);
    const at = Buffer.byteLength(`${song('a')}\n{"type":"song","data":"`);
    expect(await failure(decodeWhole('k.ndjson', body))).to.equal(`BI_DECODE: k.ndjson: not UTF-8 (invalid byte 0xc3 at byte ${at})`);
    for (const size of [1, 5, 1 << 20]) {
      const read = (async () => { for await (const _ of decodeStream('k.ndjson', chunks(body, size), DEFAULT_RULES, { batchRecords: 1, batchBytes: 8 })) { /* read */ } })();
      expect(await failure(read)).to.equal(`BI_DECODE: k.ndjson: not UTF-8 (invalid byte 0xc3 at byte ${at})`);
    }
  });

  it('fails a streamed file whose line grows past MAX_FILE_MB, without holding more of it', async () => {
    const body = Buffer.from(`${song('a')}\n${' '.repeat(5000)}x\n`);
    const read = (async () => { for await (const _ of decodeStream('k.ndjson', chunks(body, 100), { ...DEFAULT_RULES, maxBytes: 1000 }, { batchRecords: 10, batchBytes: 1 << 20 })) { /* read */ } })();
    expect(await failure(read)).to.equal('BI_DECODE: k.ndjson: line 2 is longer than MAX_FILE_MB (1000 bytes)');
  });

  it('an empty body is a file of no records', async () => {
    for (const way of await everyWay('k.ndjson', Buffer.from('\n\r\n'))) expect(flat(way)).to.deep.equal([]);
  });
});
