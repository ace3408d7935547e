import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { events, runCli, startCli, tempDir } from '../helpers/cli.js';
import { fixture } from '../helpers/bucket-fixture.js';
import { dialects, dump, type Dump, type TestDatabase } from '../helpers/databases.js';
import { startTestBucket, type Fault, type TestBucket } from '../helpers/test-bucket.js';

interface FileEntry { status: string; attempts: number; loaded: number; rejected: number }

/**
 * The core behaviour suite, run against every dialect: each must end with the same tables as the others
 * (SQLite with the JSON registry, PostgreSQL and MySQL with the database registry).
 */
describe('the same behaviour on every database (integration)', function () {
  this.timeout(180_000);
  const fx = fixture({ files: 16, recordsPerFile: 80, seed: 33, duplicateRate: 0.08, invalidRate: 0.05 });
  let bucket: TestBucket;
  let reference: Dump | undefined;
  let textReference: Dump | undefined;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    bucket = await startTestBucket({ files: fx.files });
  });
  after(async () => {
    await bucket?.close();
  });
  // Each test undoes what it made (its database, dir and buckets) once it is done, whatever happened.
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const dialect of dialects()) {
    describe(dialect.name, () => {
      let dir: string;
      let db: TestDatabase;
      beforeEach(async () => {
        const t = await tempDir();
        cleanups.push(t.cleanup);
        // The values, not the variables: `db` and `dir` are the next test's by the time these run.
        const made = await dialect.create(t.dir);
        cleanups.push(() => made.drop());
        dir = t.dir;
        db = made;
      });

      const env = (extra: Record<string, string> = {}) => ({ BUCKET_URL: bucket.url, DATABASE_URL: db.url, REGISTRY_PATH: 'registry/t.json', CONCURRENCY: '4', COMMIT_MAX_FILES: '3', ...extra });
      const run = (args: string[] = [], extra: Record<string, string> = {}) => runCli(['run', '--once', ...args], { cwd: dir, env: env(extra) });
      const files = async (): Promise<Record<string, FileEntry>> => {
        const r = await runCli(['status', '--json'], { cwd: dir, env: env() });
        expect(r.code, r.stderr).to.equal(0);
        const k = db.knex();
        try {
          if (dialect.name === 'sqlite') {
            const { readFileSync } = await import('node:fs');
            const { join } = await import('node:path');
            return (JSON.parse(readFileSync(join(dir, 'registry', 't.json'), 'utf8')) as { entries: Record<string, FileEntry> }).entries;
          }
          const rows = (await k('ingest_files').select('key', 'status', 'attempts', 'loaded', 'rejected')) as Array<FileEntry & { key: string }>;
          return Object.fromEntries(rows.map((r) => [r.key, { ...r, attempts: Number(r.attempts), loaded: Number(r.loaded), rejected: Number(r.rejected) }]));
        } finally {
          await k.destroy();
        }
      };

      it('loads, is idempotent, --force leaves the tables as they were, and the tables match every other dialect', async () => {
        const first = await run();
        expect(first.code, first.stderr + first.stdout).to.equal(0);
        // Logs go to stdout; a clean run leaves stderr empty (no driver warnings, e.g. pg's about overlapping queries).
        expect(first.stderr).to.equal('');
        expect(events(first.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 16, recordsLoaded: fx.valid, recordsRejected: fx.invalid, recordsSkipped: fx.skipped });
        const tables = await dump(db.knex());
        expect(tables.rejected_records).to.have.length(fx.invalid);
        reference ??= tables;
        expect(tables).to.deep.equal(reference);

        const again = await run();
        expect(events(again.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 0, filesUpToDate: 16 });
        expect(await dump(db.knex())).to.deep.equal(tables);

        const forced = await run(['--force']);
        expect(events(forced.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 16 });
        expect(await dump(db.knex())).to.deep.equal(tables);
        const entries = await files();
        expect(Object.values(entries).every((e) => e.status === 'done' && e.attempts === 2)).to.equal(true);

        // The operator commands read this dialect's database and registry alike.
        const status = JSON.parse((await runCli(['status', '--json'], { cwd: dir, env: env() })).stdout) as { files: { done: number; failed: number } };
        expect(status.files).to.include({ done: 16, failed: 0 });
        const inspect = JSON.parse((await runCli(['inspect', '--json', '--samples', '1'], { cwd: dir, env: env() })).stdout) as { tables: Array<{ table: string; rows: number }> };
        for (const [table, rows] of Object.entries(tables)) expect(inspect.tables.find((t) => t.table === table)?.rows, table).to.equal(rows!.length);
        const marked = await runCli(['reprocess', fx.keys[0]!], { cwd: dir, env: env() });
        expect(marked.code, marked.stderr).to.equal(0);
        const redo = await run();
        expect(events(redo.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 1 });
        expect((await files())[fx.keys[0]!]).to.include({ attempts: 3 });
      });

      it('processes a file again when its ETag changes, replacing its rows and rejections', async () => {
        const key = 'changing.data';
        const local = await startTestBucket({ files: { [key]: JSON.stringify([{ type: 'app', data: { name: 'n', genre: 'g', version: '1', rating: 4, size_bytes: 10 } }, { type: 'app', data: {} }]) } });
        cleanups.push(() => local.close());
        const e = { BUCKET_URL: local.url, RECHECK_DONE_SECONDS: '0' };
        expect((await run([], e)).code).to.equal(0);
        local.setFile(key, JSON.stringify([{ type: 'app', data: { name: 'n', genre: 'g2', version: '1', rating: 4.5, size_bytes: 5_000_000_000 } }]));
        expect((await run([], e)).code).to.equal(0);
        const tables = await dump(db.knex());
        expect(tables.apps).to.deep.equal([{ name: 'n', genre: 'g2', version: '1', rating: 4.5, size_bytes: 5_000_000_000, is_awesome: 0, source_key: key, source_position: 0 }]);
        expect(tables.rejected_records).to.deep.equal([]);
        expect((await files())[key]).to.include({ attempts: 2, loaded: 1, rejected: 0 });
      });

      it('stores records holding U+0000 or lone surrogates as rejections with their reason, loads the rest, the same everywhere', async () => {
        const key = 'text.data';
        const song = { artist_name: 'Björk', title: 'Jóga 😀', year: 1997, release: 'Homogenic' };
        const movie = { original_title: 'Amélie', original_language: 'fr', budget: 1, is_adult: false, release_date: '2001-04-25' };
        const app = { name: 'Notes', genre: 'Tools', version: '1.0', rating: 4, size_bytes: 10 };
        const records = [
          { type: 'song', data: song },
          { type: 'song', data: { ...song, artist_name: 'NUL\u0000in key' } },
          { type: 'song', data: { ...song, title: 'lone \ud800 high' } },
          { type: 'movie', data: movie },
          { type: 'movie', data: { ...movie, original_title: 'T\udfff', release_date: '2002-01-01' } },
          { type: 'movie', data: { ...movie, original_language: 'f\u0000r' } },
          { type: 'app', data: app },
          { type: 'app', data: { ...app, version: '2.0\ud83d' } },
          { type: 'app', data: { ...app, genre: '\u0000' } },
          { type: 'so\u0000ng', data: null },
          { type: 't'.repeat(300), data: null },
          { type: 'song', data: { ...song, year: 'x', note: 'kept in raw: \u0000 \ud800' } },
        ];
        const local = await startTestBucket({ files: { [key]: JSON.stringify(records) } });
        cleanups.push(() => local.close());
        const r = await run([], { BUCKET_URL: local.url });
        expect(r.code, r.stderr + r.stdout).to.equal(0);
        expect((await files())[key]).to.include({ status: 'done', loaded: 3, rejected: 9 });
        const tables = await dump(db.knex());
        expect(tables.songs!.map((row) => row.title)).to.deep.equal(['Jóga 😀']);
        expect(tables.movies!.map((row) => row.original_title)).to.deep.equal(['Amélie']);
        expect(tables.apps!.map((row) => row.version)).to.deep.equal(['1.0']);
        const rejections = tables.rejected_records!.sort((a, b) => Number(a.record_index) - Number(b.record_index));
        expect(rejections.map((row) => [row.record_index, row.type, row.reason])).to.deep.equal([
          [1, 'song', 'artist_name: expected text without U+0000 or lone surrogates, got "NUL\\u0000in key"'],
          [2, 'song', 'title: expected text without U+0000 or lone surrogates, got "lone \\ud800 high"'],
          [4, 'movie', 'original_title: expected text without U+0000 or lone surrogates, got "T\\udfff"'],
          [5, 'movie', 'original_language: expected text without U+0000 or lone surrogates, got "f\\u0000r"'],
          [7, 'app', 'version: expected text without U+0000 or lone surrogates, got "2.0\\ud83d"'],
          [8, 'app', 'genre: expected text without U+0000 or lone surrogates, got "\\u0000"'],
          [9, null, 'type: expected text without U+0000 or lone surrogates, got "so\\u0000ng"'],
          [10, null, 'data: expected object, got null'],
          [11, 'song', 'year: expected SafeInteger, got "x"'],
        ]);
        // The raw JSON of each rejection reads back as the record it was.
        for (const row of rejections) expect(JSON.parse(String(row.raw))).to.deep.equal(records[Number(row.record_index)]);
        textReference ??= tables;
        expect(tables).to.deep.equal(textReference);
      });

      it('converges to the same tables after SIGKILL mid-run and a restart', async () => {
        for (const k of fx.keys) bucket.addFaults(k, [{ kind: 'delay', ms: 40 } as Fault]);
        const child = startCli(['run', '--once'], { cwd: dir, env: env() });
        const deadline = Date.now() + 30_000;
        while (!/"event":"CycleStarted"/.test(child.output()) && Date.now() < deadline) await sleep(10);
        await sleep(250);
        child.child.kill('SIGKILL');
        await child.finished;
        const restart = await run();
        expect(restart.code, restart.stderr).to.equal(0);
        const entries = await files();
        expect(fx.keys.every((k) => entries[k]?.status === 'done')).to.equal(true);
        expect(reference, 'the first test of this dialect sets the reference').to.not.equal(undefined);
        expect(await dump(db.knex())).to.deep.equal(reference);
      });
    });
  }
});
