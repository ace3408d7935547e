import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { SETTING_KEYS } from '../../src/config/schema.js';
import { dryRun, dryRunHandler } from '../../src/commands/dry-run.js';
import { explainKey, formatExplanation } from '../../src/commands/explain.js';
import { formatInspect, inspectReport } from '../../src/commands/inspect.js';
import { reprocessHandler, selectKeys } from '../../src/commands/reprocess.js';
import { runHandler } from '../../src/commands/run.js';
import { formatStatus, statusReport } from '../../src/commands/status.js';
import { IngestError } from '../../src/errors.js';
import { reasonPattern } from '../../src/inspect/reasons.js';
import type { RegistryEntry } from '../../src/registry/entry.js';
import { writeLastCycle } from '../../src/registry/last-cycle.js';
import { appendReprocessRequests, readReprocessRequests } from '../../src/registry/requests.js';
import { tempDir } from '../helpers/cli.js';
import { bindingOf, seedRegistry } from '../helpers/registry.js';
import type { Binding } from '../../src/registry/binding.js';

const SAMPLE = resolve('examples/sample-bucket');
const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();

function entry(over: Partial<RegistryEntry> = {}): RegistryEntry {
  const at = iso(T0 - 60_000);
  return {
    status: 'done', etag: '"e1"', size: 10, attempts: 1, failures: 0, loaded: 3, rejected: 1, skipped: 2, error: null,
    firstSeenAt: at, updatedAt: at, doneAt: at, checkedAt: at, nextAttemptAt: null, ...over,
  };
}

/** Runs `fn` with stdout captured. */
async function capture<T>(fn: () => Promise<T>): Promise<{ value: T; out: string }> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    return { value: await fn(), out };
  } finally {
    process.stdout.write = write;
  }
}

describe('operator commands (in-process)', function () {
  this.timeout(30_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let registryPath: string;
  let dbFile: string;
  const args = (): { config: string; profile: string } => ({ config: join(dir, 'config.ini'), profile: 't' });
  const saved: Record<string, string | undefined> = {};

  before(() => {
    // Settings come from the test's config.ini only, never from the developer's environment.
    for (const key of ['PROFILE', ...SETTING_KEYS]) {
      saved[key] = process.env[key];
      delete process.env[key];
    }
  });
  after(() => {
    for (const [key, value] of Object.entries(saved)) if (value !== undefined) process.env[key] = value;
  });

  const profile = (settings: Record<string, string> = {}): void => {
    const all = {
      BUCKET_URL: join(dir, 'bucket'), DATABASE_URL: `sqlite://${dbFile}`, REGISTRY_PATH: registryPath,
      RECHECK_DONE_SECONDS: '3600', ...settings,
    };
    writeFileSync(join(dir, 'config.ini'), `[t]\n${Object.entries(all).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`);
  };
  /** The profile's binding: its database (created if missing) and its bucket. */
  const binding = (): Promise<Binding> => bindingOf(dbFile, { BUCKET_URL: join(dir, 'bucket') });
  const seed = async (entries: Record<string, RegistryEntry>): Promise<void> => seedRegistry(registryPath, await binding(), entries);

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    registryPath = join(dir, 'registry', 't.json');
    dbFile = join(dir, 'data', 't.sqlite3');
    profile();
  });
  afterEach(() => cleanup());

  describe('status', () => {
    it('says no cycle was recorded yet, then shows the last cycle, failed files and pending reprocessing', async () => {
      await seed({ 'a.data': entry(), 'b.data': entry({ status: 'failed', failures: 2, error: 'BI_HTTP_STATUS: b.data: HTTP 500', nextAttemptAt: iso(T0) }), 'c.data': entry({ reprocess: true }) });
      expect(formatStatus(await statusReport(args()))).to.contain('last cycle: no cycle recorded yet');
      await writeLastCycle(registryPath, {
        cycle: 4, finishedAt: iso(T0), ok: true, error: null, binding: await binding(),
        summary: { listed: 3, planned: 1, filesDone: 1, filesFailed: 0, filesUnchanged: 0, filesUpToDate: 2, filesBackoff: 0, filesCancelled: 0, filesElsewhere: 0, failedListed: 0, recordsLoaded: 7, recordsRejected: 1, recordsSkipped: 2, bytes: 99, seconds: 0.25 },
      });
      await appendReprocessRequests(registryPath, await binding(), ['a.data', 'c.data']);
      const report = await statusReport(args());
      expect(report.lastCycle).to.include({ cycle: 4, ok: true });
      expect(report.reprocess).to.deep.equal([
        { key: 'c.data', state: 'marked', requestedAt: null },
        { key: 'a.data', state: 'requested', requestedAt: report.reprocess[1]!.requestedAt },
      ]);
      const text = formatStatus(report);
      expect(text).to.contain(`last cycle: #4 ok, finished at ${iso(T0)}: 3 listed; files 1 done, 0 failed, 2 unchanged`);
      expect(text).to.contain('records 7 loaded, 1 rejected, 2 skipped');
      expect(text).to.match(/b\.data: BI_HTTP_STATUS: b\.data: HTTP 500 \(attempts 1, next try after/);
      expect(text).to.match(/reprocess pending: 2 file\(s\)\n {2}c\.data: marked.*\n {2}a\.data: requested at /);
    });

    it('shows a failed cycle with its error', async () => {
      await writeLastCycle(registryPath, { cycle: 1, finishedAt: iso(T0), ok: false, error: 'BI_SOURCE_UNAVAILABLE: cannot list bucket', summary: null, binding: await binding() });
      expect(formatStatus(await statusReport(args()))).to.contain(`last cycle: #1 failed, finished at ${iso(T0)}: error: BI_SOURCE_UNAVAILABLE: cannot list bucket`);
    });
  });

  it('reads a database registry from the database, and says in one line when it cannot reach it', async () => {
    profile({ DATABASE_URL: 'postgres://app:s3cret@127.0.0.1:9/db' }); // REGISTRY=auto: in the database, which is down
    for (const call of [() => statusReport(args()), () => explainKey({ ...args(), key: 'a' }), () => reprocessHandler({ ...args(), failed: true }), () => dryRun(args())]) {
      const err = (await call().catch((e: unknown) => e)) as IngestError;
      expect(err).to.be.instanceOf(IngestError);
      expect(err.code).to.equal('BI_DATABASE');
      expect(err.message).to.contain('127.0.0.1:9').and.not.contain('s3cret').and.not.contain('\n');
    }
  });

  describe('explain', () => {
    beforeEach(() => seed({
      'done.data': entry(),
      'stale.data': entry({ checkedAt: iso(T0 - 7_200_000) }),
      'failed.data': entry({ status: 'failed', attempts: 3, failures: 3, error: 'BI_HTTP_STATUS: failed.data: HTTP 503', doneAt: null, checkedAt: null, nextAttemptAt: iso(T0 + 240_000) }),
      'due.data': entry({ status: 'failed', failures: 1, error: 'BI_NOT_FOUND: due.data: HTTP 404 not found', doneAt: null, nextAttemptAt: iso(T0 - 1000) }),
      'marked.data': entry({ reprocess: true, updatedAt: iso(T0 - 5000) }),
    }));

    it('a done key: up to date until checkedAt + RECHECK_DONE_SECONDS, every field shown', async () => {
      const x = await explainKey({ ...args(), key: 'done.data' }, T0);
      expect(x.next).to.deep.equal({ reason: 'up-to-date', processes: false, until: iso(T0 - 60_000 + 3_600_000) });
      expect(x.summary).to.equal(`done at ${iso(T0 - 60_000)}, checked at ${iso(T0 - 60_000)} (3 loaded, 1 rejected, 2 skipped); ` +
        `next cycle: up to date — will ask the bucket again after ${iso(T0 - 60_000 + 3_600_000)} (RECHECK_DONE_SECONDS=3600)`);
      const text = formatExplanation(x);
      for (const field of ['status', 'etag', 'size', 'attempts', 'records', 'error', 'first seen', 'updated', 'done', 'checked', 'next attempt', 'reprocess']) {
        expect(text).to.match(new RegExp(`\\n {2}${field} +\\S`));
      }
      expect((await explainKey({ ...args(), key: 'stale.data' }, T0)).next.reason).to.equal('recheck');
    });

    it('a done key of a bucket listed with versions (S3): up to date by its ETag and size, no recheck timer, as the cycle plans it', async () => {
      profile({ BUCKET_URL: 's3://bkt/in' });
      const s3 = await bindingOf(dbFile, { BUCKET_URL: 's3://bkt/in', FILES_LIST_KEY: '' });
      await seedRegistry(registryPath, s3, { 'stale.data': entry({ etag: '"e1"', size: 10, checkedAt: iso(T0 - 7_200_000) }), 'bare.data': entry({ etag: null, checkedAt: iso(T0 - 7_200_000) }) });
      const x = await explainKey({ ...args(), key: 'stale.data' }, T0);
      expect(x.next).to.deep.equal({ reason: 'up-to-date', processes: false, until: null });
      expect(x.summary).to.contain('up to date while the bucket\'s listing shows ETag "e1" and 10 bytes, the version loaded');
      // With no ETag recorded the listing cannot tell: the timer decides, as in the cycle.
      expect((await explainKey({ ...args(), key: 'bare.data' }, T0)).next.reason).to.equal('recheck');
    });

    it('a failed key in backoff, and one whose backoff is over', async () => {
      const x = await explainKey({ ...args(), key: 'failed.data' }, T0);
      expect(x.next).to.deep.equal({ reason: 'backoff', processes: false, until: iso(T0 + 240_000) });
      expect(x.summary).to.match(new RegExp(`^failed 3 times since its last success, last error BI_HTTP_STATUS: failed.data: HTTP 503; next cycle: waits \\(backoff\\) until ${iso(T0 + 240_000)}`));
      const due = await explainKey({ ...args(), key: 'due.data' }, T0);
      expect(due.next.reason).to.equal('retry');
      expect(due.summary).to.match(/^failed once .*; next cycle: tries it again/);
    });

    it('an unknown key, with a did-you-mean', async () => {
      const x = await explainKey({ ...args(), key: 'done.dat' }, T0);
      expect(x.entry).to.equal(null);
      expect(x.next.reason).to.equal('new');
      expect(x.summary).to.equal('unknown to the registry: the next cycle processes it if the index lists it; did you mean done.data?');
    });

    it('a key marked for reprocessing, and one with a request not yet applied', async () => {
      const marked = await explainKey({ ...args(), key: 'marked.data' }, T0);
      expect(marked.next.reason).to.equal('reprocess');
      expect(marked.summary).to.contain(`marked in the registry at ${iso(T0 - 5000)}`);
      await appendReprocessRequests(registryPath, await binding(), ['failed.data'], new Date(T0 - 1000));
      const requested = await explainKey({ ...args(), key: 'failed.data' }, T0);
      expect(requested.next).to.include({ reason: 'reprocess', processes: true });
      expect(requested.pendingRequests).to.deep.equal([{ key: 'failed.data', requestedAt: iso(T0 - 1000) }]);
      expect(requested.summary).to.contain(`reprocess requested at ${iso(T0 - 1000)}`);
    });
  });

  describe('reprocess', () => {
    const entries: Array<[string, RegistryEntry]> = [
      ['2024/a.data', entry()], ['2024/b.data', entry({ status: 'failed' })], ['2025/c.data', entry()], ['.hidden.data', entry()],
      ['x[1].data', entry()], ['top.data', entry({ status: 'failed' })],
    ];
    const select = (patterns: string[], failed: boolean) =>
      selectKeys((async function* () { yield* entries; })(), new Set(entries.map(([k]) => k)), patterns, failed);

    it('selects exact keys, globs (dot files included, * stops at /) and failed entries, in registry order', async () => {
      expect(await select(['top.data'], false)).to.deep.equal({ keys: ['top.data'], unmatched: [] });
      expect((await select(['2024/*'], false)).keys).to.deep.equal(['2024/a.data', '2024/b.data']);
      expect((await select(['*.data'], false)).keys).to.deep.equal(['.hidden.data', 'x[1].data', 'top.data']);
      expect((await select(['**/*.data'], false)).keys).to.have.length(6);
      expect((await select(['x[1].data'], false)).keys).to.deep.equal(['x[1].data']); // a known key is taken literally
      expect((await select([], true)).keys).to.deep.equal(['2024/b.data', 'top.data']);
      expect((await select(['2025/*'], true)).keys).to.deep.equal(['2024/b.data', '2025/c.data', 'top.data']);
      expect((await select(['2024/*', 'nope*', '2026/x.data'], false)).unmatched).to.deep.equal(['nope*', '2026/x.data']);
    });

    it('appends requests for the matches and reports how many; a pattern that matches nothing marks nothing', async () => {
      await seed(Object.fromEntries(entries));
      const { value: code, out } = await capture(() => reprocessHandler({ ...args(), keys: ['2024/*'] }));
      expect(code).to.equal(0);
      expect(out).to.match(/^marked 2 file\(s\) for reprocessing: 2024\/a\.data, 2024\/b\.data\n/);
      const err = (await reprocessHandler({ ...args(), keys: ['top.data', 'nope*'] }).catch((e: unknown) => e)) as IngestError;
      expect(err).to.be.instanceOf(IngestError);
      expect(err.code).to.equal('BI_USAGE');
      expect(err.message).to.contain('"nope*" matched none of the 6 keys');
      expect((await readReprocessRequests(registryPath, await binding())).map((r) => r.key)).to.deep.equal(['2024/a.data', '2024/b.data']);
      const none = (await reprocessHandler({ ...args(), keys: [] }).catch((e: unknown) => e)) as IngestError;
      expect(none.code).to.equal('BI_USAGE');
    });
  });

  describe('inspect', () => {
    const song = (artist_name: unknown, title: unknown, year: unknown = 1) => ({ type: 'song', data: { artist_name, title, year, release: 'r', pad: 'x'.repeat(300) } });

    /** Loads a two-file bucket through the real pipeline (`run --once`), so the rows and reasons are the real ones. */
    async function makeDatabase(): Promise<void> {
      mkdirSync(join(dir, 'bucket'));
      writeFileSync(join(dir, 'bucket', 'f0.data'), JSON.stringify([
        song('a', 'bad year', '1999'), song('b', 'x'), song('a', 'z'), song('a', 'other bad year', '2001'),
        { type: 'movie', data: null }, song(['a; b, got c'], 't', 1.5),
      ]));
      writeFileSync(join(dir, 'bucket', 'f1.data'), JSON.stringify([
        song('c', 'third bad year', '2001'), song('a', 'y'), { type: 'song', data: [] }, 446, song('c', 'w'), song(['a; b, got d'], 't', 2.5),
      ]));
      writeFileSync(join(dir, 'bucket', 'files_list.data'), 'f0.data\nf1.data\n');
      // One file at a time, so the rejections' ids follow the index (files otherwise commit as they are ready).
      const { value: code } = await capture(() => runHandler({ ...args(), once: true, concurrency: 1, 'log-format': 'json' }));
      expect(code).to.equal(0);
    }

    it('counts rows, samples by the table key, and groups rejections by reason without their values', async () => {
      await makeDatabase();
      const r = await inspectReport({ ...args(), samples: 2 });
      expect(r.tables.map((t) => [t.table, t.exists, t.rows])).to.deep.equal([['apps', true, 0], ['movies', true, 0], ['songs', true, 4], ['rejected_records', true, 8]]);
      const songs = r.tables[2]!;
      expect(songs.orderBy).to.deep.equal(['artist_name', 'title']);
      expect(songs.samples.map((s) => [s.artist_name, s.title])).to.deep.equal([['a', 'y'], ['a', 'z']]);
      expect(r.tables[3]!.samples.map((s) => [s.source_key, s.record_index])).to.deep.equal([['f0.data', 0], ['f0.data', 3]]);
      expect(String(r.tables[3]!.samples[0]!.raw).length).to.be.at.most(200);
      expect(r.rejections.total).to.equal(8);
      expect(r.rejections.groups.map((g) => [g.reason, g.count, g.types])).to.deep.equal([
        ['year: expected SafeInteger, got …', 3, ['song']],
        ['artist_name: expected string, got …; year: expected SafeInteger, got …', 2, ['song']],
        ['data: expected object, got …', 2, ['movie', 'song']],
        ['record is not an object, got …', 1, [null]],
      ]);
      expect(r.rejections.groups[0]!.example).to.include({ sourceKey: 'f0.data', recordIndex: 0, type: 'song', reason: 'year: expected SafeInteger, got "1999"' });
      expect(r.rejections.groups[0]!.example.raw).to.have.length(200).and.match(/…$/);
      const text = formatInspect(r);
      expect(text).to.match(/ {2}songs +4 row\(s\)/);
      expect(text).to.match(/ +3 {2}year: expected SafeInteger, got … {2}\[song\]\n +e\.g\. f0\.data #0: \{"type":"song"/);
    });

    it('refuses a missing database with one line, and does not create it', async () => {
      const err = (await inspectReport(args()).catch((e: unknown) => e)) as IngestError;
      expect(err).to.be.instanceOf(IngestError);
      expect(err.code).to.equal('BI_DATABASE');
      expect(err.message).to.contain('does not exist').and.not.contain('\n');
      expect(existsSync(join(dir, 'data'))).to.equal(false);
    });

    it('reasonPattern replaces every value, whatever it holds', () => {
      expect(reasonPattern('year: expected SafeInteger, got "1999"')).to.equal('year: expected SafeInteger, got …');
      expect(reasonPattern('a: expected string, got {"x":"; y: z, got 1"}; b: expected number, got missing')).to.equal('a: expected string, got …; b: expected number, got …');
      expect(reasonPattern('a: expected string, got "cut here…; b: expected number, got NaN')).to.equal('a: expected string, got …; b: expected number, got …');
      expect(reasonPattern('a: expected string, got "with \\" quote; and, got"')).to.equal('a: expected string, got …');
      expect(reasonPattern('record is not an object, got [1,[2]]')).to.equal('record is not an object, got …');
      expect(reasonPattern('invalid data')).to.equal('invalid data');
    });
  });

  describe('dry run', () => {
    it('reports what a cycle would load and writes nothing: no data/ or registry/ directory', async () => {
      cpSync(SAMPLE, join(dir, 'bucket'), { recursive: true });
      const report = await dryRun(args());
      expect(report).to.include({ listed: 6, planned: 6, upToDate: 0, backoff: 0 });
      expect(report.totals).to.include({ load: 6, failed: 0, loaded: 146, rejected: 18, skipped: 76 });
      expect(report.files.map((f) => f.index)).to.deep.equal([0, 1, 2, 3, 4, 5]);
      expect(report.files.every((f) => f.reason === 'new')).to.equal(true);
      expect(readdirSync(dir).sort()).to.deep.equal(['bucket', 'config.ini']);
    });

    it('plans with the registry and its pending requests, honours --force, and exits 1 when files would fail', async () => {
      cpSync(SAMPLE, join(dir, 'bucket'), { recursive: true });
      const [first, second, third] = (await dryRun(args())).files.map((f) => f.key);
      const now = iso(Date.now());
      const info = statSync(join(dir, 'bucket', third!));
      const localEtag = `"${info.size.toString(16)}-${Math.trunc(info.mtimeMs).toString(16)}"`; // how LocalSource tags a version
      await seed({
        [first!]: entry({ doneAt: now, checkedAt: now }),
        [second!]: entry({ doneAt: now, checkedAt: now }),
        [third!]: entry({ etag: localEtag, size: info.size, checkedAt: iso(Date.now() - 7_200_000) }),
      });
      await appendReprocessRequests(registryPath, await binding(), [second!]);
      const report = await dryRun(args());
      expect(report).to.include({ planned: 5, upToDate: 1 });
      expect(report.files.find((f) => f.key === second)?.reason).to.equal('reprocess');
      expect(report.files.find((f) => f.key === third)).to.include({ reason: 'recheck', outcome: 'unchanged', loaded: 0 });
      expect(report.totals).to.include({ load: 4, unchanged: 1 });
      expect((await dryRun({ ...args(), force: true })).planned).to.equal(6);
      writeFileSync(join(dir, 'bucket', 'files_list.data'), `${first}\nmissing.data\n`);
      const files = () => Object.fromEntries(readdirSync(join(dir, 'registry')).map((n) => [n, readFileSync(join(dir, 'registry', n), 'utf8')]));
      const before = files();
      const { value: code, out } = await capture(() => dryRunHandler({ ...args(), force: true }));
      expect(code).to.equal(1);
      expect(out).to.match(/^fail +missing\.data: BI_NOT_FOUND/m);
      expect(out).to.match(/files 1 would load, 0 unchanged, 1 would fail/);
      expect(files()).to.deep.equal(before);
      expect(Object.keys(before)).to.include('t.json.requests');
    });
  });
});
