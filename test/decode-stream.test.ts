import { expect } from 'chai';
import { splitJsonArray } from '../src/decode-stream.js';
import type { IngestError } from '../src/errors.js';
import { generateFiles } from '../bench/generate.js';

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
    expect(await reason('{"a":1}')).to.match(/^BI_DECODE k\.data: not a JSON array \(starts with "\{"/);
    expect(await reason('[{"a":1},{"b":')).to.match(/cut short/);
    expect(await reason('[1,2] x')).to.match(/data after the closing bracket/);
    expect(await reason('[{"a":1}}]')).to.match(/unbalanced bracket|not JSON/);
    expect(await reason('[{"a":tru}]')).to.match(/^BI_DECODE k\.data: not JSON/);
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
