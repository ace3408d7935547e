import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import type { Settings } from '../src/config/schema.js';
import { decodeStream, DEFAULT_RULES } from '../src/formats/index.js';
import { inThread } from '../src/formats/threads/pool.js';
import { prepare } from '../src/pipeline.js';
import type { PlanItem } from '../src/plan.js';
import type { Registry } from '../src/registry/types.js';
import { bundledCatalog } from '../src/schemas/catalog.js';
import { LocalSource } from '../src/sources/local.js';
import { tempDir } from './helpers/cli.js';

const lines = (n: number): string => Array.from({ length: n }, (_, i) => `${JSON.stringify({ type: 'song', data: { artist_name: 'A', title: `t${i}`, year: 1, release: 'R' } })}\n`).join('');

describe('prepare: a body read whole that holds more than STREAM_ABOVE_MB once decompressed', () => {
  it('is streamed, in batches, as a large file is; a smaller one is decoded whole', async () => {
    const t = await tempDir();
    try {
      const big = lines(20_000); // ~1.6 MB of NDJSON, ~40 kB of gzip: under STREAM_ABOVE_MB=1 as fetched, over it decompressed
      await writeFile(join(t.dir, 'big.ndjson.gz'), gzipSync(big));
      await writeFile(join(t.dir, 'small.ndjson.gz'), gzipSync(lines(10)));
      const settings = { STREAM_ABOVE_MB: 1, MAX_FILE_MB: 4096, FORMAT: 'auto', FORMAT_OVERRIDES: [], ROUTES: [], CSV_DELIMITER: ',' } as unknown as Settings;
      const source = new LocalSource(t.dir, 'index', 4096 * 2 ** 20, 2 ** 20);
      const ctx = { source, registry: { get: () => undefined } as unknown as Registry, decoder: inThread(bundledCatalog()), settings };
      const item = (key: string): PlanItem => ({ key, index: 0, reason: 'new' }) as PlanItem;
      const never = new AbortController().signal;

      const streamed = await prepare(ctx, item('big.ndjson.gz'), never);
      expect(streamed.kind).to.equal('stream');
      if (streamed.kind !== 'stream') return;
      let records = 0;
      for await (const b of decodeStream('big.ndjson.gz', streamed.stream, DEFAULT_RULES, { batchRecords: 5000, batchBytes: 4 << 20 })) {
        expect(b.records.length).to.be.at.most(5000);
        records += b.records.length;
      }
      expect(records).to.equal(20_000);

      const whole = await prepare(ctx, item('small.ndjson.gz'), never);
      expect(whole.kind).to.equal('load');
      if (whole.kind === 'load') expect(whole.file.loaded).to.equal(10);
    } finally {
      await t.cleanup();
    }
  });
});
