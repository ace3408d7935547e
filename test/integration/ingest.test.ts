import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import knexFactory from 'knex';
import { setTimeout as sleep } from 'node:timers/promises';
import { events, runCli, startCli, tempDir } from '../helpers/cli.js';
import { fixture } from '../helpers/bucket-fixture.js';
import { dumpSqlite } from '../helpers/tables.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

interface Entry { status: string; attempts: number; loaded: number; rejected: number; skipped: number; error: string | null; etag: string | null }

describe('ingest over HTTP (integration)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let bucket: TestBucket | undefined;

  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(async () => {
    await bucket?.close();
    bucket = undefined;
    await cleanup();
  });

  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    BUCKET_URL: bucket?.url ?? '',
    DATABASE_URL: 'sqlite://data/t.sqlite3',
    REGISTRY_PATH: 'registry/t.json',
    RETRY_FAILED_SECONDS: '0',
    ...extra,
  });
  const run = (args: string[] = [], extra: Record<string, string> = {}) => runCli(['run', '--once', ...args], { cwd: dir, env: env(extra) });
  const registry = async (): Promise<Record<string, Entry>> => {
    const r = await runCli(['status', '--json'], { cwd: dir, env: env() });
    expect(r.code, r.stderr).to.equal(0);
    const status = JSON.parse(r.stdout) as { registry: string };
    const snapshot = JSON.parse(readFileSync(status.registry, 'utf8')) as { entries: Record<string, Entry> };
    return snapshot.entries;
  };
  const dbFile = () => join(dir, 'data', 't.sqlite3');

  it('loads every valid record, stores every invalid one with its reason, counts skips, and marks files done', async () => {
    const fx = fixture({ files: 8, recordsPerFile: 60, seed: 7, invalidRate: 0.1, duplicateRate: 0 });
    bucket = await startTestBucket({ files: fx.files, index: ` ${fx.keys.join('\r\n')}\n\n${fx.keys[0]}` });
    const r = await run();
    expect(r.code, r.stderr).to.equal(0);
    const finished = events(r.stdout).find((e) => e.event === 'CycleFinished');
    expect(finished).to.include({ filesDone: 8, filesFailed: 0, recordsLoaded: fx.valid, recordsRejected: fx.invalid, recordsSkipped: fx.skipped });

    const dump = await dumpSqlite(dbFile());
    expect(dump.songs!.length + dump.movies!.length + dump.apps!.length).to.equal(fx.valid);
    expect(dump.rejected_records!.length).to.equal(fx.invalid);
    for (const rej of dump.rejected_records!) {
      expect(rej.reason).to.be.a('string').and.not.equal('');
      expect(fx.keys).to.include(rej.source_key);
      expect(() => JSON.parse(rej.raw as string)).to.not.throw();
    }
    expect(dump.songs!.every((s) => fx.keys.includes(s.source_key as string))).to.equal(true);
    const entries = await registry();
    expect(Object.keys(entries)).to.have.members(fx.keys);
    expect(Object.values(entries).every((e) => e.status === 'done' && e.attempts === 1)).to.equal(true);
    expect(Object.values(entries).reduce((n, e) => n + e.loaded + e.rejected + e.skipped, 0)).to.equal(8 * 60);
    const db = knexFactory({ client: 'better-sqlite3', connection: { filename: dbFile() }, useNullAsDefault: true });
    const [mode] = (await db.raw('PRAGMA journal_mode')) as Array<{ journal_mode: string }>;
    const [page] = (await db.raw('PRAGMA page_size')) as Array<{ page_size: number }>;
    await db.destroy();
    expect(mode?.journal_mode).to.equal('wal');
    expect(page?.page_size).to.equal(16384); // a new database's pages: 16 KB
  });

  it('as a daemon, polls every POLL_INTERVAL_SECONDS and picks up files added to the index', async () => {
    const one = JSON.stringify([{ type: 'song', data: { artist_name: 'A', title: 'T', year: 1, release: 'R' } }]);
    bucket = await startTestBucket({ files: { 'a.data': one, 'b.data': one.replace('"T"', '"U"') }, index: 'a.data' });
    const daemon = startCli(['run'], { cwd: dir, env: env({ POLL_INTERVAL_SECONDS: '0.2' }) });
    const until = Date.now() + 20_000;
    while (!daemon.output().includes('"cycle":2') && Date.now() < until) await sleep(20);
    bucket.setIndex('a.data\nb.data');
    const pickedUp = () => events(daemon.output()).some((e) => e.event === 'CycleFinished' && e.filesDone === 1 && Number(e.cycle) > 2);
    while (!pickedUp() && Date.now() < until) await sleep(20);
    expect(pickedUp(), daemon.output()).to.equal(true);
    daemon.child.kill('SIGTERM');
    const r = await daemon.finished;
    expect(r.code).to.equal(0);
    const dump = await dumpSqlite(dbFile());
    expect(dump.songs!.map((row) => row.title)).to.have.members(['T', 'U']);
  });

  it('is idempotent: a second run fetches nothing and changes nothing; --force reloads and the tables end the same', async () => {
    const fx = fixture({ files: 5, recordsPerFile: 50, seed: 3, duplicateRate: 0.1 });
    bucket = await startTestBucket({ files: fx.files });
    expect((await run()).code).to.equal(0);
    const first = await dumpSqlite(dbFile());
    const gets = bucket.requests.length;

    const registryFile = join(dir, 'registry', 't.json');
    const snapshotBefore = statSync(registryFile);
    const second = await run();
    expect(second.code).to.equal(0);
    // A cycle that finds nothing new does not rewrite the registry.
    expect(statSync(registryFile)).to.include({ ino: snapshotBefore.ino, mtimeMs: snapshotBefore.mtimeMs });
    expect(readFileSync(`${registryFile}.journal`, 'utf8')).to.equal('');
    expect(events(second.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 0, filesUpToDate: 5 });
    expect(bucket.requests.length - gets).to.equal(1); // the index only
    expect(await dumpSqlite(dbFile())).to.deep.equal(first);

    const forced = await run(['--force']);
    expect(forced.code).to.equal(0);
    expect(events(forced.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 5 });
    for (const key of fx.keys) expect(bucket.hits(key)).to.equal(2);
    expect(await dumpSqlite(dbFile())).to.deep.equal(first);
    const entries = await registry();
    expect(Object.values(entries).every((e) => e.attempts === 2 && e.status === 'done')).to.equal(true);
  });

  it('commits many small files at a time by default (one loaded_at per transaction)', async () => {
    // One record per file: a window and a group of a fixed 32 files would need at least 8 commits for 240 files.
    const fx = fixture({ files: 240, recordsPerFile: 1, seed: 5, invalidRate: 0, bookRate: 0, duplicateRate: 0 });
    bucket = await startTestBucket({ files: fx.files });
    const r = await run([], { CONCURRENCY: '4' });
    expect(r.code, r.stderr).to.equal(0);
    expect(events(r.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 240, recordsLoaded: 240 });
    const db = knexFactory({ client: 'better-sqlite3', connection: { filename: dbFile() }, useNullAsDefault: true });
    try {
      const rows = await db.raw<Array<{ loaded_at: string; files: number }>>(
        'SELECT loaded_at, COUNT(DISTINCT source_key) AS files FROM (SELECT loaded_at, source_key FROM songs UNION ALL ' +
        'SELECT loaded_at, source_key FROM movies UNION ALL SELECT loaded_at, source_key FROM apps) GROUP BY loaded_at');
      expect(rows.reduce((n, r) => n + r.files, 0)).to.equal(240);
      expect(Math.max(...rows.map((r) => r.files))).to.be.above(32);
    } finally {
      await db.destroy();
    }
  });

  it('processes a file again when its ETag changes, replacing its rejections', async () => {
    const a = JSON.stringify([
      { type: 'song', data: { artist_name: 'A', title: 'T', year: 1, release: 'R' } },
      { type: 'song', data: { artist_name: 'A', title: 'U', year: 'x', release: 'R' } },
    ]);
    bucket = await startTestBucket({ files: { 'a.data': a, 'b.data': '[]' } });
    expect((await run([], { RECHECK_DONE_SECONDS: '0' })).code).to.equal(0);
    bucket.setFile('a.data', JSON.stringify([{ type: 'song', data: { artist_name: 'A', title: 'T', year: 2, release: 'R2' } }]));
    const r = await run([], { RECHECK_DONE_SECONDS: '0' });
    expect(r.code).to.equal(0);
    expect(events(r.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 1, filesUnchanged: 1 });
    const dump = await dumpSqlite(dbFile());
    expect(dump.songs).to.deep.equal([{ artist_name: 'A', title: 'T', year: 2, release: 'R2', source_key: 'a.data', source_position: 0 }]);
    expect(dump.rejected_records).to.deep.equal([]);
    const entries = await registry();
    expect(entries['a.data']).to.include({ attempts: 2, loaded: 1, rejected: 0 });
    expect(entries['b.data']).to.include({ attempts: 1 });
  });

  it('survives 500, 503, 429 with Retry-After, resets and truncated bodies within one cycle', async () => {
    const fx = fixture({ files: 6, recordsPerFile: 40, seed: 11 });
    const [k0, k1, k2, k3, k4] = fx.keys as [string, string, string, string, string];
    bucket = await startTestBucket({
      files: fx.files,
      faults: {
        [k0]: [{ kind: 'status', status: 500 }, { kind: 'status', status: 503 }],
        [k1]: [{ kind: 'status', status: 429, retryAfter: '1' }],
        [k2]: [{ kind: 'reset' }, { kind: 'reset' }],
        [k3]: [{ kind: 'truncate' }],
        [k4]: [{ kind: 'status', status: 502 }, { kind: 'truncate' }, { kind: 'reset' }],
        'files_list.data': [{ kind: 'status', status: 503 }],
      },
    });
    const started = Date.now();
    const r = await run();
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(Date.now() - started).to.be.greaterThan(900); // Retry-After: 1 was honoured
    expect(events(r.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 6, recordsLoaded: fx.valid });
    const retries = events(r.stdout).filter((e) => e.event === 'FileRetry');
    expect(retries.map((e) => e.key)).to.include.members([k0, k1, k2, k3, k4, 'files_list.data']);
    expect(bucket.hits(k4)).to.equal(4);
    expect((await dumpSqlite(dbFile())).rejected_records!.length).to.equal(fx.invalid);
  });

  it('records broken files as failed with their error, never done, exits 1, and retries them on a later cycle', async () => {
    const good = JSON.stringify([{ type: 'app', data: { name: 'n', genre: 'g', version: '1', rating: 4, size_bytes: 3_000_000_000 } }]);
    bucket = await startTestBucket({
      files: { 'ok.data': good, 'broken.data': good, 'empty.data': '', 'string.data': '"song"', 'notjson.data': '[{"type":', 'missing.data': good },
      broken: ['broken.data'],
    });
    bucket.deleteFile('missing.data');
    const r = await run([], { MAX_ATTEMPTS: '3' });
    expect(r.code).to.equal(1);
    const entries = await registry();
    expect(entries['ok.data']!.status).to.equal('done');
    expect(entries['broken.data']).to.include({ status: 'failed' });
    expect(entries['broken.data']!.error).to.contain('HTTP 500').and.contain('after 3 attempts');
    expect(entries['empty.data']!.error).to.contain('empty body');
    expect(entries['string.data']!.error).to.contain('not a JSON array');
    expect(entries['notjson.data']!.error).to.contain('not JSON');
    expect(entries['missing.data']!.error).to.contain('404');
    expect(bucket.hits('broken.data')).to.equal(3);
    expect(bucket.hits('missing.data')).to.equal(1); // a 404 is not retried within the cycle

    bucket.setFile('missing.data', good);
    bucket.setFile('empty.data', '[]');
    const again = await run([], { MAX_ATTEMPTS: '3' });
    expect(again.code).to.equal(1); // broken.data still fails
    const after = await registry();
    expect(after['missing.data']).to.include({ status: 'done', attempts: 2 });
    expect(after['empty.data']).to.include({ status: 'done', attempts: 2 });
    expect(after['ok.data']).to.include({ attempts: 1 });
    expect(after['broken.data']).to.include({ status: 'failed', attempts: 2 });
    // Once the bucket stops listing the broken files, they no longer make --once fail.
    bucket.setIndex('ok.data\nmissing.data\nempty.data');
    expect((await run([], { MAX_ATTEMPTS: '3' })).code).to.equal(0);
    const db = knexFactory({ client: 'better-sqlite3', connection: { filename: dbFile() }, useNullAsDefault: true });
    const apps = await db('apps').select('size_bytes', 'is_awesome', 'rating');
    await db.destroy();
    expect(apps).to.deep.equal([{ size_bytes: 3_000_000_000, is_awesome: 0, rating: 4 }]);
  });

  it('waits out the backoff of a failed file before trying it again', async () => {
    bucket = await startTestBucket({ files: { 'x.data': '[]' }, broken: ['x.data'] });
    expect((await run([], { MAX_ATTEMPTS: '1', RETRY_FAILED_SECONDS: '3600' })).code).to.equal(1);
    const r = await run([], { MAX_ATTEMPTS: '1', RETRY_FAILED_SECONDS: '3600' });
    expect(events(r.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesBackoff: 1, filesFailed: 0 });
    expect(bucket.hits('x.data')).to.equal(1);
  });

  it('gives up on a hanging server after REQUEST_TIMEOUT_SECONDS and URL-encodes keys', async () => {
    const body = '[]';
    bucket = await startTestBucket({ files: { 'dir/a key ü.data': body, 'slow.data': body }, faults: { 'slow.data': [{ kind: 'hang' }] } });
    const r = await run([], { REQUEST_TIMEOUT_SECONDS: '0.3' });
    expect(r.code, r.stdout).to.equal(0);
    expect(bucket.requests.some((q) => q.path === '/dir/a%20key%20%C3%BC.data')).to.equal(true);
    expect(bucket.hits('slow.data')).to.equal(2);
  });

  it('refuses files over MAX_FILE_MB without reading them whole', async () => {
    bucket = await startTestBucket({ files: { 'big.data': `[${'0,'.repeat(600_000)}0]` } });
    const r = await run([], { MAX_FILE_MB: '1' });
    expect(r.code).to.equal(1);
    expect((await registry())['big.data']!.error).to.contain('MAX_FILE_MB');
  });
});
