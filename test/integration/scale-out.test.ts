import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import knexFactory from 'knex';
import { events, runCli, startCli, tempDir } from '../helpers/cli.js';
import { fixture } from '../helpers/bucket-fixture.js';
import { dump, postgresAt, postgresDialect, type Dump, type TestDatabase } from '../helpers/databases.js';
import { privatePgOrSkip, startPrivatePostgres, type PrivatePostgres } from '../helpers/private-pg.js';
import { dbName } from '../helpers/run-id.js';
import { startTestBucket, type Fault, type TestBucket } from '../helpers/test-bucket.js';

interface Row { key: string; status: string; attempts: number; claimed_by: string | null }

async function rows(db: TestDatabase): Promise<Row[]> {
  const k = db.knex();
  try {
    return ((await k('ingest_files').select('key', 'status', 'attempts', 'claimed_by')) as Row[]).map((r) => ({ ...r, attempts: Number(r.attempts) }));
  } finally {
    await k.destroy();
  }
}

const pg = postgresDialect();

(pg ? describe : describe.skip)('several daemons share one bucket through PostgreSQL (integration)', function () {
  this.timeout(180_000);
  const fx = fixture({ files: 36, recordsPerFile: 100, seed: 77, duplicateRate: 0.08 });
  let bucket: TestBucket;
  let reference: Dump;
  const cleanups: Array<() => Promise<void>> = [];
  let dir: string;

  const newDb = async (): Promise<TestDatabase> => {
    const d = await pg!.create(dir);
    cleanups.push(() => d.drop());
    return d;
  };
  const env = (db: TestDatabase, extra: Record<string, string> = {}) => ({ BUCKET_URL: bucket.url, DATABASE_URL: db.url, CONCURRENCY: '2', COMMIT_MAX_FILES: '2', ...extra });
  const slow = (ms: number) => { for (const k of fx.keys) bucket.addFaults(k, [{ kind: 'delay', ms } as Fault]); };

  before(async () => {
    const t = await tempDir();
    dir = t.dir;
    cleanups.push(t.cleanup);
    bucket = await startTestBucket({ files: fx.files });
    const db = await newDb();
    const r = await runCli(['run', '--once'], { cwd: dir, env: env(db) });
    expect(r.code, r.stderr).to.equal(0);
    reference = await dump(db.knex());
  });
  after(async () => {
    await bucket?.close();
    for (const c of cleanups.reverse()) await c();
  });

  it('three workers load every file exactly once, list the bucket once, and end with the single-worker tables', async () => {
    const db = await newDb();
    slow(30);
    const indexBefore = bucket.hits('files_list.data');
    const workers = [0, 1, 2].map(() => startCli(['run', '--once'], { cwd: dir, env: env(db) }));
    const results = await Promise.all(workers.map((w) => w.finished));
    for (const r of results) expect(r.code, r.stderr).to.equal(0);
    const done = results.map((r) => Number(events(r.stdout).find((e) => e.event === 'CycleFinished')?.filesDone ?? 0));
    expect(done.reduce((a, b) => a + b, 0)).to.equal(fx.keys.length);
    expect(done.filter((n) => n > 0).length, `files per worker: ${done.join(', ')}`).to.be.greaterThan(1);
    const registry = await rows(db);
    expect(registry).to.have.length(fx.keys.length);
    expect(registry.every((r) => r.status === 'done' && r.attempts === 1 && r.claimed_by === null)).to.equal(true);
    expect(bucket.hits('files_list.data') - indexBefore).to.equal(1);
    for (const k of fx.keys) expect(bucket.hits(k)).to.be.at.least(1);
    expect(await dump(db.knex())).to.deep.equal(reference);
  });

  it('a worker killed mid-file loses its claims after LEASE_SECONDS and the others finish its files', async () => {
    const db = await newDb();
    slow(150);
    const e = env(db, { LEASE_SECONDS: '1', POLL_INTERVAL_SECONDS: '0.3' });
    // Another host's name: its claims cannot be seen to be dead, so only the lease frees them.
    const victim = startCli(['run'], { cwd: dir, env: { ...e, WORKER_NAME: 'other-host' } });
    const pid = victim.child.pid!;
    // Wait until the victim holds a claim, then kill it without a chance to clean up.
    const until = Date.now() + 30_000;
    let claimedByVictim: string[] = [];
    while (claimedByVictim.length === 0 && Date.now() < until) {
      claimedByVictim = (await rows(db).catch(() => [])).filter((r) => r.claimed_by?.startsWith(`other-host:${pid}:`)).map((r) => r.key);
      await sleep(20);
    }
    expect(claimedByVictim.length).to.be.greaterThan(0);
    victim.child.kill('SIGKILL');
    await victim.finished;

    const survivors = [0, 1].map(() => startCli(['run'], { cwd: dir, env: e }));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const r = await rows(db);
      if (r.length === fx.keys.length && r.every((x) => x.status === 'done')) break;
      await sleep(100);
    }
    for (const s of survivors) s.child.kill('SIGTERM');
    for (const s of survivors) expect((await s.finished).code).to.equal(0);
    const registry = await rows(db);
    expect(registry.filter((r) => r.status === 'done')).to.have.length(fx.keys.length);
    for (const key of claimedByVictim) expect(registry.find((r) => r.key === key)?.claimed_by).to.equal(null);
    expect(await dump(db.knex())).to.deep.equal(reference);
  });

  it('loses nothing when the database drops every connection mid-run', async () => {
    const db = await newDb();
    slow(40);
    // The server is shared with other runs: cut only this daemon's connections, which the URL names apart.
    const appName = dbName();
    const run = startCli(['run', '--once'], { cwd: dir, env: env(db, { DATABASE_URL: `${db.url}&application_name=${appName}` }) });
    const admin = knexFactory({ client: 'pg', connection: process.env.TEST_PG_URL! });
    try {
      const until = Date.now() + 30_000;
      let exited = false;
      void run.finished.then(() => (exited = true));
      while (!run.output().includes('"event":"CycleStarted"') && Date.now() < until) await sleep(10);
      // Claims and commits are a few statements per batch of files, so a kill may find every connection idle (the
      // pool just drops it): keep killing until one hits a statement in flight.
      while (!run.output().includes('DatabaseRetry') && !exited && Date.now() < until) {
        await sleep(50);
        await admin.raw('select pg_terminate_backend(pid) from pg_stat_activity where application_name = ?', [appName]);
      }
    } finally {
      await admin.destroy();
    }
    const r = await run.finished;
    expect(r.code, r.stdout.slice(-2000) + r.stderr).to.equal(0);
    expect(r.stdout).to.contain('DatabaseRetry');
    expect((await rows(db)).every((x) => x.status === 'done' && x.attempts === 1)).to.equal(true);
    expect(await dump(db.knex())).to.deep.equal(reference);
  });

  it('a file the database refuses is recorded failed, and the rest of its group still commits', async () => {
    const db = await newDb();
    const song = (title: string) => JSON.stringify([{ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } }]);
    const local = await startTestBucket({ files: { 'a.data': song('a'), 'bad.data': song('bad'), 'c.data': song('c') }, index: 'a.data' });
    cleanups.push(() => local.close());
    // POLL_INTERVAL_SECONDS=0: no reuse of the first run's shared listing, which the index has outgrown.
    const e = { ...env(db), BUCKET_URL: local.url, RETRY_FAILED_SECONDS: '3600', POLL_INTERVAL_SECONDS: '0' };
    expect((await runCli(['run', '--once'], { cwd: dir, env: e })).code).to.equal(0); // creates the schema
    const k = db.knex();
    try {
      await k.raw(`create function refuse() returns trigger language plpgsql as $$ begin
        if new.source_key = 'bad.data' then raise exception 'refused by a trigger'; end if; return new; end $$`);
      await k.raw('create trigger refuse before insert or update on songs for each row execute function refuse()');
    } finally {
      await k.destroy();
    }
    local.setIndex('a.data\nbad.data\nc.data');
    const r = await runCli(['run', '--once'], { cwd: dir, env: e });
    expect(r.code, r.stdout.slice(-3000)).to.equal(1);
    const registry = await rows(db);
    expect(registry.find((x) => x.key === 'bad.data')?.status).to.equal('failed');
    expect(registry.find((x) => x.key === 'c.data')?.status).to.equal('done');
    const tables = await dump(db.knex());
    expect(tables.songs!.map((row) => row.title)).to.have.members(['a', 'c']);
  });
});

const privatePg = privatePgOrSkip('the PostgreSQL restart test (it needs a private cluster)');

/**
 * A real server restart, on a cluster this suite starts and removes itself: never the machine's own server, which
 * other runs share.
 */
(privatePg ? describe : describe.skip)('a daemon when PostgreSQL restarts mid-run (integration, private cluster)', function () {
  this.timeout(120_000);
  const fx = fixture({ files: 36, recordsPerFile: 100, seed: 77, duplicateRate: 0.08 });
  let cluster: PrivatePostgres | undefined;
  let bucket: TestBucket | undefined;
  let reference: Dump;
  let dir: string;
  const cleanups: Array<() => Promise<void>> = [];
  const newDb = async (): Promise<TestDatabase> => {
    const d = await postgresAt(cluster!.url).create(dir);
    cleanups.push(() => d.drop());
    return d;
  };
  const env = (db: TestDatabase) => ({ BUCKET_URL: bucket!.url, DATABASE_URL: db.url, CONCURRENCY: '2', COMMIT_MAX_FILES: '2' });

  before(async () => {
    const t = await tempDir();
    dir = t.dir;
    cleanups.push(t.cleanup);
    cluster = await startPrivatePostgres(privatePg!);
    bucket = await startTestBucket({ files: fx.files });
    const db = await newDb();
    const r = await runCli(['run', '--once'], { cwd: dir, env: env(db) });
    expect(r.code, r.stderr).to.equal(0);
    reference = await dump(db.knex());
  });
  after(async () => {
    await bucket?.close();
    for (const c of cleanups.reverse()) await c();
    await cluster?.destroy();
  });

  /** When the server at `url` started: a restart changes it. */
  const startedAt = async (url: string): Promise<string> => {
    const k = knexFactory({ client: 'pg', connection: url });
    try {
      return String(((await k.raw('select pg_postmaster_start_time()::text as t')) as { rows: Array<{ t: string }> }).rows[0]?.t);
    } finally {
      await k.destroy();
    }
  };

  it('loses nothing when PostgreSQL itself restarts mid-run', async () => {
    const db = await newDb();
    const shared = process.env.TEST_PG_URL;
    const sharedBefore = shared ? await startedAt(shared) : null;
    const ownBefore = await startedAt(cluster!.url);
    for (const k of fx.keys) bucket!.addFaults(k, [{ kind: 'delay', ms: 60 } as Fault]);
    const run = startCli(['run', '--once'], { cwd: dir, env: env(db) });
    let exited = false;
    void run.finished.then(() => (exited = true));
    // Should an assertion below fail, the daemon must not outlive the cluster and its working directory.
    cleanups.push(async () => {
      run.child.kill('SIGKILL');
      await run.finished;
    });
    const until = Date.now() + 30_000;
    while (!run.output().includes('"event":"CycleStarted"') && Date.now() < until) await sleep(10);
    await sleep(200);
    await cluster!.restart();
    expect(exited, 'the restart came while the daemon was still running').to.equal(false);
    expect(await startedAt(cluster!.url), 'the private cluster restarted').to.not.equal(ownBefore);
    if (shared) expect(await startedAt(shared), 'the machine\'s own server (TEST_PG_URL) was left alone').to.equal(sharedBefore);
    const r = await run.finished;
    expect(r.code, r.stdout.slice(-2000) + r.stderr).to.equal(0);
    expect((await rows(db)).every((x) => x.status === 'done' && x.attempts === 1)).to.equal(true);
    expect(await dump(db.knex())).to.deep.equal(reference);
  });
});
