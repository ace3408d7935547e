import { expect } from 'chai';
import { REJECTED_TABLE } from '../src/load/schema.js';
import { mergeTable, PG_ROWS_PER_STATEMENT, replaceGroupRejections, UpsertCompiler, upsertGroupRows, upsertSourcedRows, type GroupFile, type SourcedRow } from '../src/load/upsert.js';
import { app, song } from './helpers/types.js';
import type { RecordType } from '../src/records/types.js';
import type { Cell, Row } from '../src/records/types.js';
import { keyAt, rowsOf, type Rejection } from '../src/validate.js';
import { dialects, withMigratedDatabase } from './helpers/databases.js';

/**
 * The group write path (`upsertSourcedRows`: `unnest` arrays on PostgreSQL, multi-row VALUES elsewhere) must
 * store every value exactly as given, batch after batch, and keep the row of the later file for a key.
 */
describe('group upserts', function () {
  this.timeout(60_000);

  // Values an array literal or a VALUES list could mangle: quotes, backslashes, braces, commas, the word NULL,
  // empty strings, other scripts, 64-bit sizes, integral and tiny ratings, both booleans.
  const tricky: Row[] = [
    { name: 'a "quoted", {braced} name', genre: 'back\\slash', version: 'NULL', rating: 4, size_bytes: 2 ** 40, is_awesome: false },
    { name: '', genre: '', version: '1', rating: 1e-7, size_bytes: 0, is_awesome: true },
    { name: 'Amélie 東京 🎬', genre: "it's", version: ' spaced ', rating: -2.5, size_bytes: Number.MAX_SAFE_INTEGER, is_awesome: false },
    { name: 'ends in a backslash\\', genre: '"', version: '{}', rating: 0, size_bytes: 1, is_awesome: true },
    { name: '\\"\\\\', genre: 'tab\there, new\nline', version: 'NULL ', rating: 1e21, size_bytes: 2, is_awesome: false },
  ];
  const sourced = (rows: Row[], sourceKey: string, position: number): SourcedRow[] =>
    rows.map((row) => ({ cells: app.columns.map((c) => row[c.name] ?? null), at: 0, sourceKey, position }));
  const key = (r: Record<string, unknown>): string => JSON.stringify([r['name'], r['version']]);

  for (const dialect of dialects()) {
    describe(dialect.name, () => {
      it('stores tricky values exactly, across several statements, and a key keeps the row of the later file', () => withMigratedDatabase(dialect, async (db, target) => {
        const compiler = new UpsertCompiler(target.dialect);
        // More rows than one PostgreSQL statement holds, so the batch edge is crossed.
        const many: Row[] = Array.from({ length: PG_ROWS_PER_STATEMENT + 3 }, (_, i) => ({
          name: `app ${i}`, genre: 'g', version: `v${i % 7}`, rating: i / 4, size_bytes: i * 1_000, is_awesome: i % 2 === 0,
        }));
        await db.transaction(async (trx) => {
          await upsertSourcedRows(trx, compiler, app, sourced([...tricky, ...many], 'late.data', 5), 'at-1');
        });
        // An earlier file does not replace the later one's rows; a later file does.
        const older = { ...(tricky[0] as Row), genre: 'from an earlier file' };
        const newer = { ...(tricky[1] as Row), genre: 'from a later file' };
        await db.transaction(async (trx) => {
          await upsertSourcedRows(trx, compiler, app, [...sourced([older], 'early.data', 2), ...sourced([newer], 'later.data', 9)], 'at-2');
        });

        const rows = (await db('apps').select()) as Array<Record<string, unknown>>;
        expect(rows).to.have.length(tricky.length + many.length);
        const byKey = new Map(rows.map((r) => [key(r), r]));
        const expected = [...tricky, ...many].map((r) => (key(r) === key(newer) ? newer : r));
        for (const want of expected) {
          const got = byKey.get(key(want));
          expect(got, key(want)).to.not.equal(undefined);
          expect({ ...got, is_awesome: Boolean(got?.['is_awesome']) }).to.include(want);
        }
        expect(byKey.get(key(tricky[0] as Row))).to.include({ source_key: 'late.data', source_position: 5, loaded_at: 'at-1' });
        expect(byKey.get(key(newer))).to.include({ source_key: 'later.data', source_position: 9, loaded_at: 'at-2' });
      }));

      it('a group of files that share keys writes, in one go, the row of the latest file for each key, tricky values intact', () => withMigratedDatabase(dialect, async (db, target) => {
        const compiler = new UpsertCompiler(target.dialect);
        const many: Row[] = Array.from({ length: PG_ROWS_PER_STATEMENT + 3 }, (_, i) => ({
          name: `app ${i}`, genre: 'g', version: `v${i % 7}`, rating: i / 4, size_bytes: i * 1_000, is_awesome: i % 2 === 0,
        }));
        const cells = (rows: Row[]): Cell[] => rows.flatMap((row) => app.columns.map((c) => row[c.name] ?? null));
        const restyled = (rows: Row[], genre: string): Row[] => rows.map((r) => ({ ...r, genre }));
        // Listed in the group out of index order: the earliest file comes last, the latest in the middle.
        const files: GroupFile[] = [
          { sourceKey: 'middle.data', position: 7, rows: new Map([[app, cells([...tricky, ...many])]]) },
          { sourceKey: 'latest.data', position: 9, rows: new Map([[app, cells(restyled([...tricky.slice(0, 2), ...many.slice(-4)], 'latest'))]]) },
          { sourceKey: 'earliest.data', position: 2, rows: new Map([[app, cells(restyled([...tricky.slice(1, 4), ...many.slice(0, 5)], 'earliest'))]]) },
        ];
        await db.transaction((trx) => upsertGroupRows(trx, compiler, files, 'at-1'));

        const want = new Map<string, Row & { source_key: string; source_position: number }>();
        for (const f of [...files].sort((a, b) => a.position - b.position)) {
          for (const row of rowsOf(app, f.rows.get(app) ?? [])) want.set(key(row), { ...row, source_key: f.sourceKey, source_position: f.position });
        }
        const rows = (await db('apps').select()) as Array<Record<string, unknown>>;
        expect(rows).to.have.length(want.size);
        for (const got of rows) {
          expect({ ...got, is_awesome: Boolean(got['is_awesome']), source_position: Number(got['source_position']) }, key(got)).to.include({ ...want.get(key(got)), loaded_at: 'at-1' });
        }
        expect(rows.filter((r) => r['genre'] === 'latest')).to.have.length(6);
        expect(rows.filter((r) => r['genre'] === 'earliest'), 'keys only the earliest file holds').to.have.length(0);
      }));

      it("replaces a group's rejections exactly, across several statements, and leaves other files' alone", () => withMigratedDatabase(dialect, async (db) => {
        const tricky: Rejection[] = [
          { recordIndex: 0, type: null, reason: 'record is not an object, got 42', raw: '42' },
          { recordIndex: 7, type: 'NULL', reason: 'say "hi" \\ {a,b}', raw: '{"type":"song","data":{"title":"a \\"q\\" {x}, y"}}' },
          { recordIndex: 2_000_000_000, type: 'sóng 東京 🎬', reason: 'tab\there, new\nline', raw: '"ends in a backslash\\\\"' },
        ];
        const many: Rejection[] = Array.from({ length: PG_ROWS_PER_STATEMENT + 2 }, (_, i) => ({ recordIndex: i, type: 'song', reason: `r${i}`, raw: `[${i}]` }));
        const rows = async (sourceKey: string): Promise<Rejection[]> =>
          ((await db(REJECTED_TABLE).where({ source_key: sourceKey }).orderBy('record_index').select('record_index', 'type', 'reason', 'raw', 'rejected_at', 'source_position')) as Array<Record<string, unknown>>)
            .map((r) => ({ recordIndex: Number(r['record_index']), type: r['type'] as string | null, reason: r['reason'] as string, raw: r['raw'] as string, at: r['rejected_at'], position: r['source_position'] }) as Rejection);
        await db.transaction((trx) => replaceGroupRejections(trx, 'b', [{ sourceKey: 'a.data', position: 0, rejections: many }, { sourceKey: 'other.data', position: 1, rejections: tricky.slice(0, 1) }], 'at-1'));
        // a.data is written again with other rejections; other.data is not in this group.
        await db.transaction((trx) => replaceGroupRejections(trx, 'b', [{ sourceKey: 'a.data', position: 0, rejections: tricky }, { sourceKey: 'b.data', position: 2, rejections: [] }], 'at-2'));
        expect(await rows('a.data')).to.deep.equal(tricky.map((r) => ({ ...r, at: 'at-2', position: 0 })));
        expect(await rows('other.data')).to.deep.equal(tricky.slice(0, 1).map((r) => ({ ...r, at: 'at-1', position: 1 })));
        expect(await rows('b.data')).to.deep.equal([]);
      }));

      it('a row the database refuses in a later statement fails the whole write, and nothing of it stays', () => withMigratedDatabase(dialect, async (db, target) => {
        const compiler = new UpsertCompiler(target.dialect);
        const rows: Row[] = Array.from({ length: PG_ROWS_PER_STATEMENT + 2 }, (_, i) => ({
          name: `app ${i}`, genre: 'g', version: '1', rating: 1, size_bytes: i, is_awesome: false,
        }));
        const bad = sourced([{ ...(rows[0] as Row), name: 'no genre', genre: null as unknown as string }], 'bad.data', 3);
        const err = await db.transaction(async (trx) => {
          await upsertSourcedRows(trx, compiler, app, [...sourced(rows, 'ok.data', 3), ...bad], 'at-1');
        }).then(() => null, (e: unknown) => e);
        expect(err, 'the NOT NULL violation of the last row').to.be.instanceOf(Error);
        expect(String((err as Error).message)).to.match(/genre|null/i);
        expect(await db('apps').count({ n: '*' }).first()).to.satisfy((r: { n: number | string }) => Number(r.n) === 0);
      }));
    });
  }
});

describe('group upserts from several workers at once', function () {
  this.timeout(60_000);
  for (const dialect of dialects().filter((d) => d.name !== 'sqlite')) {
    it(`${dialect.name}: two groups sharing keys, listed in opposite orders, both commit without a deadlock`, () => withMigratedDatabase(dialect, async (db, target) => {
      const compiler = new UpsertCompiler(target.dialect);
      const n = 3_000;
      // One file per group, its rows (and its tables) in opposite orders in the two groups.
      const group = (sourceKey: string, position: number, reversed: boolean): GroupFile[] => {
        const cellsOf = (type: RecordType, make: (i: number) => Row): Cell[] => {
          const order = Array.from({ length: n }, (_, i) => (reversed ? n - 1 - i : i));
          return order.flatMap((i) => type.columns.map((c) => make(i)[c.name] ?? null));
        };
        const songs = cellsOf(song, (i) => ({ artist_name: `artist ${i}`, title: `title ${i}`, year: 1990, release: sourceKey, ingestion_time: 't' }));
        const apps = cellsOf(app, (i) => ({ name: `app ${i}`, genre: sourceKey, version: '1', rating: 1, size_bytes: 10, is_awesome: false }));
        const entries: Array<[RecordType, Cell[]]> = [[song as RecordType, songs], [app as RecordType, apps]];
        return [{ sourceKey, position, rows: new Map(reversed ? entries.reverse() : entries) }];
      };
      // Both transactions write at the same time; in their own orders each would soon wait for a row the other holds.
      await Promise.all([
        db.transaction((trx) => upsertGroupRows(trx, compiler, group('a.data', 1, false), 'at-a')),
        db.transaction((trx) => upsertGroupRows(trx, compiler, group('b.data', 2, true), 'at-b')),
      ]);
      for (const table of ['songs', 'apps']) {
        const rows = (await db(table).select('source_key')) as Array<{ source_key: string }>;
        expect(rows, table).to.have.length(n);
        expect(rows.every((r) => r.source_key === 'b.data'), `${table}: the later file's rows`).to.equal(true);
      }
    }));

    it(`${dialect.name}: a row refused in the first table fails the group with that table's error, and nothing stays`, () => withMigratedDatabase(dialect, async (db, target) => {
      const compiler = new UpsertCompiler(target.dialect);
      const file = (sourceKey: string, type: RecordType, rows: Row[]): GroupFile =>
        ({ sourceKey, position: 1, rows: new Map([[type, rows.flatMap((row) => type.columns.map((c) => row[c.name] ?? null))]]) });
      // songs come first, before apps, whatever the order of the files: its failure must be the one reported, and apps must not stay.
      const songs = file('bad.data', song, [{ artist_name: 'A', title: 'T', year: 1, release: null as unknown as string, ingestion_time: 't' }]);
      const apps = file('ok.data', app, Array.from({ length: 10 }, (_, i) => ({ name: `app ${i}`, genre: 'g', version: '1', rating: 1, size_bytes: 1, is_awesome: false })));
      const err = await db.transaction((trx) => upsertGroupRows(trx, compiler, [apps, songs], 'at'))
        .then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(Error);
      expect(String((err as Error).message), 'the NOT NULL violation, not a later statement of the aborted transaction').to.match(/release/);
      for (const table of ['songs', 'apps']) expect(Number(((await db(table).count({ n: '*' }).first()) as { n: number | string }).n), table).to.equal(0);
    }));
  }
});

describe('merging a group by key', () => {
  const cells = (rows: Array<[string, string, string]>): Cell[] =>
    rows.flatMap(([name, version, genre]) => app.columns.map((c) => ({ name, version, genre, rating: 1, size_bytes: 1, is_awesome: false } as Row)[c.name] ?? null));
  const file = (sourceKey: string, position: number, rows: Array<[string, string, string]>): GroupFile => ({ sourceKey, position, rows: new Map([[app, cells(rows)]]) });
  /** The merged rows as `file:genre`, in their order. */
  const merged = (files: GroupFile[]): string[] => {
    const m = mergeTable(app, files);
    return Array.from(m.file, (f, i) => `${files[f]?.sourceKey}:${String(files[f]?.rows.get(app)?.[(m.at[i] ?? 0) + 1])}`);
  };

  it('keeps one row per key, of the file latest in the index whatever its place in the group, in key order', () => {
    const files = [
      file('b', 5, [['x', '1', 'b-x'], ['y', '1', 'b-y'], ['z', '1', 'b-z']]),
      file('c', 9, [['y', '1', 'c-y']]),
      file('a', 1, [['x', '1', 'a-x'], ['w', '1', 'a-w'], ['z', '1', 'a-z']]),
    ];
    expect(merged(files)).to.deep.equal(['a:a-w', 'b:b-x', 'c:c-y', 'b:b-z']);
    const m = mergeTable(app, files);
    const keys = Array.from(m.file, (f, i) => keyAt(app, files[f]?.rows.get(app) ?? [], m.at[i] ?? 0));
    expect(keys, 'in key order').to.deep.equal([...keys].sort());
  });

  it('of two files at the same place in the index, takes the later in the group; a file without the table adds nothing', () => {
    const files = [file('first', 3, [['k', '1', 'first']]), { sourceKey: 'songs-only', position: 8, rows: new Map() }, file('second', 3, [['k', '1', 'second']])];
    expect(merged(files)).to.deep.equal(['second:second']);
    expect(mergeTable(song, files).file).to.have.length(0);
  });
});
