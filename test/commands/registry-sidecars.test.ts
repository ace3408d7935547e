import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { IngestError } from '../../src/errors.js';
import { planKey } from '../../src/plan.js';
import type { RegistryEntry } from '../../src/registry/entry.js';
import { JsonRegistry } from '../../src/registry/json-registry.js';
import { lastCyclePath, readLastCycle, writeLastCycle, type LastCycle } from '../../src/registry/last-cycle.js';
import { appendReprocessRequests, applyReprocessRequests, readReprocessRequests, requestsPath } from '../../src/registry/requests.js';
import { tempDir } from '../helpers/cli.js';
import { entry } from '../helpers/registry.js';
import type { Binding } from '../../src/registry/binding.js';

/** The database and bucket the side files of these tests are about. */
const BOUND: Binding = { database: '5b0c8f3e-0000-4000-8000-000000000001', bucket: 'file:///buckets/a/#files_list.data' };

describe('registry side files', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let path: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    path = join(dir, 'reg', 'p.json');
  });
  afterEach(() => cleanup());

  describe('reprocess requests', () => {
    it('appends requests without the registry lock, and reads them back in order', async () => {
      const daemon = await JsonRegistry.open(path, { writable: true }); // holds the lock, like a running daemon
      await appendReprocessRequests(path, BOUND, ['a', 'b'], new Date('2026-02-01T00:00:00Z'));
      await appendReprocessRequests(path, BOUND, ['c']);
      const requests = await readReprocessRequests(path, BOUND);
      expect(requests.map((r) => r.key)).to.deep.equal(['a', 'b', 'c']);
      expect(requests[0]!.requestedAt).to.equal('2026-02-01T00:00:00.000Z');
      expect(existsSync(`${path}.lock`)).to.equal(true);
      await daemon.close();
    });

    it('applies requests to known entries only, durably, then removes them; applying again changes nothing', async () => {
      const reg = await JsonRegistry.open(path, { writable: true });
      await reg.commit(new Map([['a.data', entry()], ['b.data', entry({ status: 'failed', error: 'x', nextAttemptAt: '2999-01-01T00:00:00.000Z' })], ['c.data', entry()]]));
      await appendReprocessRequests(path, BOUND, ['a.data', 'b.data', 'unknown.data', 'a.data']);
      expect(await applyReprocessRequests(reg, BOUND)).to.equal(2);
      expect(reg.get('a.data')?.reprocess).to.equal(true);
      expect(reg.get('b.data')?.reprocess).to.equal(true);
      expect(reg.get('c.data')?.reprocess).to.equal(undefined);
      expect(reg.get('unknown.data')).to.equal(undefined);
      expect(existsSync(requestsPath(path))).to.equal(false);
      expect(await readReprocessRequests(path, BOUND)).to.deep.equal([]);
      // Durable before close: a reader replaying the journal sees the marks, and the plan follows them.
      const reader = await JsonRegistry.open(path, { writable: false });
      const opts = { force: false, now: Date.parse('2026-01-01T00:00:01Z'), recheckDoneMs: 3_600_000 };
      expect(planKey(reader.get('a.data'), opts)).to.equal('reprocess');
      expect(planKey(reader.get('b.data'), opts)).to.equal('reprocess'); // skips the backoff
      expect(planKey(reader.get('c.data'), opts)).to.equal('up-to-date');
      await appendReprocessRequests(path, BOUND, ['a.data']);
      expect(await applyReprocessRequests(reg, BOUND)).to.equal(0);
      expect(await applyReprocessRequests(reg, BOUND)).to.equal(0); // nothing pending: no file, no change
      await reg.close();
    });

    it('finishes an application a crash interrupted (after the rename, before the commit), then takes newer requests', async () => {
      const reg = await JsonRegistry.open(path, { writable: true });
      await reg.commit(new Map([['a', entry()], ['b', entry()]]));
      await appendReprocessRequests(path, BOUND, ['a']);
      // What a crash between "take the file" and "commit" leaves behind:
      writeFileSync(`${requestsPath(path)}.applying`, readFileSync(requestsPath(path)));
      writeFileSync(requestsPath(path), '');
      await appendReprocessRequests(path, BOUND, ['b']);
      expect((await readReprocessRequests(path, BOUND)).map((r) => r.key)).to.deep.equal(['a', 'b']);
      expect(await applyReprocessRequests(reg, BOUND)).to.equal(2);
      expect(reg.get('a')?.reprocess).to.equal(true);
      expect(reg.get('b')?.reprocess).to.equal(true);
      expect(readdirSync(join(dir, 'reg')).filter((n) => n.includes('.requests'))).to.deep.equal([]);
      await reg.close();
    });

    it('ignores a line torn by a crash, and the torn line does not swallow the next request', async () => {
      const reg = await JsonRegistry.open(path, { writable: true });
      await reg.commit(new Map([['a', entry()], ['b', entry()]]));
      await appendReprocessRequests(path, BOUND, ['a']);
      appendFileSync(requestsPath(path), '{"key":"b","reque'); // torn
      await appendReprocessRequests(path, BOUND, ['b']);
      expect((await readReprocessRequests(path, BOUND)).map((r) => r.key)).to.deep.equal(['a', 'b']);
      expect(await applyReprocessRequests(reg, BOUND)).to.equal(2);
      await reg.close();
    });

    it('loses no request appended while a daemon applies requests', async () => {
      const reg = await JsonRegistry.open(path, { writable: true, compactEvery: 1_000_000 });
      const keys = Array.from({ length: 150 }, (_, i) => `k${i}`);
      await reg.commit(new Map(keys.map((k) => [k, entry()] as [string, RegistryEntry])));
      let appending = true;
      const applier = (async () => {
        while (appending) {
          await applyReprocessRequests(reg, BOUND);
          await sleep(1); // a real daemon applies once per cycle; this one as often as it can
        }
      })();
      await Promise.all(keys.map((k) => appendReprocessRequests(path, BOUND, [k])));
      appending = false;
      await applier;
      await applyReprocessRequests(reg, BOUND);
      expect(keys.filter((k) => reg.get(k)?.reprocess !== true)).to.deep.equal([]);
      await reg.close();
    });
    it('takes only the requests about its own database and bucket', async () => {
      const reg = await JsonRegistry.open(path, { writable: true });
      await reg.commit(new Map([['a.data', entry()], ['b.data', entry()], ['c.data', entry()]]));
      await appendReprocessRequests(path, BOUND, ['a.data']);
      await appendReprocessRequests(path, { ...BOUND, bucket: 'file:///buckets/b/#files_list.data' }, ['b.data']);
      await appendReprocessRequests(path, { ...BOUND, database: '5b0c8f3e-0000-4000-8000-000000000002' }, ['c.data']);
      expect((await readReprocessRequests(path, BOUND)).map((r) => r.key)).to.deep.equal(['a.data']);
      expect(await applyReprocessRequests(reg, BOUND)).to.equal(1);
      expect([reg.get('a.data')?.reprocess, reg.get('b.data')?.reprocess, reg.get('c.data')?.reprocess]).to.deep.equal([true, undefined, undefined]);
      await reg.close();
    });
  });

  describe('last cycle', () => {
    const summary = {
      listed: 6, planned: 6, filesDone: 5, filesFailed: 1, filesUnchanged: 0, filesUpToDate: 0, filesBackoff: 0, filesCancelled: 0, filesElsewhere: 0, failedListed: 1,
      recordsLoaded: 146, recordsRejected: 18, recordsSkipped: 76, bytes: 1000, seconds: 0.5,
    };

    it('is null until a cycle is recorded, then reads back what was written', async () => {
      expect(await readLastCycle(path)).to.equal(null);
      const data: LastCycle = { cycle: 3, finishedAt: '2026-01-01T00:00:00.000Z', ok: true, error: null, summary };
      await writeLastCycle(path, data);
      expect(await readLastCycle(path)).to.deep.equal(data);
      expect(readdirSync(join(dir, 'reg'))).to.deep.equal(['p.json.cycle.json']); // no temp file left behind
    });

    it('replaces the previous cycle, keeps a failed one without summary, and masks secrets in its error', async () => {
      await writeLastCycle(path, { cycle: 1, finishedAt: '2026-01-01T00:00:00.000Z', ok: true, error: null, summary });
      await writeLastCycle(path, { cycle: 2, finishedAt: '2026-01-01T00:01:00.000Z', ok: false, error: 'cannot list http://u:hunter2@host/b', summary: null });
      const last = await readLastCycle(path);
      expect(last).to.include({ cycle: 2, ok: false, summary: null });
      expect(last?.error).to.contain('http://u:***@host/b');
      expect(readFileSync(lastCyclePath(path), 'utf8')).to.not.contain('hunter2');
    });

    it('reads a file written before a summary field existed, and refuses one without the fields status shows', async () => {
      const { bytes: _bytes, filesElsewhere: _elsewhere, failedListed: _failedListed, ...older } = summary;
      await writeLastCycle(path, { cycle: 1, finishedAt: 'x', ok: true, error: null, summary });
      writeFileSync(lastCyclePath(path), JSON.stringify({ version: 1, cycle: 2, finishedAt: 'y', ok: true, error: null, summary: older }));
      expect((await readLastCycle(path))?.summary).to.deep.equal(older);
      const { filesDone: _done, ...broken } = summary;
      writeFileSync(lastCyclePath(path), JSON.stringify({ version: 1, cycle: 2, finishedAt: 'y', ok: true, error: null, summary: broken }));
      const err = (await readLastCycle(path).catch((e: unknown) => e)) as IngestError;
      expect(err.code).to.equal('BI_REGISTRY_CORRUPT');
      expect(err.message).to.contain('filesDone');
    });

    it('refuses a corrupt file with an error naming it', async () => {
      await writeLastCycle(path, { cycle: 1, finishedAt: 'x', ok: true, error: null, summary });
      writeFileSync(lastCyclePath(path), '{"cycle":1,"finishedAt":');
      const err = (await readLastCycle(path).catch((e: unknown) => e)) as IngestError;
      expect(err).to.be.instanceOf(IngestError);
      expect(err.code).to.equal('BI_REGISTRY_CORRUPT');
      expect(err.message).to.contain(lastCyclePath(path));
    });
  });
});
