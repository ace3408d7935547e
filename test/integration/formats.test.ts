import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { FILE_FORMATS, generateFiles, inFormat, type FileFormat } from '../../bench/generate.js';
import { events, runCli, tempDir } from '../helpers/cli.js';
import { dialects, dump, type Dump } from '../helpers/databases.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

interface Entry { status: string; error: string | null; loaded: number; rejected: number }

const GENERATED = [...generateFiles({ files: 4, recordsPerFile: 300, seed: 15, invalidRate: 0.1, duplicateRate: 0.05 })];

/**
 * One dataset written as a JSON array, as NDJSON and as gzip-compressed NDJSON loads to the same tables and the same
 * rejections, on every dialect, whole (in decoding threads) and streamed (files sent without Content-Length): only a
 * file's key differs, and an NDJSON rejection names its line.
 */
describe('file formats (integration)', function () {
  this.timeout(240_000);
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function load(dialect: ReturnType<typeof dialects>[number], files: Record<string, Buffer>, chunked: string[], extra: Record<string, string> = {}): Promise<{ dir: string; tables: Dump; bucket: TestBucket; run: () => ReturnType<typeof runCli>; entries: () => Promise<Record<string, Entry>> }> {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const bucket = await startTestBucket({ files, chunked });
    cleanups.push(() => bucket.close());
    const db = await dialect.create(t.dir);
    cleanups.push(() => db.drop());
    const env = { BUCKET_URL: bucket.url, DATABASE_URL: db.url, REGISTRY: 'json', REGISTRY_PATH: 'registry/t.json', RETRY_FAILED_SECONDS: '0', ...extra };
    const run = () => runCli(['run', '--once'], { cwd: t.dir, env });
    const first = await run();
    expect(first.stderr).to.not.match(/Error|at .*\.js/);
    const entries = async () => (JSON.parse(await readFile(join(t.dir, 'registry', 't.json'), 'utf8')) as { entries: Record<string, Entry> }).entries;
    return { dir: t.dir, tables: await dump(db.knex()), bucket, run, entries };
  }

  /** An NDJSON bucket's dump as the JSON array's would read: keys back to `.data`, each reason's `line N: ` checked and taken off. */
  function asJsonArray(tables: Dump, format: FileFormat): Dump {
    if (format === 'json') return tables;
    const key = (k: unknown): string => String(k).replace(`.${format}`, '.data');
    const out: Dump = {};
    for (const [table, rows] of Object.entries(tables)) {
      out[table] = rows.map((r) => {
        const row = { ...r, source_key: key(r.source_key) };
        if (table !== 'rejected_records') return row;
        const prefix = `line ${Number(r.record_index) + 1}: `; // one record per line, no blank lines
        expect(String(r.reason).startsWith(prefix), `${String(r.reason)} names line ${Number(r.record_index) + 1}`).to.equal(true);
        return { ...row, reason: String(r.reason).slice(prefix.length) };
      }).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
    }
    return out;
  }

  let reference: Dump | undefined;
  for (const dialect of dialects()) {
    for (const format of FILE_FORMATS) {
      it(`${dialect.name}, ${format}: the same tables and rejections as the JSON array, whole and streamed`, async () => {
        const files: Record<string, Buffer> = {};
        for (const g of GENERATED) {
          const f = inFormat(g, format);
          files[f.key] = f.body;
        }
        const keys = Object.keys(files);
        const { tables, entries } = await load(dialect, files, keys.filter((_, i) => i % 2 === 1));
        const invalid = GENERATED.reduce((n, g) => n + g.invalid, 0);
        expect(tables.rejected_records).to.have.length(invalid);
        expect(Object.values(await entries()).map((e) => e.status)).to.deep.equal(keys.map(() => 'done'));
        const comparable = asJsonArray(tables, format);
        reference ??= comparable;
        expect(comparable).to.deep.equal(reference);
      });
    }
  }

  const song = (title: string): string => JSON.stringify({ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } });
  const lines = (prefix: string, n: number): string => Array.from({ length: n }, (_, i) => `${song(`${prefix}${i}`)}\n`).join('');

  /**
   * One hand-made dataset as NDJSON and as CSV (a file per type, routed): the same tables and the same rejections (index
   * and reason; a CSV rejection stores its row's text), whole and streamed. CSV can say less than JSON (a number and
   * the string of it are one text), so the generator's dataset, with its wrongly typed JSON values, is not used.
   */
  const SONGS = [
    ['A', 'Hello, world', 1999, 'R1'], ['B', 'multi\nline', 2000, 'R2'], ['C', 'bad', '19x9', 'R3'],
    ['A', 'Hello, world', 2001, 'R1 again'], ['D', null, 2002, 'R4'], ['E', 'quote "q"', 0, 'R5'],
  ];
  const MOVIES = [['M1', 'en', 10, true, '2020-01-02'], ['M2', 'fr', 0, false, '2021-02-03'], ['M3', 'de', 5, 'maybe', '2022-03-04'], ['M4', 'en', -1, false, '2023-04-05']];
  const SONG_COLUMNS = ['artist_name', 'title', 'year', 'release'];
  const MOVIE_COLUMNS = ['original_title', 'original_language', 'budget', 'is_adult', 'release_date'];
  const asNdjson = (type: string, columns: string[], rows: unknown[][]): Buffer =>
    Buffer.from(rows.map((r) => `${JSON.stringify({ type, data: Object.fromEntries(columns.map((c, i) => [c, r[i]])) })}\n`).join(''));
  const field = (v: unknown): string => (v === null ? '' : /[",\n]/.test(String(v)) ? `"${String(v).replaceAll('"', '""')}"` : String(v));
  const asCsv = (columns: string[], rows: unknown[][]): Buffer => Buffer.from(`\uFEFF${columns.join(',')}\r\n${rows.map((r) => r.map(field).join(',')).join('\r\n')}\r\n`);
  const CSV_FILES = { 'songs.csv': asCsv(SONG_COLUMNS, SONGS), 'movies.csv.gz': gzipSync(asCsv(MOVIE_COLUMNS, MOVIES)) };
  const NDJSON_FILES = { 'songs.ndjson': asNdjson('song', SONG_COLUMNS, SONGS), 'movies.ndjson.gz': gzipSync(asNdjson('movie', MOVIE_COLUMNS, MOVIES)) };
  const ROUTES = { ROUTES: 'songs.*=song, movies.*=movie' };

  /** A dump with keys of either format as `songs`/`movies`, reasons without their `line N: `, raws apart (returned). */
  function comparable(tables: Dump): { tables: Dump; raws: string[] } {
    const raws: string[] = [];
    const out: Dump = {};
    for (const [table, rows] of Object.entries(tables)) {
      out[table] = rows.map((r) => {
        const row: Record<string, unknown> = { ...r, source_key: String(r.source_key).replace(/\..*$/, '') };
        if (table !== 'rejected_records') return row;
        raws.push(String(r.raw));
        delete row.raw;
        return { ...row, reason: String(r.reason).replace(/^line \d+: /, '') };
      });
    }
    return { tables: out, raws };
  }

  for (const dialect of dialects()) {
    it(`${dialect.name}, CSV routed by ROUTES: the same tables and rejections as NDJSON, whole and streamed`, async () => {
      const ndjson = await load(dialect, NDJSON_FILES, ['songs.ndjson'], ROUTES);
      const csv = await load(dialect, CSV_FILES, ['songs.csv'], ROUTES);
      const e = await csv.entries();
      expect(['songs.csv', 'movies.csv.gz'].map((k) => [e[k]?.status, e[k]?.loaded, e[k]?.rejected])).to.deep.equal([['done', 4, 2], ['done', 2, 2]]);
      const a = comparable(ndjson.tables);
      const b = comparable(csv.tables);
      expect(b.tables).to.deep.equal(a.tables);
      expect((csv.tables.rejected_records ?? []).map((r) => [r.source_key, r.record_index, r.reason, r.raw])).to.deep.equal([
        ['movies.csv.gz', 2, 'line 4: is_adult: expected boolean, got "maybe"', 'M3,de,5,maybe,2022-03-04'],
        ['movies.csv.gz', 3, 'line 5: budget: expected NonNegativeSafeInteger, got -1', 'M4,en,-1,false,2023-04-05'],
        ['songs.csv', 2, 'line 5: year: expected SafeInteger, got "19x9"', 'C,bad,19x9,R3'],
        ['songs.csv', 4, 'line 7: title: expected string, got null', 'D,,2002,R4'],
      ]);
    });
  }

  /**
   * The same kind of dataset as Parquet (typed columns: INT32, INT64, BOOLEAN, UTF8, DATE; row groups of 2) and as
   * NDJSON: the same tables and rejections, whole (decoding threads) and streamed (through a temporary file); a
   * Parquet rejection names no line (its record_index is the row) and stores the row as JSON.
   */
  const PQ_SONGS = [['A', 'Hello, world', 1999, 'R1'], ['B', 'multi\nline', 2000, 'R2'], ['A', 'Hello, world', 2001, 'R1 again'], ['D', null, 2002, 'R4'], ['E', 'quote "q"', 0, 'R5']];
  const PQ_MOVIES = [['M1', 'en', 10, true, '2020-01-02'], ['M2', 'fr', 0, false, '2021-02-03'], ['M4', 'en', -1, false, '2023-04-05']];
  const asParquet = (columns: Array<{ name: string; type: string; converted_type?: string }>, rows: unknown[][], convert: (v: unknown, i: number) => unknown = (v) => v): Buffer => Buffer.from(parquetWriteBuffer({
    columnData: columns.map((c, i) => ({ name: c.name, data: rows.map((r) => (r[i] === null ? null : convert(r[i], i))) })),
    schema: [{ name: 'root', num_children: columns.length }, ...columns.map((c) => ({ ...c, repetition_type: 'OPTIONAL' }))],
    rowGroupSize: 2,
  } as never));
  const utf8 = (name: string) => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8' });
  const PARQUET_FILES = {
    'songs.parquet': asParquet([utf8('artist_name'), utf8('title'), { name: 'year', type: 'INT32' }, utf8('release')], PQ_SONGS),
    'movies.parquet': asParquet(
      [utf8('original_title'), utf8('original_language'), { name: 'budget', type: 'INT64' }, { name: 'is_adult', type: 'BOOLEAN' }, { name: 'release_date', type: 'INT32', converted_type: 'DATE' }],
      PQ_MOVIES,
      (v, i) => (i === 2 ? BigInt(v as number) : i === 4 ? new Date(`${String(v)}T00:00:00Z`) : v),
    ),
    'big.parquet': asParquet(
      [utf8('original_title'), utf8('original_language'), { name: 'budget', type: 'INT64' }, { name: 'is_adult', type: 'BOOLEAN' }, utf8('release_date')],
      [['B1', 'en', 2n ** 53n + 1n, false, '2024-01-01'], ['B2', 'en', 2n ** 53n - 1n, false, '2024-01-01']],
    ),
  };
  const PQ_NDJSON_FILES = {
    'songs.ndjson': asNdjson('song', SONG_COLUMNS, PQ_SONGS),
    'movies.ndjson': asNdjson('movie', MOVIE_COLUMNS, PQ_MOVIES),
    'big.ndjson': asNdjson('movie', MOVIE_COLUMNS, [['B2', 'en', 2 ** 53 - 1, false, '2024-01-01']]),
  };
  const PQ_ROUTES = { ROUTES: 'songs.*=song, movies.*=movie, big.*=movie' };

  for (const dialect of dialects()) {
    it(`${dialect.name}, Parquet routed by ROUTES: the same tables and rejections as NDJSON, whole and streamed; INT64 beyond 2^53 a rejection`, async () => {
      const ndjson = await load(dialect, PQ_NDJSON_FILES, ['songs.ndjson'], PQ_ROUTES);
      const parquet = await load(dialect, PARQUET_FILES, ['songs.parquet', 'big.parquet'], PQ_ROUTES);
      const e = await parquet.entries();
      expect(['songs.parquet', 'movies.parquet', 'big.parquet'].map((k) => [e[k]?.status, e[k]?.loaded, e[k]?.rejected])).to.deep.equal([['done', 4, 1], ['done', 2, 1], ['done', 1, 1]]);
      const rejections = parquet.tables.rejected_records ?? [];
      const big = rejections.filter((r) => r.source_key === 'big.parquet');
      expect(big.map((r) => [r.record_index, r.reason, r.raw])).to.deep.equal([[0, 'budget: expected SafeInteger, got 9007199254740993', '{"original_title":"B1","original_language":"en","budget":9007199254740993,"is_adult":false,"release_date":"2024-01-01"}']]);
      const b = comparable({ ...parquet.tables, rejected_records: rejections.filter((r) => r.source_key !== 'big.parquet') });
      const a = comparable(ndjson.tables);
      expect(b.tables).to.deep.equal(a.tables);
      expect(rejections.filter((r) => r.source_key !== 'big.parquet').map((r) => [r.source_key, r.record_index, r.reason, r.raw])).to.deep.equal([
        ['movies.parquet', 2, 'budget: expected NonNegativeSafeInteger, got -1', '{"original_title":"M4","original_language":"en","budget":-1,"is_adult":false,"release_date":"2023-04-05"}'],
        ['songs.parquet', 3, 'title: expected string, got null', '{"artist_name":"D","title":null,"year":2002,"release":"R4"}'],
      ]);
    });
  }

  it('a Parquet file cut short or corrupt, whole or streamed, is recorded failed with BI_DECODE and loaded once mended', async () => {
    const sqlite = dialects()[0] as ReturnType<typeof dialects>[number];
    const good = PARQUET_FILES['songs.parquet'];
    const files = { 'cut.parquet': good.subarray(0, good.length - 20), 'streamed.parquet': good.subarray(0, good.length >> 1) };
    const { bucket, run, entries, tables } = await load(sqlite, files, ['streamed.parquet'], { ROUTES: '*.parquet=song' });
    const e = await entries();
    for (const key of Object.keys(files)) {
      expect(e[key]?.status, key).to.equal('failed');
      expect(e[key]?.error, key).to.match(new RegExp(`^BI_DECODE: ${key.replace('.', '\\.')}: not Parquet, or corrupt \\(`));
    }
    expect(tables.songs ?? []).to.deep.equal([]);
    bucket.setFile('cut.parquet', good);
    bucket.setFile('streamed.parquet', good);
    await run();
    const after = await entries();
    for (const key of Object.keys(files)) expect(after[key], key).to.include({ status: 'done', loaded: 4, rejected: 1 });
  });

  it('a ROUTES type no schema declares is refused at start-up in one line', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const run = await runCli(['run', '--once'], { cwd: t.dir, env: { BUCKET_URL: 'http://127.0.0.1:9/', DATABASE_URL: 'sqlite://db.sqlite3', ROUTES: 'songs/**=song, x/*.csv=nothing' } });
    expect(run.code).to.not.equal(0);
    expect(run.stderr.trim().split('\n')).to.deep.equal(['bucket-ingest: BI_CONFIG: ROUTES: "x/*.csv=nothing" names type "nothing", which no schema of SCHEMAS declares']);
  });

  it('a gzip file corrupt or cut short, whole or streamed, is rolled back, recorded failed and loaded once mended; a CSV no route matches fails with BI_ROUTE', async () => {
    const sqlite = dialects()[0] as ReturnType<typeof dialects>[number];
    const good = { short: lines('short', 12_000), corrupt: lines('corrupt', 300), cut: lines('cut', 12_000) };
    const corrupt = Buffer.from(gzipSync(good.corrupt));
    for (let i = 20; i < 60; i++) corrupt[i] = (corrupt[i] as number) ^ 0xff;
    const short = gzipSync(good.short);
    const cut = gzipSync(good.cut);
    const files: Record<string, Buffer> = {
      'ok.jsonl': Buffer.from(`${song('ok')}\n\nnot json\r\n${song('ok2')}`),
      'corrupt.ndjson.gz': corrupt,
      'short.ndjson.gz': short.subarray(0, short.length >> 1), // whole
      'cut.data': cut.subarray(0, cut.length - 8), // streamed; by content: gzip, then `{`; the gzip trailer missing
      'table.csv': Buffer.from('a,b\n1,2\n'),
    };
    const { bucket, run, entries, tables } = await load(sqlite, files, ['cut.data'], { STREAM_ABOVE_MB: '1' });
    const e = await entries();
    expect(e['ok.jsonl']).to.include({ status: 'done', loaded: 2, rejected: 1 });
    expect(e['corrupt.ndjson.gz']?.error).to.match(/^BI_DECODE: corrupt\.ndjson\.gz: bad gzip body: /);
    expect(e['short.ndjson.gz']?.error).to.equal('BI_DECODE: short.ndjson.gz: bad gzip body: unexpected end of file');
    expect(e['cut.data']?.error).to.equal('BI_DECODE: cut.data: bad gzip body: unexpected end of file');
    expect(e['table.csv']?.error).to.equal('BI_ROUTE: table.csv: no ROUTES glob matches this key, and CSV records carry no type');
    for (const key of ['corrupt.ndjson.gz', 'short.ndjson.gz', 'cut.data', 'table.csv']) expect(e[key]?.status, key).to.equal('failed');
    // Nothing of a failed file stays, though 10,000 records of cut.data were written before its end was found.
    expect((tables.songs as Array<Record<string, unknown>>).map((r) => r.title)).to.deep.equal(['ok', 'ok2']);
    expect(tables.rejected_records).to.deep.equal([{
      source_key: 'ok.jsonl', record_index: 1, type: null, reason: 'line 3: not JSON (unexpected character at column 2)', raw: 'not json', source_position: 0,
    }]);

    bucket.setFile('corrupt.ndjson.gz', gzipSync(good.corrupt));
    bucket.setFile('short.ndjson.gz', short);
    bucket.setFile('cut.data', cut);
    const again = await run();
    expect(events(again.stdout).find((x) => x.event === 'CycleFinished')).to.include({ filesDone: 3, filesFailed: 1, recordsLoaded: 24_300 });
    const after = await entries();
    for (const key of ['corrupt.ndjson.gz', 'short.ndjson.gz', 'cut.data']) expect(after[key], key).to.include({ status: 'done', error: null });
  });
});
