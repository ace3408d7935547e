import { expect } from 'chai';
import { findJsonSyntaxError } from '../../src/formats/json-syntax.js';

describe('findJsonSyntaxError', () => {
  it('names what is wrong and where, in words of its own', () => {
    expect(findJsonSyntaxError('[1, {"a": [true, null]}, "é\\u00e9", -0.5e+3]')).to.equal(null);
    expect(findJsonSyntaxError('[1,\n2,x]')).to.deep.equal({ at: 6, what: 'unexpected character' });
    expect(findJsonSyntaxError('')).to.deep.equal({ at: 0, what: 'unexpected end of the text' });
    expect(findJsonSyntaxError('[{"a":1}')).to.deep.equal({ at: 8, what: 'unexpected end of the text' });
    expect(findJsonSyntaxError('["a\nb"]')).to.deep.equal({ at: 3, what: 'unescaped control character in a string' });
    expect(findJsonSyntaxError('["\\x"]')).to.deep.equal({ at: 3, what: 'bad escape in a string' });
    expect(findJsonSyntaxError('["\\u12G4"]')).to.deep.equal({ at: 6, what: 'bad \\u escape in a string' });
    expect(findJsonSyntaxError('[01]')).to.deep.equal({ at: 2, what: 'unexpected character' });
    expect(findJsonSyntaxError('{"a" 1}')).to.deep.equal({ at: 5, what: 'unexpected character' });
    expect(findJsonSyntaxError('[1] x')).to.deep.equal({ at: 4, what: 'data after the JSON value' });
  });

  it('handles any depth of nesting', () => {
    const depth = 200_000;
    expect(findJsonSyntaxError(`${'['.repeat(depth)}${']'.repeat(depth)}`)).to.equal(null);
    expect(findJsonSyntaxError(`${'['.repeat(depth)}x${']'.repeat(depth)}`)).to.deep.equal({ at: depth, what: 'unexpected character' });
  });

  it('accepts exactly what JSON.parse accepts, and finds the place JSON.parse names, in texts mutated at random', () => {
    let seed = 5;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const base = ['[1, 2.5e-3, -0, "a\\"b\\u00e9\\n", true, false, null, {"k": [ {}, [] ], "z": "é東"}]', '{"a":{"b":[1,2,{"c":null}]}}', '"s"', '0', ' [ "x" , 1 ] '];
    const alphabet = ['[', ']', '{', '}', ',', ':', '"', '\\', 'u', '0', '1', '-', '+', '.', 'e', 'E', 't', 'r', 'n', 'f', 'a', 'l', ' ', '\n', '\u0001', 'x', 'é', '\ud800'];
    let located = 0;
    for (let n = 0; n < 20_000; n++) {
      let text = base[next() % base.length] as string;
      for (let e = 1 + (next() % 3); e > 0; e--) {
        const at = next() % (text.length + 1);
        const op = next() % 3;
        const ch = alphabet[next() % alphabet.length] as string;
        text = op === 0 ? text.slice(0, at) + ch + text.slice(at) : op === 1 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + ch + text.slice(at + 1);
      }
      let message: string | null = null;
      try {
        JSON.parse(text);
      } catch (err) {
        message = (err as Error).message;
      }
      const found = findJsonSyntaxError(text);
      expect(found === null, `${JSON.stringify(text)}: ${message}`).to.equal(message === null);
      if (message === null || found === null) continue;
      // V8 gives a position, or quotes the unexpected token, or says the text ended.
      const position = /at position (\d+)/.exec(message);
      const token = /^Unexpected token '([^]*?)', /.exec(message);
      if (position) expect(found.at, `${JSON.stringify(text)}: ${message}`).to.equal(Number(position[1]));
      else if (token) expect(text.slice(found.at, found.at + (token[1] as string).length), `${JSON.stringify(text)}: ${message}`).to.equal(token[1]);
      else if (message === 'Unexpected end of JSON input') expect(found.at).to.equal(text.length);
      else continue;
      located++;
    }
    expect(located).to.be.greaterThan(15_000);
  });
});
