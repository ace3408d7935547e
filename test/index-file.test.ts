import { expect } from 'chai';
import { cleanIndex } from '../src/sources/index-file.js';

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
