import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { generateFiles, type GeneratedFile } from '../../bench/generate.js';
import { loadConfig } from '../../src/config/load.js';
import { openApp } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import { runCycle } from '../../src/pipeline.js';
import { Telemetry } from '../../src/telemetry.js';
import type { Source } from '../../src/sources/types.js';
import type { StatusReport } from '../../src/commands/status.js';
import { events, runCli, startCli, tempDir, until } from '../helpers/cli.js';
import { dialects, dump, postgresDialect, type Dump, type TestDatabase } from '../helpers/databases.js';

/** A bad file: never done, so never deleted or moved. */
const BROKEN = 'broken.data';

/**
 * AFTER_LOAD on a local bucket, on every dialect (SQLite with the JSON registry, PostgreSQL and MySQL with the
 * database one): done after the commit, never for a failed file, recorded, retried, completed after a crash, and
 * the moved copies never loaded.
 */
describe('AFTER_LOAD: delete or move each file once it is loaded (integration)', function () {
  this.timeout(180_000);
  const files: GeneratedFile[] = [...generateFiles({ files: 12, recordsPerFile: 40, seed: 16, invalidRate: 0.05, duplicateRate: 0.05 })];
  const keys = files.map((f) => f.key);
  let reference: Dump;
  const cleanups: Array<() => Promise<void>> = [];

  /** The bucket in `dir/bucket`: the generated files, the broken one, and the index listing them (and `extraIndex`). */
  const writeBucket = (dir: string, extraIndex: string[] = []): string => {
    const bucket = join(dir, 'bucket');
    mkdirSync(bucket, { recursive: true });
    for (const f of files) writeFileSync(join(bucket, f.key), f.body);
    writeFileSync(join(bucket, BROKEN), '[{"type": "song", "data": ');
    writeFileSync(join(bucket, 'files_list.data'), [...keys, BROKEN, ...extraIndex].join('\n'));
    return bucket;
  };

  before(async () => {
    // What loading the bucket and keeping the files gives: every test's tables must end equal to it.
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const bucket = writeBucket(t.dir);
    const r = await runCli(['run', '--once'], { cwd: t.dir, env: { BUCKET_URL: bucket, DATABASE_URL: 'sqlite://data/ref.sqlite3', REGISTRY_PATH: 'registry/ref.json' } });
    expect(r.code, r.stderr).to.equal(1); // the broken file
    const { default: knex } = await import('knex');
    reference = await dump(knex({ client: 'better-sqlite3', connection: { filename: join(t.dir, 'data', 'ref.sqlite3') }, useNullAsDefault: true }));
    expect(reference.rejected_records!.length).to.be.greaterThan(0);
    expect(files.filter((f) => f.invalid > 0).length, 'files with rejections, which are done and so archived too').to.be.greaterThan(0);
  });
  after(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(1).reverse()) await c();
  });

  it('refuses AFTER_LOAD other than keep for an HTTP bucket at start-up: one BI_CONFIG line, exit 2, nothing created', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const r = await runCli(['run', '--once'], { cwd: t.dir, env: { BUCKET_URL: 'http://127.0.0.1:1/bucket', AFTER_LOAD: 'delete' } });
    expect(r.code).to.equal(2);
    expect(r.stderr.trim().split('\n')).to.deep.equal([
      'bucket-ingest: BI_CONFIG: AFTER_LOAD in the environment: delete needs a bucket the daemon can delete from (a local directory or S3); ' +
        'an HTTP bucket http://127.0.0.1:1/bucket is read-only: use AFTER_LOAD=keep',
    ]);
    expect(readdirSync(t.dir)).to.deep.equal([]);
  });

  it('a file rewritten after its load and before its move is left in place and loaded again, then moved', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const bucket = writeBucket(t.dir);
    const env = { BUCKET_URL: bucket, AFTER_LOAD: 'move:archive/', RETRY_FAILED_SECONDS: '0', DATABASE_URL: 'sqlite://data/t.sqlite3', REGISTRY_PATH: 'registry/t.json' };
    writeFileSync(join(bucket, 'archive'), 'blocks the moves');
    const first = await runCli(['run', '--once'], { cwd: t.dir, env });
    expect(events(first.stdout).filter((e) => e.event === 'AfterLoadError')).to.have.length(keys.length);
    const rewritten = keys[0] as string;
    writeFileSync(join(bucket, rewritten), JSON.stringify([{ type: 'song', data: { artist_name: 'Second', title: 'Version', year: 1, release: 'r' } }]));
    rmSync(join(bucket, 'archive'));

    const second = await runCli(['run', '--once'], { cwd: t.dir, env });
    expect(events(second.stdout).filter((e) => e.event === 'AfterLoadSkipped').map((e) => e.key)).to.deep.equal([rewritten]);
    expect(existsSync(join(bucket, rewritten))).to.equal(true);
    expect(readdirSync(join(bucket, 'archive'))).to.have.length(keys.length - 1);

    const third = await runCli(['run', '--once'], { cwd: t.dir, env });
    expect(events(third.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 1, afterLoadDone: 1 });
    expect(readFileSync(join(bucket, 'archive', rewritten), 'utf8')).to.contain('Second');
    const { default: knex } = await import('knex');
    const k = knex({ client: 'better-sqlite3', connection: { filename: join(t.dir, 'data', 't.sqlite3') }, useNullAsDefault: true });
    try {
      expect(await k('songs').where({ artist_name: 'Second' }).select('source_key')).to.deep.equal([{ source_key: rewritten }]);
    } finally {
      await k.destroy();
    }
  });

  it('killed with SIGKILL at any moment and restarted, every file ends moved, none loaded from its copy, and the tables exact', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    // More, smaller files than the others use, so the kill lands while files are being loaded and moved.
    const many = [...generateFiles({ files: 400, recordsPerFile: 5, seed: 7, invalidRate: 0.05 })];
    const bucket = join(t.dir, 'bucket');
    mkdirSync(bucket);
    for (const f of many) writeFileSync(join(bucket, f.key), f.body);
    writeFileSync(join(bucket, 'files_list.data'), many.map((f) => f.key).join('\n'));
    const ref = await tempDir();
    cleanups.push(ref.cleanup);
    const refBucket = join(ref.dir, 'bucket');
    mkdirSync(refBucket);
    for (const f of many) writeFileSync(join(refBucket, f.key), f.body);
    writeFileSync(join(refBucket, 'files_list.data'), many.map((f) => f.key).join('\n'));
    const base = { DATABASE_URL: 'sqlite://data/t.sqlite3', REGISTRY_PATH: 'registry/t.json', CONCURRENCY: '2', COMMIT_MAX_FILES: '2', DECODE_THREADS: '0' };
    expect((await runCli(['run', '--once'], { cwd: ref.dir, env: { ...base, BUCKET_URL: refBucket } })).code).to.equal(0);
    const { default: knex } = await import('knex');
    const open = (d: string) => knex({ client: 'better-sqlite3', connection: { filename: join(d, 'data', 't.sqlite3') }, useNullAsDefault: true });
    const expected = await dump(open(ref.dir));

    const env = { ...base, BUCKET_URL: bucket, AFTER_LOAD: 'move:archive/' };
    const moved = () => (existsSync(join(bucket, 'archive')) ? readdirSync(join(bucket, 'archive')).length : 0);
    for (const at of [5, 60]) {
      const run = startCli(['run', '--once'], { cwd: t.dir, env });
      await until(() => (moved() >= at || run.child.exitCode !== null ? true : undefined), 60_000);
      run.child.kill('SIGKILL');
      await run.finished;
    }
    expect(moved()).to.be.lessThan(many.length);
    const restart = await runCli(['run', '--once'], { cwd: t.dir, env });
    expect(restart.code, restart.stderr).to.equal(0);
    expect(moved()).to.equal(many.length);
    expect(readdirSync(bucket).sort()).to.deep.equal(['archive', 'files_list.data']);
    expect(await dump(open(t.dir))).to.deep.equal(expected);
    const s = JSON.parse((await runCli(['status', '--json'], { cwd: t.dir, env })).stdout) as StatusReport;
    expect(s.afterLoad).to.deep.equal({ done: many.length, pending: 0, failing: [] });
  });

  const pg = postgresDialect();
  (pg ? it : it.skip)('PostgreSQL: three workers on one bucket move every file once and end with the single-worker tables', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const db = await pg!.create(t.dir);
    cleanups.push(() => db.drop());
    const bucket = writeBucket(t.dir);
    const env = { BUCKET_URL: bucket, DATABASE_URL: db.url, CONCURRENCY: '2', COMMIT_MAX_FILES: '2', AFTER_LOAD: 'move:archive/' };
    const results = await Promise.all([0, 1, 2].map(() => runCli(['run', '--once'], { cwd: t.dir, env })));
    for (const r of results) expect(r.code, r.stderr).to.be.oneOf([0, 1]); // 1: the broken file, failed by whoever took it
    const done = results.map((r) => Number(events(r.stdout).find((e) => e.event === 'CycleFinished')?.filesDone ?? 0));
    expect(done.reduce((a, b) => a + b, 0)).to.equal(keys.length);
    expect(readdirSync(join(bucket, 'archive')).sort()).to.deep.equal([...keys].sort());
    expect(readdirSync(bucket).sort()).to.deep.equal(['archive', BROKEN, 'files_list.data'].sort());
    const s = JSON.parse((await runCli(['status', '--json'], { cwd: t.dir, env })).stdout) as StatusReport;
    expect(s.afterLoad).to.deep.equal({ done: keys.length, pending: 0, failing: [] });
    expect(await dump(db.knex())).to.deep.equal(reference);
  });

  for (const dialect of dialects()) {
    describe(dialect.name, () => {
      let dir: string;
      let db: TestDatabase;
      let bucket: string;
      beforeEach(async () => {
        const t = await tempDir();
        cleanups.push(t.cleanup);
        const made = await dialect.create(t.dir);
        cleanups.push(() => made.drop());
        dir = t.dir;
        db = made;
      });

      const env = (extra: Record<string, string>): Record<string, string> => ({
        BUCKET_URL: bucket, DATABASE_URL: db.url, REGISTRY_PATH: 'registry/t.json', CONCURRENCY: '4', COMMIT_MAX_FILES: '3',
        RETRY_FAILED_SECONDS: '0', ...extra,
      });
      const run = (extra: Record<string, string>) => runCli(['run', '--once'], { cwd: dir, env: env(extra) });
      const status = async (extra: Record<string, string>): Promise<StatusReport> => {
        const r = await runCli(['status', '--json'], { cwd: dir, env: env(extra) });
        expect(r.code, r.stderr).to.equal(0);
        return JSON.parse(r.stdout) as StatusReport;
      };
      const finished = (stdout: string) => events(stdout).find((e) => e.event === 'CycleFinished') as Record<string, unknown>;
      const named = (stdout: string, event: string) => events(stdout).filter((e) => e.event === event).map((e) => e.key as string);

      it('move:PREFIX moves each loaded file (rejections and all) after its commit, never a failed one; the copies are never loaded, and rechecks of the emptied keys find nothing to do', async () => {
        // The index lists a key under the prefix too: a moved copy must never be taken for a new file.
        bucket = writeBucket(dir, [`archive/${keys[0]}`]);
        const move = { AFTER_LOAD: 'move:archive/' };
        const first = await run(move);
        expect(first.code, first.stderr).to.equal(1);
        expect(finished(first.stdout)).to.include({ filesDone: keys.length, filesFailed: 1, afterLoadDone: keys.length, afterLoadFailed: 0 });
        for (const key of keys) {
          expect(existsSync(join(bucket, key)), key).to.equal(false);
          expect(existsSync(join(bucket, 'archive', key)), key).to.equal(true);
        }
        expect(existsSync(join(bucket, BROKEN))).to.equal(true);
        expect(existsSync(join(bucket, 'archive', BROKEN))).to.equal(false);
        expect(await dump(db.knex())).to.deep.equal(reference);
        const s = await status(move);
        expect(s.files).to.deep.equal({ total: keys.length + 1, done: keys.length, failed: 1 });
        expect(s.afterLoad).to.deep.equal({ done: keys.length, pending: 0, failing: [] });
        expect((await runCli(['explain', keys[1] as string], { cwd: dir, env: env(move) })).stdout).to.match(/after load +move:archive\/: done at 20/);
        const dry = await runCli(['run', '--dry-run'], { cwd: dir, env: env(move) });
        expect(dry.stdout, dry.stderr).to.contain(`${keys.length + 1} listed`); // not the key under the prefix

        // Every key asked again: each is gone from its key, which is what the move left, not a failure.
        const again = await run({ ...move, RECHECK_DONE_SECONDS: '0' });
        expect(finished(again.stdout)).to.include({ filesDone: 0, filesFailed: 1, filesUnchanged: keys.length, afterLoadDone: 0 });
        expect(named(again.stdout, 'FileError')).to.deep.equal([BROKEN]);
        expect(await dump(db.knex())).to.deep.equal(reference);
        expect((await status(move)).files.total).to.equal(keys.length + 1);
        // So does --force: nothing to load at the emptied keys, and their rows stay.
        const forced = await runCli(['run', '--once', '--force'], { cwd: dir, env: env(move) });
        expect(finished(forced.stdout)).to.include({ filesDone: 0, filesUnchanged: keys.length });
        expect(named(forced.stdout, 'FileEmptied')).to.have.members(keys);
        expect(named(again.stdout, 'FileEmptied')).to.deep.equal([]); // a recheck finding it so is routine
        expect(await dump(db.knex())).to.deep.equal(reference);
      });

      it('delete removes each loaded file, never a failed one; a new file written at the same key later is loaded and deleted in turn', async () => {
        bucket = writeBucket(dir);
        const del = { AFTER_LOAD: 'delete' };
        const first = await run(del);
        expect(finished(first.stdout)).to.include({ filesDone: keys.length, afterLoadDone: keys.length });
        expect(readdirSync(bucket).sort()).to.deep.equal([BROKEN, 'files_list.data'].sort());
        expect(await dump(db.knex())).to.deep.equal(reference);

        const reused = keys[0] as string;
        writeFileSync(join(bucket, reused), JSON.stringify([{ type: 'song', data: { artist_name: 'After', title: 'Load', year: 2026, release: 'r' } }]));
        const next = await run({ ...del, RECHECK_DONE_SECONDS: '0' });
        expect(finished(next.stdout)).to.include({ filesDone: 1, afterLoadDone: 1 });
        expect(existsSync(join(bucket, reused))).to.equal(false);
        const k = db.knex();
        try {
          expect(await k('songs').where({ artist_name: 'After', title: 'Load' }).select('source_key')).to.deep.equal([{ source_key: reused }]);
        } finally {
          await k.destroy();
        }
      });

      it('a move that fails is recorded with its error and retried on later cycles without loading the file again, until it succeeds', async () => {
        bucket = writeBucket(dir);
        writeFileSync(join(bucket, 'archive'), 'a file where the archive directory should be'); // mkdir fails, even for root
        const move = { AFTER_LOAD: 'move:archive/' };
        const first = await run(move);
        expect(finished(first.stdout)).to.include({ filesDone: keys.length, afterLoadDone: 0, afterLoadFailed: keys.length });
        expect(named(first.stdout, 'AfterLoadError')).to.have.members(keys);
        for (const key of keys) expect(existsSync(join(bucket, key)), key).to.equal(true);
        expect(await dump(db.knex())).to.deep.equal(reference);
        let s = await status(move);
        expect(s.afterLoad.pending).to.equal(keys.length);
        expect(s.afterLoad.failing.map((f) => f.key)).to.have.members(keys);
        for (const f of s.afterLoad.failing) {
          expect(f).to.include({ action: 'move:archive/', attempts: 1 });
          expect(f.error).to.match(/^BI_AFTER_LOAD: .*cannot move it to archive\//);
        }
        const plain = await runCli(['status'], { cwd: dir, env: env(move) });
        expect(plain.stdout).to.contain(`after load: ${keys.length} pending (${keys.length} failed, to be tried again), 0 done`);

        const second = await run(move);
        expect(finished(second.stdout)).to.include({ filesDone: 0, afterLoadFailed: keys.length });
        s = await status(move);
        for (const f of s.afterLoad.failing) expect(f.attempts).to.equal(2);

        rmSync(join(bucket, 'archive'));
        const third = await run(move);
        expect(finished(third.stdout)).to.include({ filesDone: 0, afterLoadDone: keys.length, afterLoadFailed: 0 });
        for (const key of keys) expect(existsSync(join(bucket, 'archive', key)), key).to.equal(true);
        expect((await status(move)).afterLoad).to.deep.equal({ done: keys.length, pending: 0, failing: [] });
        expect(await dump(db.knex())).to.deep.equal(reference);
      });

      it('a crash between the commit and the move leaves the moves pending; the next start completes them and loads nothing twice', async () => {
        bucket = writeBucket(dir);
        const settings = env({ AFTER_LOAD: 'move:archive/', LOG_LEVEL: 'silent' });
        const open = async () => {
          const config = loadConfig({ env: settings, cwd: dir });
          return openApp(config, new Telemetry(createLogger({ level: 'silent' })), dir);
        };
        // First life: every file is committed, and the process "dies" as the first move starts: no move is done
        // and none recorded, as after a kill -9 between the commit and the move.
        const stop = new AbortController();
        const abort = new AbortController();
        const app = await open();
        const real = app.source;
        let asked = 0;
        const dying: Source = {
          description: real.description,
          listKeys: (signal) => real.listKeys(signal),
          fetch: (key, opts) => real.fetch(key, opts),
          close: () => real.close(),
          afterLoad: (_key, _action, signal) => {
            asked++;
            abort.abort();
            return Promise.reject(signal?.reason ?? new Error('killed'));
          },
        };
        app.source = dying;
        let firstLife;
        try {
          firstLife = await runCycle(app, { cycle: 1, force: false, stop: stop.signal, abort: abort.signal });
        } finally {
          await app.close();
        }
        expect(asked).to.be.greaterThan(0);
        expect(firstLife.afterLoadDone).to.equal(0);
        for (const key of keys) expect(existsSync(join(bucket, key)), key).to.equal(true);
        const between = await status({ AFTER_LOAD: 'move:archive/' });
        const doneBefore = between.files.done;
        expect(doneBefore).to.be.greaterThan(0);
        expect(between.afterLoad.pending).to.equal(doneBefore);
        expect(between.afterLoad.failing).to.deep.equal([]); // not a failure: cut short

        // Restart: the pending moves are done; only files the first life had not committed are loaded.
        const restart = await run({ AFTER_LOAD: 'move:archive/' });
        expect(finished(restart.stdout)).to.include({ filesDone: keys.length - doneBefore, afterLoadDone: keys.length });
        for (const key of keys) expect(existsSync(join(bucket, 'archive', key)), key).to.equal(true);
        expect((await status({ AFTER_LOAD: 'move:archive/' })).afterLoad).to.deep.equal({ done: keys.length, pending: 0, failing: [] });
        expect(await dump(db.knex())).to.deep.equal(reference);
      });
    });
  }
});
