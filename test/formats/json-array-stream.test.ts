import { expect } from 'chai';
import { decodeBody } from '../../src/formats/json-array.js';
import { splitJsonArray } from '../../src/formats/json-array-stream.js';
import type { IngestError } from '../../src/errors.js';
import { generateFiles } from '../../bench/generate.js';

/** Feeds `text` in chunks of `size` bytes (cutting through strings, escapes and multi-byte characters). */
async function* chunks(text: string | Buffer, size: number): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect(text: string | Buffer, size: number, batchRecords = 3): Promise<unknown[][]> {
  const out: unknown[][] = [];
  for await (const batch of splitJsonArray('k.data', chunks(text, size), { batchRecords, batchBytes: 1 << 20 })) out.push(batch);
  return out;
}

describe('splitJsonArray', () => {
  const tricky = [
    { type: 'song', data: { title: 'a "quoted" ] } , title', artist_name: 'back\\slash\\', year: 1, release: 'é—東京' } },
    [1, [2, [3]]], 'plain "string" with ] and ,', 42, -1.5e3, true, null, {}, [],
  ];

  it('yields every element exactly once, in order, whatever the chunk size', async () => {
    const text = ` \n[ ${tricky.map((v) => JSON.stringify(v, null, 1)).join(' ,\n ')} ]\n`;
    for (const size of [1, 2, 3, 7, 64, 1 << 16]) {
      const batches = await collect(text, size);
      expect(batches.flat(), `chunk size ${size}`).to.deep.equal(tricky);
      expect(batches.every((b) => b.length <= 3)).to.equal(true);
    }
  });

  it('streams a generated file much larger than a batch: every record arrives once', async () => {
    const [file] = [...generateFiles({ files: 1, recordsPerFile: 5000, seed: 3 })];
    const batches = await collect(file!.body, 4096, 700);
    expect(batches.length).to.equal(Math.ceil(5000 / 700));
    expect(batches.flat()).to.deep.equal(JSON.parse(file!.body));
  });

  it('handles an empty array and a byte order mark', async () => {
    expect(await collect('[]', 1)).to.deep.equal([]);
    expect((await collect('\uFEFF[1,2]', 1)).flat()).to.deep.equal([1, 2]);
  });

  it('fails the file for anything that is not one whole JSON array', async () => {
    const reason = async (text: string): Promise<string> => {
      try {
        await collect(text, 5);
      } catch (err) {
        return `${(err as IngestError).code} ${(err as IngestError).message}`;
      }
      return 'ok';
    };
    expect(await reason('')).to.equal('BI_DECODE k.data: empty body');
    expect(await reason('{"a":1}')).to.equal('BI_DECODE k.data: not a JSON array (starts with "{" at byte 0)');
    expect(await reason('[{"a":1},{"b":')).to.equal('BI_DECODE k.data: not JSON (unexpected end of the text at byte 14)');
    expect(await reason('[1,2] x')).to.equal('BI_DECODE k.data: not JSON (data after the JSON value at byte 6)');
    expect(await reason('[{"a":1}}]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 8)');
    expect(await reason('[1}]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 2)');
    expect(await reason('[{"a":tru}]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 9)');
    // Commas: exactly one between two elements, none elsewhere (these all passed as arrays before).
    expect(await reason('[1 2]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 3)');
    expect(await reason('[{"a":1}{"b":2}]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 8)');
    expect(await reason('[1,,2]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 3)');
    expect(await reason('[,1]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 1)');
    expect(await reason('[1,]')).to.equal('BI_DECODE k.data: not JSON (unexpected character at byte 3)');
  });

  it('says what and where in one line, never quoting the body, with the byte offset of the whole-body path', async () => {
    // A record with a syntax error after two batches' worth of records, behind multi-byte characters and newlines.
    const records = Array.from({ length: 9 }, (_, i) => `{"title":"é東😀\\n ${i}",\n "year":${i}}`);
    const good = `[\n${records.join(',\n')}\n]`;
    const cases = [
      good.replace('"year":7', '"year":07'),
      good.replace('"year":7', '"year":-'),
      good.replace('"year":7', '"year":7.'),
      good.replace('"year":7', '"year" 7'),
      good.replace('"year":7', '"year":tru'),
      good.replace('"year":7', '"year":"secret\nline"'),
      good.replace('"year":7', '"year":"bad \\x escape"'),
      good.replace('"year":7', '"year":"\\u12G4"'),
      good.replace('"year":7}', '"year":7]'),
      good.replace('"year":7}', '"year":7,}'),
      good.replace('"year":7}', '"year":7},'),
      good.replace('"year":7}', '"year":7} secret'),
      good.replace('"year":7}', 'secret'),
      `${good.slice(0, -1)}secret`,
      good.slice(0, good.indexOf('"year":7')),
    ];
    for (const body of cases) {
      const whole = await Promise.resolve().then(() => decodeBody('k.data', Buffer.from(body))).then(() => 'ok', (err: IngestError) => err.message);
      expect(whole, body).to.match(/^k\.data: not JSON \([a-z\\ ]+ at byte \d+\)$/);
      for (const size of [1, 3, 64, 1 << 16]) {
        const streamed = await collect(body, size, 2).then(() => 'ok', (err: IngestError) => err.message);
        expect(streamed, `chunk size ${size}: ${body}`).to.equal(whole);
      }
    }
  });

  it('accepts exactly what decodeBody accepts and fails the same way, for bodies mutated at random', async () => {
    let seed = 3;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const base = '[{"type":"song","data":{"title":"é東 \\"q\\"","year":-1.5e3,"ok":[true,false,null]}}, 2, "x", [], {}]';
    const alphabet = ['[', ']', '{', '}', ',', ':', '"', '\\', ' ', '\n', '1', '-', '.', 'e', 't', 'x', 'é'];
    for (let n = 0; n < 1500; n++) {
      let body = base;
      for (let e = 1 + (next() % 2); e > 0; e--) {
        const at = next() % (body.length + 1);
        const ch = alphabet[next() % alphabet.length] as string;
        body = next() % 2 === 0 ? body.slice(0, at) + ch + body.slice(at) : body.slice(0, at) + body.slice(at + 1);
      }
      let whole: string;
      try {
        whole = JSON.stringify(decodeBody('k.data', Buffer.from(body)));
      } catch (err) {
        whole = (err as IngestError).message;
      }
      const streamed = await collect(body, 1 + (n % 7)).then((b) => JSON.stringify(b.flat()), (err: IngestError) => err.message);
      if (whole.startsWith('k.data: not JSON') && body.trimStart()[0] !== '[') expect(streamed, body).to.match(/^k\.data: not a JSON array/);
      else if (whole.startsWith('k.data: not a JSON array')) expect(streamed, body).to.match(/^k\.data: not a JSON array/);
      else expect(streamed, body).to.equal(whole);
    }
  });

  it('fails a body that is not UTF-8 with the offset of the first bad byte, in any batch, whatever the chunks', async () => {
    const reason = async (body: Buffer, size: number): Promise<string> => {
      try {
        await collect(body, size, 2);
      } catch (err) {
        return `${(err as IngestError).code} ${(err as IngestError).message}`;
      }
      return 'ok';
    };
    const records = Array.from({ length: 7 }, (_, i) => `{"title":"é東😀 ${i}"}`);
    const good = Buffer.from(`[${records.join(',')}]`);
    for (const size of [1, 2, 3, 5, 64]) expect(await reason(good, size), `chunk size ${size}`).to.equal('ok');
    // One bad byte (or cut character) at a time: inside a string, a number, between elements' characters.
    const spots: Array<[number, number[]]> = [
      [good.indexOf('é'), [0xff]], // a stray byte
      [good.lastIndexOf('😀'), [0xf0, 0x9f]], // a character cut short
      [good.lastIndexOf('6'), [0xc0, 0xaf]], // overlong
      [good.indexOf('3'), [0xed, 0xa0, 0x80]], // a surrogate
    ];
    for (const [at, bytes] of spots) {
      const body = Buffer.concat([good.subarray(0, at), Buffer.from(bytes), good.subarray(at)]);
      for (const size of [1, 3, 7, 1 << 16]) {
        expect(await reason(body, size), `byte ${at}, chunk size ${size}`).to.equal(`BI_DECODE k.data: not UTF-8 (invalid byte 0x${bytes[0]!.toString(16)} at byte ${at})`);
      }
    }
    const scalar = Buffer.concat([Buffer.from('[1,'), Buffer.from([0xff]), Buffer.from(',2]')]);
    expect(await reason(scalar, 1)).to.equal('BI_DECODE k.data: not UTF-8 (invalid byte 0xff at byte 3)');
  });

  it('takes a whole byte order mark, split across chunks or not, and refuses part of one', async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    for (const size of [1, 2, 4]) expect((await collect(Buffer.concat([bom, Buffer.from('[1]')]), size)).flat()).to.deep.equal([1]);
    for (const part of [bom.subarray(0, 1), bom.subarray(0, 2), Buffer.from([0xbb, 0xbf])]) {
      const error = await collect(Buffer.concat([part, Buffer.from('[1]')]), 1).then(() => 'ok', (err: IngestError) => err.message);
      expect(error, part.toString('hex')).to.match(/^k\.data: not (UTF-8 \(invalid byte 0xef at byte 0\)|a JSON array \(starts with byte 0xbb at byte 0\))$/);
    }
    expect(await collect(Buffer.concat([bom, bom, Buffer.from('[1]')]), 1).then(() => 'ok', (err: IngestError) => err.message)).to.match(/starts with byte 0xef at byte 3/);
  });
});
