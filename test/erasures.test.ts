import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { isTransientDbError } from '../src/load/commit.js';
import { ErasureList } from '../src/load/erasures.js';
import { bundledCatalog } from '../src/schemas/catalog.js';
import type { ValidatedFile } from '../src/validate.js';
import { tempDir } from './helpers/cli.js';

describe('the erasure list as the loader applies it', () => {
  const song = bundledCatalog().typeFor('song');
  if (!song) throw new Error('no song type');
  const width = song.columns.length;
  const at = (name: string): number => song.columns.findIndex((c) => c.name === name);
  const row = (artist: string, title: string): Array<string | number | null> => {
    const cells: Array<string | number | null> = new Array(width).fill(null);
    cells[at('artist_name')] = artist;
    cells[at('title')] = title;
    cells[at('year')] = 1999;
    return cells;
  };
  const file = (): ValidatedFile => ({
    rows: new Map([[song, [...row('Ann', 'One'), ...row('Bob', 'Two'), ...row('Ann', 'Three')]]]),
    rejections: [
      { recordIndex: 3, type: 'song', reason: 'r', raw: JSON.stringify({ type: 'song', data: { artist_name: 'Ann', year: 'x' } }) },
      { recordIndex: 4, type: 'song', reason: 'r', raw: JSON.stringify({ type: 'song', data: { artist_name: 'Cy', year: 1999 } }) },
      { recordIndex: 5, type: 'movie', reason: 'r', raw: JSON.stringify({ type: 'movie', data: { artist_name: 'Ann' } }) },
      { recordIndex: 6, type: 'song', reason: 'r', raw: '[1' },
    ],
    loaded: 3,
    skipped: 1,
  });

  it('an empty list gives the file itself back: nothing is copied or scanned', () => {
    const f = file();
    expect(ErasureList.EMPTY.apply(f)).to.deep.equal({ file: f, erased: 0 });
    expect(ErasureList.EMPTY.apply(f).file).to.equal(f);
  });

  it('a list that matches nothing of the file gives it back too', () => {
    const f = file();
    expect(new ErasureList([{ type: 'song', field: 'artist_name', value: 'Zed' }, { type: 'app', field: 'name', value: 'Ann' }]).apply(f).file).to.equal(f);
  });

  it('drops the rows and rejections of the type carrying an erased value, and counts them; a number compares as its text', () => {
    const list = new ErasureList([{ type: 'song', field: 'artist_name', value: 'Ann' }]);
    const { file: kept, erased } = list.apply(file());
    expect(erased).to.equal(3);
    expect(kept.rows.get(song)).to.deep.equal(row('Bob', 'Two'));
    expect(kept.rejections.map((r) => r.recordIndex)).to.deep.equal([4, 5, 6]);
    expect(kept.loaded).to.equal(1);
    expect(kept.skipped).to.equal(1);
    const byYear = new ErasureList([{ type: 'song', field: 'year', value: '1999' }]).apply(file());
    expect(byYear.erased).to.equal(4);
    expect(byYear.file.rows.get(song)).to.deep.equal([]);
    expect(byYear.file.rejections.map((r) => r.recordIndex)).to.deep.equal([3, 5, 6]);
  });
});

describe('the erasure list and rejections stored as text (CSV rows)', () => {
  it('drops a rejection whose text holds an erased value anywhere (no fields to look at: more, never fewer)', () => {
    const list = new ErasureList([{ type: 'song', field: 'artist_name', value: 'Ann' }]);
    expect(list.rejectionErased('song', 'Ann,One,not a year')).to.equal(true);
    expect(list.rejectionErased('song', '"Bob, Ann\'s friend",Two,x')).to.equal(true);
    expect(list.rejectionErased('song', 'Cy,Two,x')).to.equal(false);
    expect(list.rejectionErased('movie', 'Ann,One,x')).to.equal(false);
  });
});

describe('a stale SQLite snapshot (regression: a transaction that read before another process committed could not write)', () => {
  it('is a transient error: the commit is done again, reading afresh', async () => {
    const { dir, cleanup } = await tempDir();
    const file = join(dir, 'db.sqlite3');
    const a = new Database(file);
    const b = new Database(file);
    try {
      a.pragma('journal_mode = WAL');
      a.exec('CREATE TABLE t (x INTEGER)');
      a.exec('BEGIN');
      a.prepare('SELECT count(*) FROM t').get();
      b.exec('INSERT INTO t VALUES (1)');
      let err: unknown;
      try {
        a.exec('INSERT INTO t VALUES (2)');
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string }).code).to.equal('SQLITE_BUSY_SNAPSHOT');
      expect(isTransientDbError(err)).to.equal(true);
      a.exec('ROLLBACK');
    } finally {
      a.close();
      b.close();
      await cleanup();
    }
  });
});
