import { expect } from 'chai';
import { splitJsonArray } from '../src/decode-stream.js';
import type { IngestError } from '../src/errors.js';
import { generateFiles } from '../bench/generate.js';

/** Feeds `text` in chunks of `size` bytes (cutting through strings, escapes and multi-byte characters). */
async function* chunks(text: string, size: number): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect(text: string, size: number, batchRecords = 3): Promise<unknown[][]> {
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
});
