import { expect } from 'chai';
import { decodeBody } from '../src/formats/json-array.js';
import type { IngestError } from '../src/errors.js';
import { catalog, song } from './helpers/types.js';
import type { Cell } from '../src/records/types.js';
import { isText } from '../src/records/codecs.js';
import { keyAt, rowsOf, validateRecords } from '../src/validate.js';

const NOW = '2026-01-01T00:00:00.000Z';
const s = (title: string, year: number | string) => ({ type: 'song', data: { artist_name: 'A', title, year, release: 'R' } });

describe('validateRecords', () => {
  it('accounts for every record exactly once: row, rejection or skip', () => {
    const records = [s('x', 1), s('y', '1999'), { type: 'book', data: { title: 'b' } }, 42, s('z', 3)];
    const out = validateRecords(catalog, records, NOW);
    expect(out.loaded).to.equal(2); // x and z
    expect(out.skipped).to.equal(1);
    expect(out.rejections.map((r) => r.recordIndex)).to.deep.equal([1, 3]);
    expect(out.loaded + out.skipped + out.rejections.length).to.equal(records.length);
    expect(out.rejections[0]).to.include({ type: 'song', raw: JSON.stringify(records[1]) });
    expect(out.rejections[0]!.reason).to.contain('year');
    expect(out.rejections[1]).to.include({ type: null, raw: '42' });
  });

  it('resolves duplicates of one key inside a file to the last record', () => {
    const out = validateRecords(catalog, [s('x', 1), s('y', 2), s('x', 3)], NOW);
    const rows = rowsOf(song, out.rows.get(song)!);
    expect(rows.map((r) => [r.title, r.year])).to.deep.equal([['x', 3], ['y', 2]]);
    expect(out.loaded).to.equal(3);
  });

  it('gives the same rows in key order when asked, and in the order of the records otherwise', () => {
    const records = ['m', 'b', 'z', 'b', 'a', 'é', 'A'].map((title, i) => s(title, i + 1));
    const plain = rowsOf(song, validateRecords(catalog, records, NOW).rows.get(song)!);
    const keyed = validateRecords(catalog, records, NOW, 0, true).rows.get(song)!;
    expect(plain.map((r) => r.title)).to.deep.equal(['m', 'b', 'z', 'a', 'é', 'A']);
    const keys = rowsOf(song, keyed).map((_, i) => keyAt(song, keyed, i * song.columns.length));
    expect(keys).to.deep.equal([...keys].sort());
    expect(rowsOf(song, keyed)).to.have.deep.members(plain);
  });

  it('keeps keys apart whatever characters they contain', () => {
    const a = { type: 'song', data: { artist_name: 'a b', title: 'c', year: 1, release: 'r' } };
    const b = { type: 'song', data: { artist_name: 'a', title: 'b c', year: 1, release: 'r' } };
    expect(rowsOf(song, validateRecords(catalog, [a, b], NOW).rows.get(song)!)).to.have.length(2);
  });

  it('gives two keys the same string only when their cells are equal', () => {
    // Values that a naive joining of cells would confuse: separators, lengths and type tags inside the values.
    const values: Cell[] = ['', 'a', 'a b', 'b c', '1:a', '1', '2:', ':', ';', 'n1;', 'z;', '0:', 'é', '😀', 1, 0, 12, -1, 1.5, true, false, null];
    const seen = new Map<string, string>();
    for (const x of values) {
      for (const y of values) {
        const key = keyAt(song, [x, y, 0, 'r', NOW], 0);
        const tuple = JSON.stringify([x, y]);
        expect(seen.get(key) ?? tuple, `${tuple} and ${seen.get(key)} share the key ${key}`).to.equal(tuple);
        seen.set(key, tuple);
      }
    }
    expect(seen.size).to.equal(values.length ** 2);
  });
});

describe('decodeBody', () => {
  const code = (body: string): string => {
    try {
      decodeBody('k.data', Buffer.from(body));
    } catch (err) {
      return `${(err as IngestError).code} ${(err as IngestError).message}`;
    }
    return 'ok';
  };
  it('accepts a JSON array, with or without a byte order mark', () => {
    expect(decodeBody('k', Buffer.from('\uFEFF[1,2]'))).to.deep.equal([1, 2]);
  });
  it('fails a body that is not UTF-8, naming the first bad byte and its offset, instead of loading U+FFFD', () => {
    const body = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
    const message = (b: Buffer): string => {
      try {
        decodeBody('k.data', b);
      } catch (err) {
        return `${(err as IngestError).code} ${(err as IngestError).message}`;
      }
      return 'ok';
    };
    expect(message(body('[{"title":"caf', [0xe9], '"}]'))).to.equal('BI_DECODE k.data: not UTF-8 (invalid byte 0xe9 at byte 14)');
    expect(message(body([0xef, 0xbb, 0xbf], '["é', [0xf0, 0x9f], '"]'))).to.equal('BI_DECODE k.data: not UTF-8 (invalid byte 0xf0 at byte 7)');
    expect(message(body([0xef, 0xbb], '[1]'))).to.equal('BI_DECODE k.data: not UTF-8 (invalid byte 0xef at byte 0)');
    expect(decodeBody('k', body('["é東😀', [0xef, 0xbf, 0xbd], '"]'))).to.deep.equal(['é東😀\ufffd']); // a real U+FFFD is text
  });

  it('says in one line where a body stops being JSON, as a byte offset, never quoting it', () => {
    // JSON.parse itself says `Unexpected token 'x', "[{"a":"sec"... is not valid JSON`, newline and all.
    expect(code('[{"a":"s3cr3t \u00e9",\n"b":x}]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 23)');
    expect(code('\uFEFF[1,\n2,x]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 9)');
    expect(code('["é\u0001"]')).to.equal('BI_DECODE k.data: not JSON (unescaped control character in a string at byte 4)');
    expect(code('["\\q"]')).to.equal('BI_DECODE k.data: not JSON (bad escape in a string at byte 3)');
    expect(code('[1] [2]')).to.equal('BI_DECODE k.data: not JSON (data after the JSON value at byte 4)');
  });

  it('fails the whole file for an empty body, non-JSON or a non-array, naming the key', () => {
    expect(code('  ')).to.equal('BI_DECODE k.data: empty body');
    expect(code('[{"a":')).to.equal('BI_DECODE k.data: not JSON (unexpected end of the text at byte 6)');
    expect(code('{"a":1}')).to.equal('BI_DECODE k.data: not a JSON array (got an object)');
    expect(code('null')).to.equal('BI_DECODE k.data: not a JSON array (got null)');
  });
});

describe('column limits', () => {
  it('rejects a key value longer than its column allows (the schema declares the bound), naming the column, instead of failing the file', () => {
    const long = 'x'.repeat(501);
    const out = validateRecords(catalog, [s(long, 1), s('ok', 1)], NOW);
    expect(out.loaded).to.equal(1);
    expect(out.rejections).to.have.length(1);
    expect(out.rejections[0]!.reason).to.equal(`title: expected at most 500 characters (has 501), got "${'x'.repeat(58)}…`);
    expect(validateRecords(catalog, [s('y'.repeat(500), 1)], NOW).loaded).to.equal(1);
  });
});

describe('what a rejection stores', () => {
  it('is text in every column, whatever the record held: NUL and lone surrogates escaped, a too long type left out', () => {
    const bad = ['a\u0000b', '\ud800', 'x\udfff'];
    const records = [
      ...bad.map((v) => s(v, 1)),
      ...bad.map((v) => ({ type: v, data: null })),
      ...bad.map((v) => ({ [v]: v })),
      { type: 't'.repeat(256), data: null },
      { type: 't'.repeat(255), data: null },
      s('fine', 2),
    ];
    const out = validateRecords(catalog, records, NOW);
    expect(out.loaded).to.equal(1);
    expect(out.rejections).to.have.length(records.length - 1);
    for (const r of out.rejections) {
      for (const text of [r.reason, r.raw, r.type ?? '']) expect(isText(text), JSON.stringify(r)).to.equal(true);
      expect(JSON.parse(r.raw), r.reason).to.deep.equal(records[r.recordIndex]);
    }
    expect(out.rejections.map((r) => r.type)).to.deep.equal([...bad.map(() => 'song'), null, null, null, null, null, null, null, 't'.repeat(255)]);
  });
});

describe('records nested deeper than JSON.stringify can go', () => {
  it('are rejections with their reason and raw JSON, and the rest of the file loads', () => {
    const depth = 100_000;
    const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const title = `{"type":"song","data":{"artist_name":"A","title":${deep},"year":1,"release":"R"}}`;
    const text = `[${deep},${title},${JSON.stringify(s('ok', 1))}]`;
    const out = validateRecords(catalog, decodeBody('k.data', Buffer.from(text)), NOW);
    expect(out.loaded).to.equal(1);
    expect(out.rejections.map((r) => [r.recordIndex, r.type, r.reason])).to.deep.equal([
      [0, null, `record is not an object, got ${'['.repeat(59)}…`],
      [1, 'song', `title: expected string, got ${'['.repeat(59)}…`],
    ]);
    expect(out.rejections.map((r) => r.raw)).to.deep.equal([deep, title]);
  });
});
