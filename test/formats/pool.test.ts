import { expect } from 'chai';
import { DecodePool, inThread } from '../../src/formats/threads/pool.js';
import { catalog } from '../helpers/types.js';
import { keyAt } from '../../src/validate.js';
import { IngestError } from '../../src/errors.js';
import { generateFiles } from '../../bench/generate.js';

/** Decoding threads must give exactly what decoding in this thread gives, and fail files, not the process. */
describe('decoding threads', function () {
  this.timeout(30_000);
  const NOW = '2026-01-01T00:00:00.000Z';
  const files = [...generateFiles({ files: 6, recordsPerFile: 300, seed: 4, invalidRate: 0.05, duplicateRate: 0.05 })];
  let pool: DecodePool;
  beforeEach(() => {
    pool = new DecodePool(catalog, 2);
  });
  afterEach(() => pool.close());

  it('returns the same rows, rejections and counts as the main thread, for files decoded at once', async () => {
    const local = await Promise.all(files.map((f) => inThread(catalog).decode(f.key, Buffer.from(f.body), NOW)));
    const threaded = await Promise.all(files.map((f) => pool.decode(f.key, Buffer.from(f.body), NOW)));
    expect(threaded).to.deep.equal(local);
    expect(threaded.some((f) => f.rejections.length > 0)).to.equal(true);
    // The record types come back as the same objects the loader uses.
    expect([...(threaded[0]?.rows.keys() ?? [])]).to.have.members([...(local[0]?.rows.keys() ?? [])]);
  });

  it('with keyOrder, returns each table in key order, as the main thread does with it', async () => {
    const keyed = new DecodePool(catalog, 1, true);
    try {
      const threaded = await Promise.all(files.map((f) => keyed.decode(f.key, Buffer.from(f.body), NOW)));
      const inThreadKeyed = await Promise.all(files.map((f) => inThread(catalog, true).decode(f.key, Buffer.from(f.body), NOW)));
      expect(threaded).to.deep.equal(inThreadKeyed);
      for (const [type, cells] of threaded[0]?.rows ?? []) {
        const keys = Array.from({ length: cells.length / type.columns.length }, (_, i) => keyAt(type, cells, i * type.columns.length));
        expect(keys, type.table).to.deep.equal([...keys].sort());
      }
    } finally {
      await keyed.close();
    }
  });

  it('warm starts every thread before the first file, and files then go to those threads', async () => {
    expect(pool.started).to.equal(0);
    pool.warm();
    expect(pool.started).to.equal(2);
    const decoded = await Promise.all(files.map((f) => pool.decode(f.key, Buffer.from(f.body), NOW)));
    expect(decoded.map((f) => f.loaded)).to.deep.equal(files.map((f) => f.valid));
    expect(pool.started).to.equal(2);
    await pool.close();
    expect(pool.started).to.equal(0);
    pool.warm();
    expect(pool.started, 'a closed pool starts nothing').to.equal(0);
  });

  it('fails a body that is not a JSON array with BI_DECODE naming the key, and goes on with the next', async () => {
    const err = await pool.decode('broken.data', Buffer.from('[{"type":'), NOW).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(IngestError);
    expect((err as IngestError).code).to.equal('BI_DECODE');
    expect((err as IngestError).message).to.match(/^broken\.data: not JSON/);
    const f = files[0]!;
    expect((await pool.decode(f.key, Buffer.from(f.body), NOW)).loaded).to.equal(f.valid);
  });

  it('fails the files a dead thread held, and starts a new thread for the next', async () => {
    const f = files[1]!;
    const held = pool.decode(f.key, Buffer.from(f.body), NOW);
    await (pool as unknown as { threads: Array<{ worker: { terminate(): Promise<number> } }> }).threads[0]!.worker.terminate();
    const err = await held.then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(IngestError);
    expect((err as IngestError).message).to.contain(`${f.key}: decoding thread exited`);
    expect((await pool.decode(f.key, Buffer.from(f.body), NOW)).loaded).to.equal(f.valid);
  });

  it('after close, refuses new work as a shutdown', async () => {
    await pool.close();
    const err = await pool.decode('k.data', Buffer.from('[]'), NOW).then(() => null, (e: unknown) => e);
    expect((err as IngestError).code).to.equal('BI_SHUTDOWN');
  });
});
