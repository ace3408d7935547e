import { expect } from 'chai';
import { rawJson, stringifyDeep } from '../src/records/raw-json.js';

/** A random value of the kinds JSON.parse makes, from a small deterministic generator. */
function randomValue(next: () => number, depth: number): unknown {
  const kind = next() % (depth > 4 ? 5 : 7);
  switch (kind) {
    case 0: return null;
    case 1: return next() % 2 === 0;
    case 2: return [0, -1.5, 1e21, 2 ** 53, Infinity, -0][next() % 6];
    case 3: return ['', 'a"b\\c', 'é東😀', '\u0000\u001f', '\ud800', '</script>'][next() % 6];
    case 4: return 'plain';
    case 5: return Array.from({ length: next() % 4 }, () => randomValue(next, depth + 1));
    default: return Object.fromEntries(Array.from({ length: next() % 4 }, (_, i) => [['k', '2', '__proto__', 'é', '\u0000'][(next() + i) % 5], randomValue(next, depth + 1)]));
  }
}

describe('rawJson', () => {
  it('is JSON.stringify, character for character, for every kind of parsed value', () => {
    let seed = 11;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let n = 0; n < 2000; n++) {
      const value = JSON.parse(JSON.stringify(randomValue(next, 0))) as unknown;
      expect(stringifyDeep(value)).to.equal(JSON.stringify(value));
      expect(rawJson(value)).to.equal(JSON.stringify(value));
    }
    expect(rawJson(undefined)).to.equal('null');
  });

  it('writes values nested deeper than JSON.stringify can go, and stops early when asked', () => {
    const depth = 100_000;
    const text = `[1,${'{"a":['.repeat(depth)}"x"${']}'.repeat(depth)}]`;
    const value = JSON.parse(text) as unknown;
    expect(() => JSON.stringify(value)).to.throw(RangeError);
    expect(rawJson(value)).to.equal(text);
    const start = stringifyDeep(value, 20);
    expect(start.length).to.be.within(21, 30);
    expect(text.startsWith(start)).to.equal(true);
  });
});
