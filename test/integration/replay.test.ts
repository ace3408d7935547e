import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { events, runCli, startCli, tempDir } from '../helpers/cli.js';
import { dialects, dump, type Dump, type TestDatabase } from '../helpers/databases.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

/**
 * `reprocess --rejected`: after a schema fix, the stored rejections that now pass are loaded under the upsert and
 * ordering rules and leave rejected_records, so the tables end as one run with the fixed schemas gives; the filters
 * and --dry-run select and preview; a second run does nothing; and a daemon loading meanwhile changes none of that.
 */

const TABLES = ['songs', 'movies', 'apps', 'rejected_records'];

/** The bundled MacPaw schemas, made stricter: years from 1900, ratings from 0. `fixed` is the bundled set. */
async function schemaDirs(dir: string): Promise<{ strict: string; fixed: string }> {
  for (const d of ['strict', 'fixed']) await mkdir(join(dir, d));
  for (const file of (await readdir('schemas')).filter((f) => f.endsWith('.json'))) {
    const text = await readFile(join('schemas', file), 'utf8');
    await writeFile(join(dir, 'fixed', file), text);
    const schema = JSON.parse(text) as { title: string; properties: Record<string, Record<string, unknown>> };
    if (schema.title === 'song') schema.properties['year'] = { type: 'integer', minimum: 1900 };
    if (schema.title === 'app') schema.properties['rating'] = { type: 'number', minimum: 0 };
    await writeFile(join(dir, 'strict', file), JSON.stringify(schema));
  }
  return { strict: 'strict', fixed: 'fixed' };
}

const song = (artist: string, title: string, year: unknown, release: string) => ({ type: 'song', data: { artist_name: artist, title, year, release } });
const app = (name: string, rating: number) => ({ type: 'app', data: { name, genre: 'g', version: '1', rating, size_bytes: 10 } });

/**
 * a.data comes first in the index, b.data second. Under the strict schemas a.data's year-0 songs are rejected; its
 * "shared" song is also in b.data (valid there): replayed, it must not overwrite b's row. b.data's "late" song is
 * rejected, and a.data loaded that key: replayed, it must replace a's row. The string year stays rejected.
 */
const FILES: Record<string, string> = {
  'a.data': JSON.stringify([
    song('x', 'only in a', 0, 'a'), song('x', 'shared', 0, 'from a'), song('y', 'late', 2000, 'from a'), song('z', 'string year', '2009', 'a'),
    app('neg', -1), app('pos', 4), { type: 'book', data: {} },
  ]),
  'b.data': JSON.stringify([song('x', 'shared', 1999, 'from b'), song('y', 'late', 0, 'from b'), app('neg2', -2.5)]),
};

interface Setup { dir: string; db: TestDatabase; env: Record<string, string>; fixed: Record<string, string> }

describe('reprocess --rejected (integration)', function () {
  this.timeout(180_000);
  let bucket: TestBucket;
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    bucket = await startTestBucket({ files: FILES });
  });
  after(async () => {
    await bucket?.close();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setUp(made: (dir: string) => Promise<TestDatabase>, files?: TestBucket): Promise<Setup> {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const db = await made(t.dir);
    cleanups.push(() => db.drop());
    const { strict, fixed } = await schemaDirs(t.dir);
    const env = { BUCKET_URL: (files ?? bucket).url, DATABASE_URL: db.url, REGISTRY_PATH: 'registry/t.json', SCHEMAS: strict, CONCURRENCY: '1' };
    return { dir: t.dir, db, env, fixed: { ...env, SCHEMAS: fixed } };
  }

  /** What one uninterrupted run of the fixed schemas over the bucket gives. */
  async function reference(made: (dir: string) => Promise<TestDatabase>, files?: TestBucket): Promise<Dump> {
    const { dir, db, fixed } = await setUp(made, files);
    const run = await runCli(['run', '--once'], { cwd: dir, env: fixed });
    expect(run.code, run.stderr + run.stdout).to.equal(0);
    return dump(db.knex(), TABLES);
  }

  async function replay(s: Setup, args: string[] = []): Promise<string> {
    const r = await runCli(['reprocess', '--rejected', ...args], { cwd: s.dir, env: s.fixed });
    expect(r.code, r.stderr + r.stdout).to.equal(0);
    expect(r.stderr).to.equal('');
    return r.stdout;
  }

  for (const dialect of dialects()) {
    it(`${dialect.name}: replays after a schema fix, by type and reason, previews with --dry-run, follows the ordering rule, and a second run does nothing`, async () => {
      const made = (d: string): Promise<TestDatabase> => dialect.create(d);
      const expected = await reference(made);
      const s = await setUp(made);
      const run = await runCli(['run', '--once'], { cwd: s.dir, env: { ...s.env, COMMIT_MAX_FILES: '2' } });
      expect(run.code, run.stderr + run.stdout).to.equal(0);
      const rejectedAtFirst = await dump(s.db.knex(), TABLES);
      expect(rejectedAtFirst.rejected_records).to.have.length(6);
      expect(rejectedAtFirst.rejected_records?.map((r) => r.source_position).sort()).to.deep.equal([0, 0, 0, 0, 1, 1], 'each rejection keeps its file\'s place');

      const preview = await replay(s, ['--dry-run']);
      expect(preview).to.include('dry run, nothing written: 6 stored rejection(s)').and.include('4 would be loaded, 1 would be removed as a later file holds their key, 1 still rejected');
      expect(await dump(s.db.knex(), TABLES), '--dry-run writes nothing').to.deep.equal(rejectedAtFirst);

      const apps = await replay(s, ['--type', 'app']);
      expect(apps).to.include('2 stored rejection(s)').and.include('2 loaded, 0 removed');
      expect(apps).to.include('  app: "rating: expected FiniteNumber >= 0, got …": 2 loaded\n');
      let now = await dump(s.db.knex(), TABLES);
      expect(now.apps?.map((r) => r.name).sort()).to.deep.equal(['neg', 'neg2', 'pos']);
      expect(now.rejected_records?.map((r) => r.type)).to.not.include('app');
      expect(now.songs).to.deep.equal(rejectedAtFirst.songs);

      const years = await replay(s, ['--reason', 'year: expected*, got 0']);
      expect(years).to.include('3 stored rejection(s)').and.include('2 loaded, 1 removed as a later file holds their key, 0 still rejected');
      expect(years).to.include('  song: "year: expected SafeInteger >= 1900, got …": 2 loaded, 1 removed (a later file holds the key)\n');
      now = await dump(s.db.knex(), TABLES);
      const songs = new Map(now.songs?.map((r) => [r.title, r]));
      expect(songs.get('shared'), 'the earlier file does not overwrite the later').to.include({ release: 'from b', year: 1999, source_key: 'b.data' });
      expect(songs.get('late'), 'the later file does overwrite the earlier').to.include({ release: 'from b', year: 0, source_key: 'b.data', source_position: 1 });
      expect(songs.get('only in a')).to.include({ year: 0, source_key: 'a.data', source_position: 0 });

      const rest = await replay(s);
      expect(rest).to.include('1 stored rejection(s)').and.include('0 loaded, 0 removed as a later file holds their key, 1 still rejected');
      // Left as it was stored, reason included; the report says what the fixed schemas say of it now.
      expect(rest).to.include('song: "year: expected SafeInteger >= 1900, got …": 1 still rejected (now: "year: expected SafeInteger, got …")');
      const replayed = await dump(s.db.knex(), TABLES);
      const storedReason = (d: Dump): Dump => ({ ...d, rejected_records: (d.rejected_records ?? []).map((r) => ({ ...r, reason: 'stored' })) });
      expect(replayed.rejected_records?.map((r) => r.reason)).to.deep.equal(['year: expected SafeInteger >= 1900, got "2009"']);
      expect(storedReason(replayed), 'the tables of one run with the fixed schemas').to.deep.equal(storedReason(expected));

      const again = await replay(s);
      expect(again).to.include('0 loaded').and.include('1 still rejected');
      expect(await dump(s.db.knex(), TABLES), 'a second run changes nothing').to.deep.equal(replayed);
    });
  }

  it('refuses --rejected with keys, --failed or --now, and --type, --reason or --dry-run without it, in one line', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    for (const [args, says] of [
      [['reprocess', '--rejected', 'a.data'], '--rejected replays stored rejections and marks no files: it cannot be combined with keys'],
      [['reprocess', '--rejected', '--failed'], 'cannot be combined with --failed'],
      [['reprocess', '--rejected', '--now'], 'cannot be combined with --now'],
      [['reprocess', '--failed', '--type', 'song'], '--type selects rejections to replay: use with --rejected'],
      [['reprocess', 'a.data', '--dry-run'], '--dry-run selects rejections to replay: use with --rejected'],
    ] as const) {
      const r = await runCli([...args], { cwd: t.dir, env: { BUCKET_URL: bucket.url, DATABASE_URL: 'sqlite://data/none.sqlite3' } });
      expect(r.code, r.stderr).to.equal(2);
      const lines = r.stderr.trim().split('\n').filter((l) => l.includes('BI_USAGE'));
      expect(lines, r.stderr).to.have.length(1);
      expect(lines[0]).to.include(says);
    }
  });

  for (const dialect of dialects()) {
    it(`${dialect.name}: next to a running daemon loading files with the same keys, the tables end as one run with the fixed schemas gives`, async () => {
      // A bucket of its own: files are added and re-written while the daemon runs.
      const many: Record<string, string> = {};
      // Keys unique within a file (see replay.ts: same-file keys are left to a reprocess of the file), shared across files.
      const fileOf = (n: number, variant: string): string => JSON.stringify(Array.from({ length: 60 }, (_, i) =>
        song(`artist ${Math.floor((i + n) / 10)}`, `title ${i}`, (i + n) % 3 === 0 ? 0 : 1990 + (i % 30), `${variant} ${n}.${i}`)));
      for (let n = 0; n < 6; n++) many[`f${n}.data`] = fileOf(n, 'first');
      const live = await startTestBucket({ files: many });
      cleanups.push(() => live.close());
      const s = await setUp((d) => dialect.create(d), live);
      // File by file (the other test writes groups): rejections keep their file's place on this path too.
      const first = await runCli(['run', '--once'], { cwd: s.dir, env: { ...s.env, COMMIT_MAX_FILES: '1' } });
      expect(first.code, first.stderr + first.stdout).to.equal(0);
      const stored = (await dump(s.db.knex(), ['rejected_records'])).rejected_records ?? [];
      expect(stored.length).to.be.above(50);
      for (const r of stored) expect(r.source_position, String(r.source_key)).to.equal(Number(/^f(\d+)\.data$/.exec(String(r.source_key))?.[1]));
      // The daemon runs with the fixed schemas, as after a fix; meanwhile the bucket grows and a file changes.
      const daemon = startCli(['run'], { cwd: s.dir, env: { ...s.fixed, POLL_INTERVAL_SECONDS: '0.2', RECHECK_DONE_SECONDS: '0', COMMIT_MAX_FILES: '1' } });
      cleanups.push(async () => {
        if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
      });
      for (let n = 6; n < 12; n++) live.setFile(`f${n}.data`, fileOf(n, 'added'));
      live.setFile('f2.data', fileOf(2, 'changed'));
      live.setIndex(Array.from({ length: 12 }, (_, n) => `f${n}.data`).join('\n'));
      const replays = await Promise.all([replay(s), replay(s)]);
      for (const out of replays) expect(out).to.match(/stored rejection\(s\) of bucket/);
      // Wait for the daemon to have loaded the six new files and the changed one, and then found nothing to do.
      await until(daemon.output, () => {
        const finished = events(daemon.output()).filter((e) => e.event === 'CycleFinished');
        return finished.at(-1)?.filesDone === 0 && finished.reduce((n, e) => n + Number(e.filesDone), 0) >= 7;
      });
      daemon.child.kill('SIGTERM');
      const stopped = await daemon.finished;
      expect(stopped.code, stopped.stdout + stopped.stderr).to.equal(0);
      // No final replay: the daemon (fixed schemas) stores no rejections, so the two replays saw all there are.
      const expected = await reference((d) => dialect.create(d), live);
      expect(await dump(s.db.knex(), TABLES)).to.deep.equal(expected);
      expect(await replay(s)).to.include('0 loaded, 0 removed');
    });
  }
});

async function until(output: () => string, done: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`the daemon did not finish its work in time:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
