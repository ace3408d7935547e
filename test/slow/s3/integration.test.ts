import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import type { S3Client } from '@aws-sdk/client-s3';
import { events, runCli, startCli, tempDir, until } from '../../helpers/cli.js';
import { fixture, type Fixture } from '../../helpers/bucket-fixture.js';
import { dump, postgresDialect, type Dump, type TestDatabase } from '../../helpers/databases.js';
import { countingProxy, putObjects, s3Client, s3Env, s3Server, testBucket, type S3Server, type SeenRequest } from '../../helpers/s3.js';
import { dumpSqlite } from '../../helpers/tables.js';
import { doneKeys } from '../../helpers/registry.js';

const ENV = { DATABASE_URL: 'sqlite://data/t.sqlite3', REGISTRY_PATH: 'registry/t.json', CONCURRENCY: '4', LOG_FORMAT: 'json' };


const listings = (seen: readonly SeenRequest[]): SeenRequest[] => seen.filter((r) => r.method === 'GET' && r.key === '' && r.query.get('list-type') === '2');
const objectGets = (seen: readonly SeenRequest[]): string[] => seen.filter((r) => r.method === 'GET' && r.key !== '').map((r) => r.key);
const finished = (stdout: string): Record<string, unknown> | undefined => events(stdout).find((e) => e.event === 'CycleFinished');

describe('S3 buckets on a real server, Ceph RADOS Gateway (integration)', function () {
  this.timeout(180_000);
  let server: S3Server;
  let client: S3Client;
  const cleanups: Array<() => Promise<void>> = [];
  const newDir = async (): Promise<string> => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    return t.dir;
  };
  const newBucket = async (objects: Record<string, string>): Promise<string> => {
    const b = await testBucket(client);
    cleanups.push(b.drop);
    await putObjects(client, b.name, Object.entries(objects).map(([key, body]) => ({ key, body })), 32);
    return b.name;
  };
  /**
   * The tables uninterrupted runs give over the same files in a local directory: one run per version of the bucket
   * (a later version rewrites the files that changed).
   */
  const reference = async (...versions: Array<Record<string, string>>): Promise<Dump> => {
    const dir = await newDir();
    for (const files of versions) {
      for (const [key, body] of Object.entries(files)) {
        await mkdir(dirname(join(dir, 'bucket', key)), { recursive: true });
        const path = join(dir, 'bucket', key);
        if (!existsSync(path) || readFileSync(path, 'utf8') !== body) await writeFile(path, body);
      }
      // In the order S3 lists them (by UTF-8 bytes), which is the order a key's `source_position` follows.
      await writeFile(join(dir, 'bucket', 'files_list.data'), Object.keys(files).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).join('\n'));
      const r = await runCli(['run', '--once'], { cwd: dir, env: { ...ENV, BUCKET_URL: join(dir, 'bucket'), RECHECK_DONE_SECONDS: '0' } });
      expect(r.code, r.stderr).to.equal(0);
    }
    return dumpSqlite(join(dir, 'data', 't.sqlite3'));
  };

  before(async function () {
    const s = await s3Server();
    if (s === null) this.skip();
    server = s as S3Server;
    client = s3Client(server);
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    client?.destroy();
  });

  it('lists 2,500 keys over three ListObjectsV2 pages, loads the tables of a local run, then fetches none of them again', async () => {
    const fx = fixture({ files: 2500, recordsPerFile: 2, seed: 31 });
    const bucket = await newBucket(fx.files);
    const proxy = await countingProxy(server);
    cleanups.push(proxy.close);
    const dir = await newDir();
    const env = { ...ENV, ...s3Env(server, bucket), S3_ENDPOINT: proxy.endpoint, CONCURRENCY: '16' };
    const r = await runCli(['run', '--once'], { cwd: dir, env });
    expect(r.code, r.stderr).to.equal(0);
    expect(finished(r.stdout)).to.include({ listed: 2500, filesDone: 2500 });
    expect(listings(proxy.seen)).to.have.length(3);
    expect(objectGets(proxy.seen).sort()).to.deep.equal([...fx.keys].sort());
    expect(await dumpSqlite(join(dir, 'data', 't.sqlite3'))).to.deep.equal(await reference(fx.files));

    proxy.seen.length = 0;
    const again = await runCli(['run', '--once'], { cwd: dir, env: { ...env, RECHECK_DONE_SECONDS: '0' } });
    expect(again.code, again.stderr).to.equal(0);
    expect(finished(again.stdout)).to.include({ listed: 2500, filesDone: 0, filesUpToDate: 2500 });
    // ETag and size come with the listing: an unchanged object costs no request, even when a recheck is due.
    expect(listings(proxy.seen)).to.have.length(3);
    expect(objectGets(proxy.seen)).to.deep.equal([]);
  });

  it('PLAN_AHEAD_FILES: loads while the listing goes on, lists no further than the loader takes, and ends with the same tables', async () => {
    const fx = fixture({ files: 2500, recordsPerFile: 2, seed: 31 });
    const bucket = await newBucket(fx.files);
    const proxy = await countingProxy(server);
    cleanups.push(proxy.close);
    const dir = await newDir();
    const env = { ...ENV, ...s3Env(server, bucket), S3_ENDPOINT: proxy.endpoint, PLAN_AHEAD_FILES: '10', LOG_LEVEL: 'debug' };
    const r = await runCli(['run', '--once'], { cwd: dir, env });
    expect(r.code, r.stderr).to.equal(0);
    const log = events(r.stdout);
    const at = (name: string): number => log.findIndex((e) => e.event === name);
    // Loading began with the first page planned, and files were committed before the last page was listed.
    expect(log[at('CycleStarted')]).to.include({ listing: 'continuing', listed: 1000, planned: 1000 });
    expect(at('FileDone')).to.be.within(0, at('ListingFinished'));
    expect(log[at('ListingFinished')]).to.include({ listed: 2500, planned: 2500 });
    expect(finished(r.stdout)).to.include({ listed: 2500, planned: 2500, filesDone: 2500 });
    // The second page was asked for only once the loader had taken in nearly all of the first.
    const secondListing = proxy.seen.indexOf(listings(proxy.seen)[1] as SeenRequest);
    expect(proxy.seen.slice(0, secondListing).filter((q) => q.method === 'GET' && q.key !== '').length).to.be.above(900);
    expect(await dumpSqlite(join(dir, 'data', 't.sqlite3'))).to.deep.equal(await reference(fx.files));
  });

  it('a listing that fails once loading has begun: what was planned is loaded, the cycle fails, and the next one loads the rest', async () => {
    const fx = fixture({ files: 2500, recordsPerFile: 2, seed: 31 });
    const bucket = await newBucket(fx.files);
    const proxy = await countingProxy(server);
    cleanups.push(proxy.close);
    const dir = await newDir();
    const env = { ...ENV, ...s3Env(server, bucket), S3_ENDPOINT: proxy.endpoint, PLAN_AHEAD_FILES: '10', MAX_ATTEMPTS: '1' };
    proxy.failListingsAfter = 2;
    const r = await runCli(['run', '--once'], { cwd: dir, env });
    // A first cycle that fails on an empty registry exits as a failed start does: 2, with the one line that says why.
    expect(r.code, r.stdout).to.equal(2);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
    expect(r.stderr).to.contain('BI_SOURCE_UNAVAILABLE').and.contain('ListObjectsV2: HTTP 500');
    // The two pages listed were planned, loaded and recorded done; nothing was recorded failed.
    expect(doneKeys(dir)).to.deep.equal([...fx.keys].sort().slice(0, 2000));
    proxy.failListingsAfter = null;
    const again = await runCli(['run', '--once'], { cwd: dir, env });
    expect(again.code, again.stderr).to.equal(0);
    expect(finished(again.stdout)).to.include({ listed: 2500, filesDone: 500, filesUpToDate: 2000 });
    expect(await dumpSqlite(join(dir, 'data', 't.sqlite3'))).to.deep.equal(await reference(fx.files));
  });

  it('loads again only the object whose content changed, fetching nothing else', async () => {
    const fx = fixture({ files: 6, recordsPerFile: 30, seed: 32 });
    const bucket = await newBucket(fx.files);
    const proxy = await countingProxy(server);
    cleanups.push(proxy.close);
    const dir = await newDir();
    const env = { ...ENV, ...s3Env(server, bucket), S3_ENDPOINT: proxy.endpoint };
    expect((await runCli(['run', '--once'], { cwd: dir, env })).code).to.equal(0);
    const changed = fx.keys[2] as string;
    const other = fixture({ files: 1, recordsPerFile: 12, seed: 99 });
    const files = { ...fx.files, [changed]: Object.values(other.files)[0] as string };
    await putObjects(client, bucket, [{ key: changed, body: files[changed] as string }]);
    proxy.seen.length = 0;
    // --dry-run plans as the cycle does: the changed object only, by its listed ETag.
    const dry = await runCli(['run', '--dry-run', '--json'], { cwd: dir, env });
    expect(dry.code, dry.stderr).to.equal(0);
    const report = JSON.parse(dry.stdout) as { planned: number; upToDate: number; files: Array<{ key: string; reason: string }> };
    expect(report).to.include({ planned: 1, upToDate: 5 });
    expect(report.files.map((f) => [f.key, f.reason])).to.deep.equal([[changed, 'changed']]);
    expect(objectGets(proxy.seen)).to.deep.equal([changed]);
    proxy.seen.length = 0;
    const r = await runCli(['run', '--once'], { cwd: dir, env });
    expect(r.code, r.stderr).to.equal(0);
    expect(objectGets(proxy.seen)).to.deep.equal([changed]);
    expect(finished(r.stdout)).to.include({ filesDone: 1, filesUpToDate: 5 });
    // The rows of a changed file are upserted over the old ones, as for any bucket: a run on the old files, then the new.
    expect(await dumpSqlite(join(dir, 'data', 't.sqlite3'))).to.deep.equal(await reference(fx.files, files));
  });

  it('lists only under the prefix, names keys relative to it, and keeps spaces, +, %, and unicode exactly', async () => {
    const keys = ['a b.data', 'c+d.data', 'é/ü 100%.data', 'x%2By.data', '日本/データ.json', 'tab\there.data'];
    // Files of records of their own (no shared key), so each key's rows stay its own.
    const bodies = Object.values(fixture({ files: keys.length + 2, recordsPerFile: 5, seed: 33, invalidRate: 0, bookRate: 0, duplicateRate: 0 }).files);
    const bucket = await newBucket({
      ...Object.fromEntries(keys.map((k, i) => [`in/${k}`, bodies[i] as string])), 'other/z.data': bodies[6] as string, 'inside.data': bodies[7] as string,
    });
    const dir = await newDir();
    const r = await runCli(['run', '--once'], { cwd: dir, env: { ...ENV, ...s3Env(server, bucket, 'in') } });
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    expect(doneKeys(dir)).to.deep.equal([...keys].sort());
    const tables = await dumpSqlite(join(dir, 'data', 't.sqlite3'));
    const sources = new Set(Object.values(tables).flat().map((row) => row.source_key));
    expect([...sources].sort()).to.deep.equal([...keys].sort());
  });

  it('a wrong secret stops the start with one BI_SOURCE_UNAVAILABLE line naming the 403, exit 2, and prints no secret', async () => {
    const bucket = await newBucket({ 'a.data': '[]' });
    const dir = await newDir();
    const secret = 'wrong-Secret/Key+ZZZZ1234567890abcdefghij';
    const token = 'SessionToken-QQQQ-0123456789-unique';
    const r = await runCli(['run', '--once'], { cwd: dir, env: { ...ENV, ...s3Env(server, bucket), AWS_SECRET_ACCESS_KEY: secret, AWS_SESSION_TOKEN: token } });
    expect(r.code).to.equal(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).to.have.length(1);
    expect(lines[0]).to.match(/^bucket-ingest: BI_SOURCE_UNAVAILABLE: cannot list bucket s3:\/\/.* HTTP 403 SignatureDoesNotMatch/);
    for (const s of [secret, token, encodeURIComponent(secret)]) expect(r.stdout + r.stderr).to.not.contain(s);
  });

  it('MIN_AGE_SECONDS leaves an object too young for a later cycle; --since touches only objects written since', async () => {
    const [older, newer] = Object.entries(fixture({ files: 2, recordsPerFile: 10, seed: 34 }).files) as [[string, string], [string, string]];
    const b = await testBucket(client);
    cleanups.push(b.drop);
    await putObjects(client, b.name, [{ key: older[0], body: older[1] }]);
    const between = Date.now() + 1500;
    await sleep(3000);
    await putObjects(client, b.name, [{ key: newer[0], body: newer[1] }]);

    const young = await newDir();
    const r = await runCli(['run', '--once'], { cwd: young, env: { ...ENV, ...s3Env(server, b.name), MIN_AGE_SECONDS: '2' } });
    expect(r.code, r.stderr).to.equal(0);
    expect(doneKeys(young)).to.deep.equal([older[0]]);
    await sleep(2000);
    const later = await runCli(['run', '--once'], { cwd: young, env: { ...ENV, ...s3Env(server, b.name), MIN_AGE_SECONDS: '2' } });
    expect(later.code, later.stderr).to.equal(0);
    expect(doneKeys(young)).to.deep.equal([older[0], newer[0]].sort());

    const backfill = await newDir();
    const since = await runCli(['run', '--once', '--since', new Date(between).toISOString()], { cwd: backfill, env: { ...ENV, ...s3Env(server, b.name) } });
    expect(since.code, since.stderr).to.equal(0);
    expect(doneKeys(backfill)).to.deep.equal([newer[0]]);
    const untilRun = await runCli(['run', '--once', '--until', new Date(between).toISOString()], { cwd: backfill, env: { ...ENV, ...s3Env(server, b.name) } });
    expect(untilRun.code, untilRun.stderr).to.equal(0);
    expect(doneKeys(backfill)).to.deep.equal([older[0], newer[0]].sort());
  });

  it('FILES_LIST_KEY set: reads the index object instead of listing', async () => {
    const fx = fixture({ files: 4, recordsPerFile: 10, seed: 35 });
    const listedOnly = fx.keys.slice(0, 3);
    const bucket = await newBucket({ ...Object.fromEntries(Object.entries(fx.files).map(([k, v]) => [`p/${k}`, v])), 'p/files_list.data': listedOnly.join('\n') });
    const proxy = await countingProxy(server);
    cleanups.push(proxy.close);
    const dir = await newDir();
    const r = await runCli(['run', '--once'], { cwd: dir, env: { ...ENV, ...s3Env(server, bucket, 'p'), S3_ENDPOINT: proxy.endpoint, FILES_LIST_KEY: 'files_list.data' } });
    expect(r.code, r.stderr).to.equal(0);
    expect(doneKeys(dir)).to.deep.equal([...listedOnly].sort());
    expect(listings(proxy.seen)).to.have.length(0);
  });

  describe('crash and scale-out', () => {
    let fx: Fixture;
    let bucket: string;
    let tables: Dump;
    before(async () => {
      // Cross-file duplicates make the final tables depend on the order files are committed in.
      fx = fixture({ files: 30, recordsPerFile: 120, seed: 5, duplicateRate: 0.08, invalidRate: 0.05 });
      bucket = await newBucket(fx.files);
      tables = await reference(fx.files);
    });

    it('converges to the uninterrupted tables after SIGKILL mid-run, then restart', async () => {
      const proxy = await countingProxy(server);
      cleanups.push(proxy.close);
      proxy.delayMs = 40;
      const dir = await newDir();
      const env = { ...ENV, ...s3Env(server, bucket), S3_ENDPOINT: proxy.endpoint, COMMIT_MAX_FILES: '2' };
      const run = startCli(['run', '--once'], { cwd: dir, env });
      await until(() => (doneKeys(dir).length >= 6 ? true : undefined), 30_000);
      run.child.kill('SIGKILL');
      expect((await run.finished).signal).to.equal('SIGKILL');
      expect(doneKeys(dir).length).to.be.lessThan(fx.keys.length);
      proxy.delayMs = 0;
      const restart = await runCli(['run', '--once'], { cwd: dir, env });
      expect(restart.code, restart.stderr).to.equal(0);
      expect(doneKeys(dir)).to.deep.equal([...fx.keys].sort());
      expect(await dumpSqlite(join(dir, 'data', 't.sqlite3'))).to.deep.equal(tables);
    });

    const pg = postgresDialect();
    (pg ? it : it.skip)('three workers with the database registry load every object exactly once', async () => {
      const dir = await newDir();
      const newDb = async (): Promise<TestDatabase> => {
        const d = await pg!.create(dir);
        cleanups.push(() => d.drop());
        return d;
      };
      const proxy = await countingProxy(server);
      cleanups.push(proxy.close);
      const env = (db: TestDatabase) => ({ ...s3Env(server, bucket), S3_ENDPOINT: proxy.endpoint, DATABASE_URL: db.url, REGISTRY: 'database', CONCURRENCY: '2', COMMIT_MAX_FILES: '2', LOG_FORMAT: 'json' });
      const single = await newDb();
      expect((await runCli(['run', '--once'], { cwd: dir, env: env(single) })).code).to.equal(0);
      const expected = await dump(single.knex());

      const db = await newDb();
      proxy.delayMs = 150;
      proxy.seen.length = 0;
      const workers = [0, 1, 2].map(() => startCli(['run', '--once'], { cwd: dir, env: env(db) }));
      const results = await Promise.all(workers.map((w) => w.finished));
      for (const r of results) expect(r.code, r.stderr).to.equal(0);
      const done = results.map((r) => Number(finished(r.stdout)?.filesDone ?? 0));
      expect(done.reduce((a, b) => a + b, 0)).to.equal(fx.keys.length);
      expect(done.filter((n) => n > 0).length, `files per worker: ${done.join(', ')}`).to.be.greaterThan(1);
      // Each object fetched once in all: claims in the database keep workers off each other's files.
      expect(objectGets(proxy.seen).sort()).to.deep.equal([...fx.keys].sort());
      const k = db.knex();
      try {
        const rows = (await k('ingest_files').select('key', 'status', 'attempts')) as Array<{ key: string; status: string; attempts: number }>;
        expect(rows).to.have.length(fx.keys.length);
        expect(rows.every((r) => r.status === 'done' && Number(r.attempts) === 1)).to.equal(true);
      } finally {
        await k.destroy();
      }
      expect(await dump(db.knex())).to.deep.equal(expected);
    });
  });

  it('LISTING=ordered lists after the cursor, and a key arriving late below it is loaded by the next full reconciliation', async () => {
    const bodies = Object.values(fixture({ files: 7, recordsPerFile: 5, seed: 36 }).files);
    const body = (i: number): string => bodies[i] as string;
    const first = ['k-001.data', 'k-002.data', 'k-003.data', 'k-004.data', 'k-005.data'];
    const bucket = await newBucket(Object.fromEntries(first.map((k, i) => [k, body(i)])));
    const proxy = await countingProxy(server);
    cleanups.push(proxy.close);
    const dir = await newDir();
    const env = {
      ...ENV, ...s3Env(server, bucket), S3_ENDPOINT: proxy.endpoint, LISTING: 'ordered', LOOKBACK_KEYS: '1', RECONCILE_SECONDS: '8',
      POLL_INTERVAL_SECONDS: '0.2',
    };
    const daemon = startCli(['run'], { cwd: dir, env });
    try {
      await until(() => (doneKeys(dir).length === 5 ? true : undefined), 30_000);
      const fullAt = Date.now();
      // k-009 holds the records of k-005: loaded from an ordered listing, it is still the later file, and its rows win.
      await putObjects(client, bucket, [{ key: 'k-002a.data', body: body(5) }, { key: 'k-009.data', body: body(4) }]);
      await until(() => (doneKeys(dir).includes('k-009.data') ? true : undefined), 30_000);
      // Listed after k-004 (one key of lookback before the last, k-005): k-002a is below the window.
      if (Date.now() - fullAt < 7000) expect(doneKeys(dir)).to.not.include('k-002a.data');
      expect(listings(proxy.seen).some((r) => r.query.get('start-after') === 'k-004.data')).to.equal(true);
      await until(() => (doneKeys(dir).includes('k-002a.data') ? true : undefined), 30_000);
      // Caught by a full listing (no start-after) after RECONCILE_SECONDS.
      expect(listings(proxy.seen).filter((r) => !r.query.has('start-after') && !r.query.has('continuation-token')).length).to.be.at.least(2);
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.finished;
    }
    expect(doneKeys(dir)).to.deep.equal([...first, 'k-002a.data', 'k-009.data'].sort());
    const sources = Object.values(await dumpSqlite(join(dir, 'data', 't.sqlite3'))).flat().map((row) => row.source_key);
    expect(sources).to.include('k-009.data');
    expect(sources, 'rows of k-005 replaced by those of k-009, later in the bucket').to.not.include('k-005.data');
  });
});
