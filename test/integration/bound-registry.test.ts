import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { events, runCli, startCli, tempDir, type CliResult } from '../helpers/cli.js';
import { dialects } from '../helpers/databases.js';
import { countRows } from '../helpers/tables.js';

const SAMPLE = resolve('examples/sample-bucket');

interface Status {
  untrusted: { reason: string; entries: number } | null;
  files: { total: number; done: number; failed: number };
  records: { loaded: number; rejected: number; skipped: number };
  lastCycle: { cycle: number } | null;
}

/**
 * The promise of README "What it promises": a registry entry counts only for the database and the bucket it was
 * written for. Each case below read as "6 up to date" with empty tables before registries were bound.
 */
describe('a registry bound to its database and bucket (integration)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    cpSync(SAMPLE, join(dir, 'bucket'), { recursive: true });
  });
  afterEach(() => cleanup());

  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    BUCKET_URL: join(dir, 'bucket'), DATABASE_URL: 'sqlite://data/t.sqlite3', REGISTRY_PATH: 'registry/t.json', LOG_FORMAT: 'json', ...extra,
  });
  const run = (extra: Record<string, string> = {}): Promise<CliResult> => runCli(['run', '--once'], { cwd: dir, env: env(extra) });
  const finished = (r: CliResult): Record<string, unknown> | undefined => events(r.stdout).find((e) => e.event === 'CycleFinished');
  const status = async (extra: Record<string, string> = {}): Promise<Status> => {
    const r = await runCli(['status', '--json'], { cwd: dir, env: env(extra) });
    expect(r.code, r.stderr).to.equal(0);
    return JSON.parse(r.stdout) as Status;
  };
  const songs = (file = 'data/t.sqlite3'): Promise<number> => countRows(join(dir, file), 'songs');

  it('processes every file again when the SQLite database was deleted, and says why in one line', async () => {
    const first = await run();
    expect(first.code, first.stderr).to.equal(0);
    const rows = await songs();
    expect(rows).to.be.greaterThan(0);
    for (const f of ['t.sqlite3', 't.sqlite3-wal', 't.sqlite3-shm']) rmSync(join(dir, 'data', f), { force: true });

    // Before the daemon runs again, status does not vouch for entries whose database is gone.
    const before = await status();
    expect(before.untrusted?.reason).to.contain('is not at DATABASE_URL');
    expect(before.records.loaded).to.equal(0);
    const dry = await runCli(['run', '--dry-run'], { cwd: dir, env: env() });
    expect(dry.stdout).to.match(/6 to process \(0 up to date.*not trusted: its database [-0-9a-f]{36} is not at DATABASE_URL .*so every listed file is planned\)\.\n$/);

    const again = await run();
    expect(again.code, again.stderr).to.equal(0);
    expect(finished(again)).to.include({ filesDone: 6, filesUpToDate: 0 });
    const warning = events(again.stdout).filter((e) => e.event === 'RegistryUntrusted');
    expect(warning).to.have.length(1);
    expect(String(warning[0]!.msg)).to.match(/not trusted: it was written for database [-0-9a-f]{36}, and this one is [-0-9a-f]{36}; its 6 entries were moved to .*t\.json\.untrusted/);
    expect(await songs()).to.equal(rows);
    expect((await status()).records.loaded).to.equal(146);
    expect(existsSync(join(dir, 'registry', 't.json.untrusted'))).to.equal(true);
  });

  it('keeps the untrusted registry it set aside when the start then fails', async () => {
    expect((await run()).code).to.equal(0);
    for (const f of ['t.sqlite3', 't.sqlite3-wal', 't.sqlite3-shm']) rmSync(join(dir, 'data', f), { force: true });
    rmSync(join(dir, 'bucket', 'files_list.data')); // the first cycle cannot list the bucket
    const failed = await run();
    expect(failed.code).to.equal(2);
    const kept = JSON.parse(readFileSync(join(dir, 'registry', 't.json.untrusted'), 'utf8')) as { entries: Record<string, unknown> };
    expect(Object.keys(kept.entries)).to.have.length(6);
  });

  it('processes every file again for a new DATABASE_URL on the same profile', async () => {
    expect((await run()).code).to.equal(0);
    const other = await run({ DATABASE_URL: 'sqlite://data/other.sqlite3' });
    expect(other.code, other.stderr).to.equal(0);
    expect(finished(other)).to.include({ filesDone: 6, filesUpToDate: 0 });
    expect(await songs('data/other.sqlite3')).to.equal(await songs());
  });

  it('loads a file of the same name from another bucket instead of skipping it as up to date', async () => {
    expect((await run()).code).to.equal(0);
    const key = readFileSync(join(dir, 'bucket', 'files_list.data'), 'utf8').split('\n')[0]!.trim();
    cpSync(join(dir, 'bucket'), join(dir, 'other'), { recursive: true });
    writeFileSync(join(dir, 'other', 'files_list.data'), key);
    writeFileSync(join(dir, 'other', key), JSON.stringify([{ type: 'song', data: { artist_name: 'Other', title: 'Bucket', year: 1, release: 'R' } }]));
    const other = await run({ BUCKET_URL: join(dir, 'other') });
    expect(other.code, other.stderr).to.equal(0);
    expect(finished(other)).to.include({ filesDone: 1, filesUpToDate: 0, recordsLoaded: 1 });
    const db = new Database(join(dir, 'data', 't.sqlite3'), { readonly: true });
    try {
      expect(db.prepare("select count(*) as n from songs where artist_name = 'Other'").get()).to.deep.equal({ n: 1 });
    } finally {
      db.close();
    }
  });

  for (const dialect of dialects()) {
    it(`${dialect.name}: keeps two buckets apart in one database with the database registry: files, rejections and status`, async () => {
      const created = await dialect.create(dir);
      const count = async (table: string): Promise<number> => {
        const db = created.knex();
        try {
          const [row] = (await db(table).count({ n: '*' })) as Array<{ n: number | string }>;
          return Number(row?.n ?? 0);
        } finally {
          await db.destroy();
        }
      };
      try {
        const other = join(dir, 'other');
        cpSync(join(dir, 'bucket'), other, { recursive: true });
        const keys = [...new Set(readFileSync(join(other, 'files_list.data'), 'utf8').split('\n').map((k) => k.trim()).filter(Boolean))];
        // The same names in the other bucket, each holding one good song and one bad record.
        for (const key of keys) {
          writeFileSync(join(other, key), JSON.stringify([{ type: 'song', data: { artist_name: 'B', title: key, year: 1, release: 'R' } }, { type: 'song', data: null }]));
        }
        const on = { REGISTRY: 'database', DATABASE_URL: created.url };
        const a = await run(on);
        expect(a.code, a.stderr).to.equal(0);
        const rejectedA = await count('rejected_records');
        const b = await run({ ...on, BUCKET_URL: other });
        expect(b.code, b.stderr).to.equal(0);
        expect(finished(b)).to.include({ filesDone: keys.length, filesUpToDate: 0, recordsLoaded: keys.length, recordsRejected: keys.length });
        // Loading B's files of the same names replaced none of A's rejections.
        expect(await count('rejected_records')).to.equal(rejectedA + keys.length);
        const again = await run(on);
        expect(finished(again)).to.include({ filesDone: 0, filesUpToDate: 6 });
        expect((await status(on)).records).to.deep.equal({ loaded: 146, rejected: 18, skipped: 76 });
        expect((await status({ ...on, BUCKET_URL: other })).records).to.deep.equal({ loaded: keys.length, rejected: keys.length, skipped: 0 });
      } finally {
        await created.drop();
      }
    });
  }

  it('numbers cycles per registry across restarts, and starts again on another database', async () => {
    expect(finished(await run())).to.include({ cycle: 1 });
    expect(finished(await run())).to.include({ cycle: 2 });
    expect((await status()).lastCycle).to.include({ cycle: 2 });
    expect(finished(await run({ DATABASE_URL: 'sqlite://data/other.sqlite3' }))).to.include({ cycle: 1 });
  });

  it('stops committing when the SQLite file is deleted under a running daemon, and /readyz says why', async () => {
    const daemon = startCli(['run'], { cwd: dir, env: env({ POLL_INTERVAL_SECONDS: '0.2', HTTP_PORT: '0' }) });
    try {
      const until = Date.now() + 30_000;
      const seen = (event: string) => events(daemon.output()).filter((e) => e.event === event);
      while (seen('CycleFinished').length === 0 && Date.now() < until) await sleep(20);
      const port = Number(seen('HttpListening')[0]?.port);
      for (const f of ['t.sqlite3', 't.sqlite3-wal', 't.sqlite3-shm']) rmSync(join(dir, 'data', f), { force: true });
      // A new file for the daemon to load: before, it was committed to the unlinked file and marked done.
      writeFileSync(join(dir, 'bucket', 'new.data'), JSON.stringify([{ type: 'song', data: { artist_name: 'N', title: 'New', year: 1, release: 'R' } }]));
      writeFileSync(join(dir, 'bucket', 'files_list.data'), `${readFileSync(join(dir, 'bucket', 'files_list.data'), 'utf8').trimEnd()}\nnew.data\n`);
      while (seen('CycleError').length === 0 && Date.now() < until) await sleep(20);
      const error = String(seen('CycleError')[0]?.error);
      expect(error).to.match(/^BI_DATABASE: .*t\.sqlite3: the database file was deleted while the daemon ran/);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).to.equal(503);
      expect(JSON.stringify(await ready.json())).to.contain('t.sqlite3');
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.finished;
    }
    const registry = JSON.parse(readFileSync(join(dir, 'registry', 't.json'), 'utf8')) as { entries: Record<string, unknown> };
    expect(registry.entries['new.data'], 'marked done, its rows in a deleted file').to.equal(undefined);
    const again = await run();
    expect(again.code, again.stderr).to.equal(0);
    expect(finished(again)).to.include({ filesDone: 7 });
  });

  it('gives up waiting for a lock another process holds, in one BI_DATABASE line naming the file and the lock', async () => {
    expect((await run()).code).to.equal(0);
    const holder = new Database(join(dir, 'data', 't.sqlite3'));
    try {
      holder.exec('BEGIN EXCLUSIVE');
      const started = Date.now();
      const r = await run({ DATABASE_LOCK_TIMEOUT_SECONDS: '1' });
      expect(r.code).to.equal(2);
      expect(Date.now() - started).to.be.below(20_000);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).to.have.length(1);
      expect(lines[0]).to.match(/^bucket-ingest: BI_DATABASE: sqlite:\/\/data\/t\.sqlite3: gave up after 1 s waiting for the SQLite database lock/);
      const waiting = events(r.stdout).filter((e) => e.event === 'DatabaseWaiting');
      expect(waiting, r.stdout).to.have.length(1);
      expect(String(waiting[0]!.msg)).to.contain('waiting for the SQLite database lock');
    } finally {
      holder.close();
    }
  });
});
