import { expect } from 'chai';
import { invalidUtf8At } from '../src/utf8.js';

const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The WHATWG fatal decoder's answer: the longest prefix it decodes ends where the first ill-formed sequence starts
 * (a well-formed character there would make a longer one); -1 when that prefix is the whole input.
 */
function reference(bytes: Uint8Array): number {
  for (let p = bytes.length; p >= 0; p--) {
    try {
      fatal.decode(bytes.subarray(0, p));
      return p === bytes.length ? -1 : p;
    } catch {
      // shorter
    }
  }
  return 0;
}

describe('invalidUtf8At', () => {
  it('finds the first ill-formed sequence of each kind', () => {
    const cases: Array<[number[], number]> = [
      [[], -1],
      [[0x61, 0xc3, 0xa9, 0xe6, 0x9d, 0xb1, 0xf0, 0x9f, 0x98, 0x80], -1], // a é 東 😀
      [[0xef, 0xbb, 0xbf, 0x5b], -1], // byte order mark
      [[0x61, 0xff], 1],
      [[0x80], 0], // stray continuation byte
      [[0x61, 0xc0, 0xaf], 1], // overlong '/'
      [[0xe0, 0x80, 0xaf], 0], // overlong, three bytes
      [[0xed, 0xa0, 0x80], 0], // U+D800 encoded
      [[0xf4, 0x90, 0x80, 0x80], 0], // past U+10FFFF
      [[0xf5, 0x80, 0x80, 0x80], 0],
      [[0x61, 0x62, 0xe6, 0x9d], 2], // cut short at the end
      [[0xe6, 0x9d, 0x61], 0], // cut short before an ASCII byte
      [[0xc3, 0xa9, 0xc3], 2],
    ];
    for (const [bytes, at] of cases) expect(invalidUtf8At(Uint8Array.from(bytes)), JSON.stringify(bytes)).to.equal(at);
  });

  it('agrees with the WHATWG fatal decoder on random bytes', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pieces = [[0x61], [0xc3, 0xa9], [0xe6, 0x9d, 0xb1], [0xf0, 0x9f, 0x98, 0x80], [0x80], [0xff], [0xc3], [0xe6, 0x9d], [0xed, 0xa0, 0x80], [0xf4, 0x90]];
    for (let n = 0; n < 3000; n++) {
      const bytes: number[] = [];
      const count = 1 + random(8);
      for (let k = 0; k < count; k++) bytes.push(...(pieces[random(n % 3 === 0 ? pieces.length : 4)] as number[]));
      const buf = Uint8Array.from(bytes);
      expect(invalidUtf8At(buf), JSON.stringify(bytes)).to.equal(reference(buf));
    }
  });
});
