import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { AfterLoader, afterLoadDue } from '../src/load/after-load.js';
import { listingFilter } from '../src/listing.js';
import type { AfterLoadSetting } from '../src/config/schema.js';
import { createLogger } from '../src/log.js';
import type { RegistryEntry } from '../src/registry/entry.js';
import { JsonRegistry } from '../src/registry/json-registry.js';
import { LocalSource } from '../src/sources/local.js';
import { Telemetry } from '../src/telemetry.js';
import { tempDir } from './helpers/cli.js';
import { entry } from './helpers/registry.js';

const pending = (over: Partial<NonNullable<RegistryEntry['afterLoad']>> = {}): RegistryEntry['afterLoad'] =>
  ({ action: 'move:archive/', state: 'pending', attempts: 0, error: null, nextAttemptAt: null, doneAt: null, ...over });

describe('AFTER_LOAD step', () => {
  it('leaves the moved copies (keys under the prefix) out of the listing, and only those', () => {
    const keys = ['a.json', 'archive/a.json', 'archived.json', 'x/archive/b.json'];
    const withoutMoved = (ks: string[], AFTER_LOAD: AfterLoadSetting): string[] => {
      const considered = listingFilter({ INCLUDE: [], EXCLUDE: [], MIN_AGE_SECONDS: 0, AFTER_LOAD });
      return ks.filter((key) => considered({ key, etag: null, size: null, lastModified: null }, 0));
    };
    expect(withoutMoved(keys, { kind: 'move', prefix: 'archive/' })).to.deep.equal(['a.json', 'archived.json', 'x/archive/b.json']);
    expect(withoutMoved(keys, { kind: 'delete' })).to.deep.equal(keys);
    expect(withoutMoved(keys, { kind: 'keep' })).to.deep.equal(keys);
  });

  it('is due for a done file whose action is pending and whose backoff is over; never for a failed file or a done action', () => {
    const now = Date.parse('2026-01-01T01:00:00.000Z');
    expect(afterLoadDue(entry({ afterLoad: pending() }), now)).to.equal(true);
    expect(afterLoadDue(entry({ afterLoad: pending({ attempts: 1, nextAttemptAt: '2026-01-01T00:59:59.000Z' }) }), now)).to.equal(true);
    expect(afterLoadDue(entry({ afterLoad: pending({ attempts: 1, nextAttemptAt: '2026-01-01T01:00:01.000Z' }) }), now)).to.equal(false);
    expect(afterLoadDue(entry({ afterLoad: pending({ state: 'done' }) }), now)).to.equal(false);
    expect(afterLoadDue(entry({ status: 'failed', afterLoad: pending() }), now)).to.equal(false);
    expect(afterLoadDue(entry(), now)).to.equal(false);
  });

  describe('on a local bucket with the JSON registry', () => {
    let dir: string;
    let cleanup: () => Promise<void>;
    let registry: JsonRegistry;
    let source: LocalSource;
    let telemetry: Telemetry;
    beforeEach(async () => {
      telemetry = new Telemetry(createLogger({ level: 'silent' }));
      ({ dir, cleanup } = await tempDir());
      mkdirSync(join(dir, 'bucket'));
      writeFileSync(join(dir, 'bucket', 'a.json'), '[]');
      source = new LocalSource(join(dir, 'bucket'), 'files_list.data', 1 << 20);
      const info = statSync(join(dir, 'bucket', 'a.json'));
      registry = await JsonRegistry.open(join(dir, 'registry.json'), { writable: true });
      // The entry the commit wrote: the loaded version (the local ETag: size and mtime) and its pending move.
      const etag = `"${info.size.toString(16)}-${Math.trunc(info.mtimeMs).toString(16)}"`;
      await registry.commit(new Map([['a.json', entry({ etag, size: info.size, afterLoad: pending() })]]));
    });
    afterEach(async () => {
      await registry.close();
      await cleanup();
    });
    const loader = () => new AfterLoader({
      setting: { kind: 'move', prefix: 'archive/' }, source, registry, telemetry, concurrency: 2, retryFailedMs: 60_000,
    }, new AbortController().signal);

    it('a failure is recorded with its error and a backoff of RETRY_FAILED_SECONDS doubling per failure; not retried before it', async () => {
      writeFileSync(join(dir, 'bucket', 'archive'), 'blocks the move');
      const first = loader();
      const t0 = Date.now();
      first.start(['a.json']);
      expect(await first.drain()).to.equal(undefined);
      let a = registry.get('a.json')?.afterLoad;
      expect(a).to.include({ state: 'pending', attempts: 1 });
      expect(a?.error).to.match(/^BI_AFTER_LOAD: a\.json: cannot move it to archive\/a\.json/);
      expect(Date.parse(a?.nextAttemptAt ?? '') - t0).to.be.within(60_000 - 1000, 60_000 + 5000);
      expect(await telemetry.metrics.getSingleMetricAsString('bucket_ingest_after_load_total')).to.match(/result="failed"} 1$/m);

      const early = loader();
      await early.retryDue();
      await early.drain();
      expect(early.failed + early.done).to.equal(0); // backoff not over

      const later = loader();
      await later.retryDue(Date.now() + 61_000);
      await later.drain();
      a = registry.get('a.json')?.afterLoad;
      expect(a?.attempts).to.equal(2);
      expect(Date.parse(a?.nextAttemptAt ?? '') - Date.now()).to.be.within(120_000 - 5000, 120_000 + 1000);
    });

    it('records the move done, once; the registry, reopened, says so', async () => {
      const run = loader();
      run.start(['a.json']);
      await run.drain();
      expect(run.done).to.equal(1);
      expect(existsSync(join(dir, 'bucket', 'archive', 'a.json'))).to.equal(true);
      await registry.close();
      registry = await JsonRegistry.open(join(dir, 'registry.json'), { writable: true });
      expect(registry.get('a.json')?.afterLoad).to.include({ state: 'done', attempts: 1, error: null });
      const again = loader();
      await again.retryDue();
      await again.drain();
      expect(again.done + again.failed).to.equal(0);
    });

    it('with AFTER_LOAD=keep does nothing to any file, and pending actions stay pending', async () => {
      const keep = new AfterLoader({ setting: { kind: 'keep' }, source, registry, telemetry, concurrency: 2, retryFailedMs: 60_000 }, new AbortController().signal);
      keep.start(['a.json']);
      await keep.retryDue();
      await keep.drain();
      expect(existsSync(join(dir, 'bucket', 'a.json'))).to.equal(true);
      expect(registry.get('a.json')?.afterLoad?.state).to.equal('pending');
    });

    it('an action about a version no longer recorded (the file loaded again meanwhile) is not recorded over it', async () => {
      const reloaded = entry({ doneAt: '2026-06-01T00:00:00.000Z', afterLoad: pending() });
      await registry.recordAfterLoad(new Map([['a.json', { ...reloaded, doneAt: '2026-01-01T00:00:00.000Z', afterLoad: pending({ state: 'done' }) }]]));
      expect(registry.get('a.json')?.afterLoad?.state).to.equal('done'); // same version: recorded
      await registry.commit(new Map([['a.json', reloaded]]));
      await registry.recordAfterLoad(new Map([['a.json', { ...reloaded, doneAt: '2026-01-01T00:00:00.000Z', afterLoad: pending({ state: 'done' }) }]]));
      expect(registry.get('a.json')?.afterLoad?.state).to.equal('pending');
    });
  });
});
