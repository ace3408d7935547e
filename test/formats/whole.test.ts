import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { DEFAULT_RULES } from '../../src/formats/index.js';
import { wholeBody } from '../../src/formats/whole.js';
import type { IngestError } from '../../src/errors.js';

const KB = 1024;
const text = (bytes: number): Buffer => Buffer.from(`${'{"type":"song"}\n'.repeat(Math.ceil(bytes / 16))}`.slice(0, bytes));
const parquet = (rows: number): Buffer => Buffer.from(parquetWriteBuffer({ columnData: [{ name: 'n', data: Array.from({ length: rows }, (_, i) => i % 7) }], schema: [{ name: 'root', num_children: 1 }, { name: 'n', type: 'INT32', repetition_type: 'REQUIRED' }] } as never));
const error = (err: IngestError): string => `${err.code}: ${err.message}`;

describe('wholeBody: whether a body read whole may be decoded whole', () => {
  it('hands a gzip body on decompressed while it stays within the limit, and says stream it (null) once it passes', async () => {
    const small = text(10 * KB);
    expect(await wholeBody('a.ndjson.gz', gzipSync(small), DEFAULT_RULES, 64 * KB)).to.deep.equal(small);
    // 40 kB of gzip holding 4 MB of text: decoded whole, memory would follow the 4 MB, not the setting.
    const large = gzipSync(text(4096 * KB));
    expect(large.length).to.be.below(64 * KB);
    expect(await wholeBody('a.ndjson.gz', large, DEFAULT_RULES, 64 * KB)).to.equal(null);
  });

  it('fails a gzip body past MAX_FILE_MB (when that is the lower cap) or corrupt, as decoding it whole would', async () => {
    const body = gzipSync(text(200 * KB));
    expect(await wholeBody('a.gz', body, { ...DEFAULT_RULES, maxBytes: 100 * KB }, 1024 * KB).catch(error)).to.equal('BI_BODY_TOO_LARGE: a.gz: body over MAX_FILE_MB (102400 bytes) once decompressed');
    const corrupt = Buffer.from(body);
    for (let i = 20; i < 60; i++) corrupt[i] = (corrupt[i] as number) ^ 0xff;
    expect(await wholeBody('a.gz', corrupt, DEFAULT_RULES, 1024 * KB).catch(error)).to.match(/^BI_DECODE: a\.gz: bad gzip body: /);
  });

  it('leaves gzip inside gzip as it came, so decoding takes one layer off and fails on the next, as a stream does', async () => {
    const twice = gzipSync(gzipSync(text(KB)));
    expect(await wholeBody('a.gz', twice, DEFAULT_RULES, 64 * KB)).to.equal(twice);
  });

  it('says stream it for a Parquet body whose values, at 32 bytes each, pass the limit; leaves smaller ones and other bodies as they are', async () => {
    const many = parquet(10_000); // 40 kB of INT32 values, a few kB once encoded: 320 kB as JSON would hold them
    expect(many.length).to.be.below(64 * KB);
    expect(await wholeBody('a.parquet', many, DEFAULT_RULES, 256 * KB)).to.equal(null);
    expect(await wholeBody('a.parquet', many, DEFAULT_RULES, 512 * KB)).to.equal(many);
    const json = Buffer.from('[1,2,3]');
    expect(await wholeBody('a.json', json, DEFAULT_RULES, 1)).to.equal(json);
    const notParquet = Buffer.concat([Buffer.from('PAR1'), Buffer.alloc(20), Buffer.from('PAR1')]);
    expect(await wholeBody('a.parquet', notParquet, DEFAULT_RULES, 1)).to.equal(notParquet); // decoding says why
  });
});
