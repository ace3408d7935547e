import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { generateFiles, inFormat } from '../../bench/generate.js';
import { events, runCli, tempDir } from '../helpers/cli.js';
import { dialects, dump, type Dump } from '../helpers/databases.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';
import { renamed, zipOf } from '../helpers/zip.js';

interface Entry { status: string; error: string | null; loaded: number; rejected: number; doneAt: string | null }

const GENERATED = [...generateFiles({ files: 4, recordsPerFile: 300, seed: 15, invalidRate: 0.1, duplicateRate: 0.05 })];

/**
 * ZIP archives through the daemon: each member a file of the registry (`archive.zip!member`), loaded, rejected, failed
 * and reprocessed like one, and the same tables as the files unpacked.
 */
describe('ZIP archives (integration)', function () {
  this.timeout(240_000);
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function load(dialect: ReturnType<typeof dialects>[number], files: Record<string, Buffer>, extra: Record<string, string> = {}): Promise<{ tables: () => Promise<Dump>; bucket: TestBucket; run: (args?: string[]) => ReturnType<typeof runCli>; entries: () => Promise<Record<string, Entry>>; first: Awaited<ReturnType<typeof runCli>> }> {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const bucket = await startTestBucket({ files, chunked: Object.keys(files).filter((k) => k.endsWith('.zip')) });
    cleanups.push(() => bucket.close());
    const db = await dialect.create(t.dir);
    cleanups.push(() => db.drop());
    const env = { BUCKET_URL: bucket.url, DATABASE_URL: db.url, REGISTRY: 'json', REGISTRY_PATH: 'registry/t.json', RETRY_FAILED_SECONDS: '0', LOG_LEVEL: 'debug', ...extra };
    const run = (args = ['run', '--once']) => runCli(args, { cwd: t.dir, env });
    const first = await run();
    expect(first.stderr).to.not.match(/Error|at .*\.js/);
    const entries = async () => (JSON.parse(await readFile(join(t.dir, 'registry', 't.json'), 'utf8')) as { entries: Record<string, Entry> }).entries;
    return { tables: () => dump(db.knex()), bucket, run, entries, first };
  }

  /** A dump with every source_key as the JSON array bucket's (`x.data`), and reasons without their `line N: `. */
  function comparable(tables: Dump, key: (k: string) => string): Dump {
    const out: Dump = {};
    for (const [table, rows] of Object.entries(tables)) {
      out[table] = rows.map((r) => {
        const row = { ...r, source_key: key(String(r.source_key)) };
        return table === 'rejected_records' ? { ...row, reason: String(r.reason).replace(/^line \d+: /, '') } : row;
      }).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
    }
    return out;
  }

  for (const dialect of dialects()) {
    it(`${dialect.name}: an archive of NDJSON members (some gzipped) loads the same tables and rejections as the JSON array files`, async () => {
      const plain: Record<string, Buffer> = {};
      for (const g of GENERATED) plain[inFormat(g, 'json').key] = inFormat(g, 'json').body;
      const reference = comparable(await (await load(dialect, plain)).tables(), (k) => k);

      const members = GENERATED.map((g, i) => {
        const f = inFormat(g, 'ndjson');
        return i % 2 === 0 ? { name: `part/${f.key}`, body: f.body } : { name: `part/${f.key}.gz`, body: gzipSync(f.body), compress: false };
      });
      const zipped = await load(dialect, { 'all.zip': await zipOf(members) });
      const e = await zipped.entries();
      expect(Object.keys(e).sort()).to.deep.equal(members.map((m) => `all.zip!${m.name}`).sort());
      expect(Object.values(e).map((x) => x.status)).to.deep.equal(members.map(() => 'done'));
      const unzip = (k: string): string => k.replace(/^all\.zip!part\//, '').replace(/\.ndjson(\.gz)?$/, '.data');
      expect(comparable(await zipped.tables(), unzip)).to.deep.equal(reference);
    });
  }

  it('records refused members and a corrupt archive failed with their reasons, loads the rest, reloads only what changed, and reprocesses a member', async () => {
    const sqlite = dialects()[0] as ReturnType<typeof dialects>[number];
    const song = (title: string): string => `${JSON.stringify({ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } })}\n`;
    const members = [
      { name: 'songs.ndjson', body: song('s1') + song('s2') + '{"type":"song","data":{}}\n' },
      { name: 'table/songs.csv', body: 'artist_name,title,year,release\nB,c1,2,R\nB,c2,x,R\n' },
      { name: 'aa/evil.ndjson', body: song('evil') },
      { name: 'bomb.ndjson', body: song('b').repeat(40_000) }, // 3 MB uncompressed, MAX_FILE_MB=1
      { name: 'inner.zip', body: await zipOf([{ name: 'x.ndjson', body: song('nested') }]) },
    ];
    const batch = renamed(await zipOf(members), 'aa/evil.ndjson', '../evil.ndjson');
    const good = await zipOf([{ name: 'x.ndjson', body: song('x') }]);
    const files = { 'batch.zip': batch, 'broken.zip': good.subarray(0, good.length - 30), 'plain.ndjson': Buffer.from(song('p')) };
    // RECHECK_DONE_SECONDS=0: done files are asked every cycle whether they changed (a member: its CRC-32 and size).
    const { run, entries, tables, bucket, first } = await load(sqlite, files, { ROUTES: '**/*.csv=song', MAX_FILE_MB: '1', RECHECK_DONE_SECONDS: '0' });
    expect(first.code).to.equal(1); // some listed files are recorded failed
    const e = await entries();
    const brief = Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v.status === 'done' ? `done ${v.loaded}/${v.rejected}` : v.error]));
    expect(brief).to.deep.equal({
      'batch.zip!songs.ndjson': 'done 2/1',
      'batch.zip!table/songs.csv': 'done 1/1',
      'batch.zip!../evil.ndjson': 'BI_ARCHIVE: batch.zip!../evil.ndjson: its path escapes the archive (invalid relative path: ../evil.ndjson); not extracted',
      'batch.zip!bomb.ndjson': `BI_BODY_TOO_LARGE: batch.zip!bomb.ndjson: its uncompressed size, ${members[3]?.body.length} bytes, is over MAX_FILE_MB (1048576 bytes); not extracted`,
      'batch.zip!inner.zip': 'BI_FORMAT: batch.zip!inner.zip: ZIP archive detected (by its key); a ZIP archive inside an archive is not opened',
      'broken.zip': e['broken.zip']?.error,
      'plain.ndjson': 'done 1/0',
    });
    expect(e['broken.zip']?.error).to.match(/^BI_ARCHIVE: broken\.zip: not a readable ZIP archive: /);
    const t = await tables();
    expect((t.songs ?? []).map((r) => [r.source_key, r.title]).sort()).to.deep.equal([
      ['batch.zip!songs.ndjson', 's1'], ['batch.zip!songs.ndjson', 's2'], ['batch.zip!table/songs.csv', 'c1'], ['plain.ndjson', 'p'],
    ]);
    expect((t.rejected_records ?? []).map((r) => [r.source_key, r.record_index, r.reason])).to.deep.equal([
      ['batch.zip!songs.ndjson', 2, 'line 3: artist_name: expected string, got missing; title: expected string, got missing; year: expected SafeInteger, got missing; release: expected string, got missing'],
      ['batch.zip!table/songs.csv', 1, 'line 3: year: expected SafeInteger, got "x"'],
    ]);

    // One member changed, the others not: only it is loaded again; the corrupt archive, mended, is listed as its members.
    members[0] = { name: 'songs.ndjson', body: song('s1') + song('s3') };
    bucket.setFile('batch.zip', renamed(await zipOf(members), 'aa/evil.ndjson', '../evil.ndjson'));
    bucket.setFile('broken.zip', good);
    const second = await run();
    const done = events(second.stdout).filter((x) => x.event === 'FileDone').map((x) => x.key).sort();
    expect(done).to.deep.equal(['batch.zip!songs.ndjson', 'broken.zip!x.ndjson']);
    const third = await run();
    expect(events(third.stdout).filter((x) => x.event === 'FileDone').map((x) => x.key)).to.deep.equal([]);
    const songs = ((await tables()).songs ?? []).map((r) => [r.source_key, r.title]).sort();
    expect(songs).to.deep.equal([
      // s2 stays, as a row of a changed file that no longer holds it does (upserts, never deletes)
      ['batch.zip!songs.ndjson', 's1'], ['batch.zip!songs.ndjson', 's2'], ['batch.zip!songs.ndjson', 's3'], ['batch.zip!table/songs.csv', 'c1'], ['broken.zip!x.ndjson', 'x'], ['plain.ndjson', 'p'],
    ]);

    // A member is reprocessed by its key, as a file is.
    const before = (await entries())['batch.zip!table/songs.csv']?.doneAt;
    const marked = await run(['reprocess', 'batch.zip!table/*']);
    expect(marked.stdout).to.match(/^marked 1 file\(s\) for reprocessing: batch\.zip!table\/songs\.csv/);
    const fourth = await run();
    expect(events(fourth.stdout).filter((x) => x.event === 'FileDone').map((x) => x.key)).to.deep.equal(['batch.zip!table/songs.csv']);
    expect((await entries())['batch.zip!table/songs.csv']?.doneAt).to.not.equal(before);
  });
});
