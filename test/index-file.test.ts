import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { IngestError } from '../src/errors.js';
import { cleanIndex, indexText } from '../src/sources/index-file.js';
import { LocalSource } from '../src/sources/local.js';
import { tempDir } from './helpers/cli.js';

describe('cleanIndex', () => {
  it('trims keys, drops blank lines and \\r, removes duplicates and keeps bucket order', () => {
    const text = ' b.data \r\n\r\na.data\n\n  \nb.data\r\nc.data';
    expect(cleanIndex(text)).to.deep.equal(['b.data', 'a.data', 'c.data']);
  });

  it('handles a list without a trailing newline and one with', () => {
    expect(cleanIndex('x.data\ny.data')).to.deep.equal(['x.data', 'y.data']);
    expect(cleanIndex('x.data\ny.data\n')).to.deep.equal(['x.data', 'y.data']);
  });

  it('returns nothing for an empty or blank index', () => {
    expect(cleanIndex('')).to.deep.equal([]);
    expect(cleanIndex('\r\n \n\t\n')).to.deep.equal([]);
  });

  it('drops a UTF-8 byte order mark so the first key matches', () => {
    expect(cleanIndex('\uFEFFa.data\nb.data')).to.deep.equal(['a.data', 'b.data']);
  });
});

describe('indexText', () => {
  it('reads a UTF-8 index as it is, and refuses one that is not, naming the byte, instead of listing U+FFFD keys', async () => {
    expect(cleanIndex(indexText(Buffer.from('amélie.data\nb.data'), 'files_list.data'))).to.deep.equal(['amélie.data', 'b.data']);
    const bad = Buffer.concat([Buffer.from('a.data\nam'), Buffer.from([0xe9]), Buffer.from('lie.data\n')]);
    expect(() => indexText(bad, 'files_list.data')).to.throw(IngestError, 'index files_list.data is not UTF-8 (invalid byte 0xe9 at byte 9)');
    expect(() => indexText(Buffer.from('a.data\nb\u0000.data'), 'files_list.data')).to.throw(IngestError, 'index files_list.data holds a NUL byte (U+0000) at byte 8');
    const { dir, cleanup } = await tempDir();
    try {
      writeFileSync(join(dir, 'files_list.data'), bad);
      const err = (await new LocalSource(dir, 'files_list.data', 1 << 20).listKeys().catch((e: unknown) => e)) as IngestError;
      expect(err.code).to.equal('BI_SOURCE_UNAVAILABLE');
      expect(err.message).to.contain('index files_list.data is not UTF-8 (invalid byte 0xe9 at byte 9)');
    } finally {
      await cleanup();
    }
  });
});
