import { expect } from 'chai';
import type * as t from 'io-ts';
import { classifyRecord } from '../src/records/classify.js';
import { isCalendarDate, isText } from '../src/records/codecs.js';
import { normalizeTitle } from '../src/records/normalize.js';
import { describeValue, formatErrors } from '../src/records/reasons.js';
import type { RecordType, Row } from '../src/records/types.js';
import { compileSchemaDocument } from '../src/schemas/index.js';
import { app, catalog, movie, song } from './helpers/types.js';

const NOW = '2024-05-01T12:34:56.789Z';

const SONG = { artist_name: 'Radiohead', title: 'Karma Police', year: 1997, release: 'OK Computer' };
const MOVIE = {
  original_title: 'Amélie',
  original_language: 'fr',
  budget: 10_000_000,
  is_adult: false,
  release_date: '2001-04-25',
};
const APP = { name: 'Notes', genre: 'Productivity', version: '1.2.3', rating: 4.5, size_bytes: 3_000_000_000 };

/** Runs a full record through classifyRecord and returns the row, failing if it is not one. */
function rowOf(type: string, data: unknown): Row {
  const c = classifyRecord(catalog, { type, data }, NOW);
  if (c.kind !== 'row') throw new Error(`expected a row, got ${JSON.stringify(c)}`);
  return c.row;
}

/** Runs a full record through classifyRecord and returns the reject reason, failing if it is not one. */
function rejectOf(type: string, data: unknown): string {
  const c = classifyRecord(catalog, { type, data }, NOW);
  if (c.kind !== 'reject') throw new Error(`expected a reject, got ${JSON.stringify(c)}`);
  expect(c.type).to.equal(type);
  return c.reason;
}

/** A value's test by a schema property (`{"type": "integer"}`, …), compiled as the daemon compiles it. */
interface PropertyCodec {
  name: string;
  decode(v: unknown): { _tag: 'Left' | 'Right' };
}
function property(schema: Record<string, unknown>): PropertyCodec {
  const type = compileSchemaDocument('test.json', {
    title: 't', type: 'object', 'x-table': 't', properties: { x: schema, k: { type: 'integer' } }, required: ['x', 'k'], 'x-key': ['k'],
  });
  const name = (): string => {
    const d = type.codec.decode({ x: Symbol('never'), k: 1 });
    return d._tag === 'Left' ? (d.left[0]?.context.at(-1)?.type.name ?? '?') : '?';
  };
  return { name: name(), decode: (v) => type.codec.decode(v === undefined ? { k: 1 } : { x: v, k: 1 }) };
}
const SafeInt = property({ type: 'integer' });
const NonNegativeSafeInt = property({ type: 'integer', minimum: 0 });
const FiniteNumber = property({ type: 'number' });
const StrictBoolean = property({ type: 'boolean' });
const CalendarDate = property({ type: 'string', format: 'date', maxLength: 10 });
const Str = property({ type: 'string' });

/** An io-ts type named as integers' reasons name theirs, for hand-made error contexts. */
const SAFE_INT = { name: SafeInt.name } as unknown as t.Decoder<unknown, unknown>;

function decodes(codec: PropertyCodec, v: unknown): boolean {
  return codec.decode(v)._tag === 'Right';
}

describe('records', () => {
  describe('codecs', () => {
    it('SafeInt accepts safe integers only', () => {
      for (const v of [0, -5, 1997, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]) expect(decodes(SafeInt, v), String(v)).to.equal(true);
      for (const v of ['1999', 1.5, 2 ** 53, NaN, Infinity, null, undefined, true, [1]]) expect(decodes(SafeInt, v), String(v)).to.equal(false);
      expect(SafeInt.name).to.equal('SafeInteger');
    });

    it('NonNegativeSafeInt rejects negatives', () => {
      expect(decodes(NonNegativeSafeInt, 0)).to.equal(true);
      expect(decodes(NonNegativeSafeInt, 3_000_000_000)).to.equal(true);
      expect(decodes(NonNegativeSafeInt, -1)).to.equal(false);
      expect(decodes(NonNegativeSafeInt, 2 ** 53)).to.equal(false);
      expect(decodes(NonNegativeSafeInt, 1.5)).to.equal(false);
      expect(decodes(NonNegativeSafeInt, '5')).to.equal(false);
    });

    it('FiniteNumber accepts integral and fractional numbers only', () => {
      for (const v of [4, 4.5, 0, -1.25]) expect(decodes(FiniteNumber, v), String(v)).to.equal(true);
      for (const v of [NaN, Infinity, -Infinity, '4', null, false]) expect(decodes(FiniteNumber, v), String(v)).to.equal(false);
    });

    it('StrictBoolean accepts true/false only', () => {
      expect(decodes(StrictBoolean, true)).to.equal(true);
      expect(decodes(StrictBoolean, false)).to.equal(true);
      for (const v of [0, 1, 'false', 'true', null]) expect(decodes(StrictBoolean, v), String(v)).to.equal(false);
    });

    it('CalendarDate accepts real YYYY-MM-DD dates only', () => {
      for (const v of ['2020-02-29', '2000-02-29', '2021-12-31', '2021-01-01', '1999-04-30']) {
        expect(isCalendarDate(v), v).to.equal(true);
        expect(decodes(CalendarDate, v), v).to.equal(true);
      }
      for (const v of [
        '2021-02-30',
        '2021-02-29',
        '1900-02-29',
        '2021-04-31',
        '2021-13-01',
        '2021-00-10',
        '2021-01-00',
        '2021-2-3',
        '2021-02-03T00:00',
        ' 2021-02-03',
        '2021-02-03\n',
        '２０２１-02-03',
        '',
      ]) {
        expect(isCalendarDate(v), JSON.stringify(v)).to.equal(false);
      }
      expect(decodes(CalendarDate, 20210203)).to.equal(false);
      expect(decodes(CalendarDate, null)).to.equal(false);
    });
  });

  describe('text', () => {
    const NUL = 'a\u0000b';
    const LONE = ['\ud800', 'x\udfff', '\udc00\ud800', 'ok \ud83d']; // lone high, lone low, reversed pair, cut pair

    it('is well-formed Unicode without U+0000: Str accepts it, surrogate pairs included, and nothing else', () => {
      for (const v of ['', 'plain', 'Amélie 東京', '😀 emoji', '\u0001\u001f\ufffd\uffff']) expect(decodes(Str, v), JSON.stringify(v)).to.equal(true);
      for (const v of [NUL, '\u0000', ...LONE]) {
        expect(isText(v), JSON.stringify(v)).to.equal(false);
        expect(decodes(Str, v), JSON.stringify(v)).to.equal(false);
      }
      for (const v of [5, null, undefined, ['a']]) expect(decodes(Str, v)).to.equal(false);
    });

    it('every text field of every record type rejects U+0000 and lone surrogates, naming the field, with the value escaped', () => {
      const records: Array<[string, Record<string, unknown>]> = [['song', SONG], ['movie', MOVIE], ['app', APP]];
      for (const [type, data] of records) {
        const fields = Object.keys(data).filter((f) => typeof data[f] === 'string' && f !== 'release_date');
        expect(fields.length, type).to.be.greaterThan(1);
        for (const field of fields) {
          for (const bad of [NUL, ...LONE]) {
            const reason = rejectOf(type, { ...data, [field]: `${String(data[field])}${bad}` });
            expect(reason, `${type}.${field} ${JSON.stringify(bad)}`).to.equal(`${field}: expected text without U+0000 or lone surrogates, got ${JSON.stringify(`${String(data[field])}${bad}`)}`);
            expect(isText(reason)).to.equal(true);
          }
        }
      }
      expect(rejectOf('movie', { ...MOVIE, release_date: '2001-04-25\u0000' })).to.match(/^release_date: expected CalendarDate/);
      // Surrogate pairs are text: the row keeps them exactly.
      expect(rowOf('song', { ...SONG, title: 'Karma 😀 Police' }).title).to.equal('Karma 😀 Police');
    });

    it('a type holding U+0000 or a lone surrogate is rejected with type null, whatever its data', () => {
      for (const type of ['so\u0000ng', 'song\ud800']) {
        for (const data of [SONG, null]) {
          expect(classifyRecord(catalog, { type, data }, NOW)).to.deep.equal({
            kind: 'reject',
            type: null,
            reason: `type: expected text without U+0000 or lone surrogates, got ${JSON.stringify(type)}`,
          });
        }
      }
    });

    it('a cut value or reason never ends in half a surrogate pair', () => {
      for (let pad = 50; pad < 62; pad++) {
        const v = `${'x'.repeat(pad)}${'😀'.repeat(10)}`;
        const shown = describeValue(v);
        expect(isText(shown), `pad ${pad}: ${shown}`).to.equal(true);
        expect(shown.endsWith('…')).to.equal(true);
      }
      const root = { key: '', type: song.codec as unknown as t.Decoder<unknown, unknown>, actual: {} };
      for (let pad = 0; pad < 3; pad++) {
        const many: t.Errors = Array.from({ length: 20 }, (_, i) => ({ value: `${'y'.repeat(pad + i)}${'😀'.repeat(40)}`, context: [root, { key: `f${i}`, type: SAFE_INT, actual: 0 }] }));
        expect(isText(formatErrors(many)), `pad ${pad}`).to.equal(true);
      }
    });
  });

  describe('normalizeTitle', () => {
    const cases: Array<[string, string]> = [
      ['  Hello,   World!! ', 'hello_world'],
      ['Amélie', 'amélie'],
      ['Ame\u0301lie', 'amélie'], // decomposed input gives the same (NFC) key
      ['Stone & Ed', 'stone_ed'],
      ['Крёстный отец', 'крёстный_отец'],
      ['東京物語', '東京物語'],
      ['七人の侍 (1954)', '七人の侍_1954'],
      ['___a___', 'a'],
      ['snake_case title', 'snake_case_title'],
      ['a__b', 'a_b'],
      ['a _ b', 'a_b'],
      ['Spider-Man: No Way Home', 'spiderman_no_way_home'],
      ['2001: A Space Odyssey', '2001_a_space_odyssey'],
      ['tab\tand\nnewline', 'tab_and_newline'],
      ['!!!', ''],
      ['   ', ''],
      ['', ''],
    ];
    for (const [input, expected] of cases) {
      it(`${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => {
        expect(normalizeTitle(input)).to.equal(expected);
      });
    }

    // The documented steps, as regular expressions: ASCII titles take a one-pass path that must agree with them.
    const reference = (s: string): string => s.normalize('NFC').toLowerCase().replace(/\s+/gu, '_')
      .replace(/[^\p{L}\p{M}\p{N}_]+/gu, '').replace(/_{2,}/g, '_').replace(/^_+|_+$/g, '');
    it('gives the documented steps\' result for every ASCII character, in random titles', () => {
      let seed = 7;
      const next = (n: number): number => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return (seed >>> 8) % n;
      };
      // Every ASCII code point, with whitespace, `_` and a few letters made common so runs and edges occur often.
      const alphabet = [...Array.from({ length: 128 }, (_, c) => String.fromCharCode(c)), ...' _ _\t\n\r\v\fAaZz09-'];
      for (let i = 0; i < 20_000; i++) {
        const title = Array.from({ length: next(12) }, () => alphabet[next(alphabet.length)]).join('');
        expect(normalizeTitle(title), JSON.stringify(title)).to.equal(reference(title));
      }
    });

    it('gives the same result when called again, and for the next title', () => {
      for (const title of ['Up', 'Up', 'Amélie', 'Amélie', ' Up ', 'UP', 'Up']) expect(normalizeTitle(title)).to.equal(reference(title));
    });
  });

  describe('song', () => {
    it('builds the exact row with ingestion_time = now', () => {
      expect(rowOf('song', SONG)).to.deep.equal({
        artist_name: 'Radiohead',
        title: 'Karma Police',
        year: 1997,
        release: 'OK Computer',
        ingestion_time: NOW,
      });
    });

    it('accepts year 0', () => {
      expect(rowOf('song', { ...SONG, year: 0 })['year']).to.equal(0);
    });

    it('ignores extra fields', () => {
      const row = rowOf('song', { ...SONG, duration: 263.2, artist_id: 'AR1' });
      expect(Object.keys(row)).to.deep.equal(['artist_name', 'title', 'year', 'release', 'ingestion_time']);
    });

    it('rejects a numeric string year, a fractional year and an unsafe year', () => {
      expect(rejectOf('song', { ...SONG, year: '1999' })).to.equal('year: expected SafeInteger, got "1999"');
      expect(rejectOf('song', { ...SONG, year: 1999.5 })).to.equal('year: expected SafeInteger, got 1999.5');
      expect(rejectOf('song', { ...SONG, year: 2 ** 53 })).to.equal('year: expected SafeInteger, got 9007199254740992');
    });

    it('rejects null and missing fields, naming each', () => {
      expect(rejectOf('song', { ...SONG, release: null })).to.equal('release: expected string, got null');
      const { title: _t, ...noTitle } = SONG;
      void _t;
      expect(rejectOf('song', { ...noTitle, year: '1999' })).to.equal(
        'title: expected string, got missing; year: expected SafeInteger, got "1999"',
      );
      expect(rejectOf('song', {})).to.equal(
        'artist_name: expected string, got missing; title: expected string, got missing; ' +
          'year: expected SafeInteger, got missing; release: expected string, got missing',
      );
    });

    it('declares table, key and columns', () => {
      expect(song.table).to.equal('songs');
      expect(song.key).to.deep.equal(['artist_name', 'title']);
      expect(song.columns.map((c) => c.name)).to.deep.equal(['artist_name', 'title', 'year', 'release', 'ingestion_time']);
      expect(song.columns.find((c) => c.name === 'ingestion_time')?.kind).to.equal('string');
      expect(song.columns.find((c) => c.name === 'year')?.kind).to.equal('bigint');
    });
  });

  describe('movie', () => {
    it('builds the exact row with the normalized title', () => {
      expect(rowOf('movie', MOVIE)).to.deep.equal({
        original_title: 'Amélie',
        original_title_normalized: 'amélie',
        original_language: 'fr',
        budget: 10_000_000,
        is_adult: false,
        release_date: '2001-04-25',
      });
      expect(rowOf('movie', { ...MOVIE, original_title: 'Stone & Ed', budget: 0, is_adult: true })).to.deep.equal({
        original_title: 'Stone & Ed',
        original_title_normalized: 'stone_ed',
        original_language: 'fr',
        budget: 0,
        is_adult: true,
        release_date: '2001-04-25',
      });
    });

    it('normalizes Cyrillic and CJK titles', () => {
      expect(rowOf('movie', { ...MOVIE, original_title: 'Крёстный отец' })['original_title_normalized']).to.equal('крёстный_отец');
      expect(rowOf('movie', { ...MOVIE, original_title: '東京物語' })['original_title_normalized']).to.equal('東京物語');
    });

    it('rejects a title that normalizes to nothing', () => {
      expect(rejectOf('movie', { ...MOVIE, original_title: '!?!' })).to.equal(
        'original_title: expected TitleWithLetterOrDigit, got "!?!"',
      );
      expect(rejectOf('movie', { ...MOVIE, original_title: '' })).to.equal('original_title: expected TitleWithLetterOrDigit, got ""');
    });

    it('accepts a leap day and rejects impossible or malformed dates', () => {
      expect(rowOf('movie', { ...MOVIE, release_date: '2020-02-29' })['release_date']).to.equal('2020-02-29');
      expect(rejectOf('movie', { ...MOVIE, release_date: '2021-02-30' })).to.equal(
        'release_date: expected CalendarDate(YYYY-MM-DD), got "2021-02-30"',
      );
      expect(rejectOf('movie', { ...MOVIE, release_date: '2021-2-3' })).to.equal(
        'release_date: expected CalendarDate(YYYY-MM-DD), got "2021-2-3"',
      );
      expect(rejectOf('movie', { ...MOVIE, release_date: '2021-02-03T00:00' })).to.equal(
        'release_date: expected CalendarDate(YYYY-MM-DD), got "2021-02-03T00:00"',
      );
    });

    it('rejects numeric and string booleans', () => {
      expect(rejectOf('movie', { ...MOVIE, is_adult: 0 })).to.equal('is_adult: expected boolean, got 0');
      expect(rejectOf('movie', { ...MOVIE, is_adult: 'false' })).to.equal('is_adult: expected boolean, got "false"');
    });

    it('rejects negative, fractional and string budgets', () => {
      expect(rejectOf('movie', { ...MOVIE, budget: -1 })).to.equal('budget: expected NonNegativeSafeInteger, got -1');
      expect(rejectOf('movie', { ...MOVIE, budget: 1.5 })).to.equal('budget: expected NonNegativeSafeInteger, got 1.5');
      expect(rejectOf('movie', { ...MOVIE, budget: '100' })).to.equal('budget: expected NonNegativeSafeInteger, got "100"');
    });

    it('ignores extra fields and rejects null fields', () => {
      const row = rowOf('movie', { ...MOVIE, popularity: 9.1, genres: ['Comedy'] });
      expect(row).to.not.have.property('popularity');
      expect(row).to.not.have.property('genres');
      expect(rejectOf('movie', { ...MOVIE, original_language: null })).to.equal('original_language: expected string, got null');
    });

    it('declares table, key and columns', () => {
      expect(movie.table).to.equal('movies');
      expect(movie.key).to.deep.equal(['original_title_normalized', 'release_date']);
      expect(movie.columns.map((c) => c.name)).to.deep.equal([
        'original_title',
        'original_title_normalized',
        'original_language',
        'budget',
        'is_adult',
        'release_date',
      ]);
      expect(movie.columns.find((c) => c.name === 'release_date')?.kind).to.equal('string');
    });
  });

  describe('app', () => {
    it('builds the exact row; sizes above 2^31 are fine', () => {
      expect(rowOf('app', APP)).to.deep.equal({
        name: 'Notes',
        genre: 'Productivity',
        version: '1.2.3',
        rating: 4.5,
        size_bytes: 3_000_000_000,
        is_awesome: false,
      });
    });

    it('accepts an integral rating (4.0 arrives as 4)', () => {
      expect(rowOf('app', { ...APP, rating: 4 })['rating']).to.equal(4);
    });

    it('rejects NaN, Infinity and string ratings', () => {
      expect(rejectOf('app', { ...APP, rating: NaN })).to.equal('rating: expected FiniteNumber, got NaN');
      expect(rejectOf('app', { ...APP, rating: Infinity })).to.equal('rating: expected FiniteNumber, got Infinity');
      expect(rejectOf('app', { ...APP, rating: '4' })).to.equal('rating: expected FiniteNumber, got "4"');
    });

    it('rejects unsafe, negative and fractional sizes', () => {
      expect(rejectOf('app', { ...APP, size_bytes: 2 ** 53 })).to.equal(
        'size_bytes: expected NonNegativeSafeInteger, got 9007199254740992',
      );
      expect(rejectOf('app', { ...APP, size_bytes: -1 })).to.equal('size_bytes: expected NonNegativeSafeInteger, got -1');
      expect(rejectOf('app', { ...APP, size_bytes: 1.5 })).to.equal('size_bytes: expected NonNegativeSafeInteger, got 1.5');
    });

    it('is_awesome is size_bytes < 1_000_000', () => {
      expect(rowOf('app', { ...APP, size_bytes: 999_999 })['is_awesome']).to.equal(true);
      expect(rowOf('app', { ...APP, size_bytes: 1_000_000 })['is_awesome']).to.equal(false);
      expect(rowOf('app', { ...APP, size_bytes: 0 })['is_awesome']).to.equal(true);
    });

    it('ignores extra fields and rejects missing ones', () => {
      const row = rowOf('app', { ...APP, is_awesome: 'yes', price: 0 });
      expect(row['is_awesome']).to.equal(false);
      expect(row).to.not.have.property('price');
      const { version: _v, ...noVersion } = APP;
      void _v;
      expect(rejectOf('app', noVersion)).to.equal('version: expected string, got missing');
    });

    it('declares table, key and columns', () => {
      expect(app.table).to.equal('apps');
      expect(app.key).to.deep.equal(['name', 'version']);
      expect(app.columns.map((c) => [c.name, c.kind])).to.deep.equal([
        ['name', 'string'],
        ['genre', 'string'],
        ['version', 'string'],
        ['rating', 'float'],
        ['size_bytes', 'bigint'],
        ['is_awesome', 'boolean'],
      ]);
    });
  });

  describe('registry', () => {
    it('declares app, movie and song (schemas/*.json, in file order) and looks them up by type', () => {
      expect(catalog.types.map((rt) => rt.type)).to.deep.equal(['app', 'movie', 'song']);
      expect(catalog.typeFor('song')).to.equal(song);
      expect(catalog.typeFor('movie')).to.equal(movie);
      expect(catalog.typeFor('app')).to.equal(app);
      expect(catalog.typeFor('book')).to.equal(undefined);
      expect(catalog.typeFor('constructor')).to.equal(undefined);
      expect(catalog.typeFor('Song')).to.equal(undefined);
    });

    it('every key column is a declared column and every row has exactly the declared columns', () => {
      const samples: Array<[RecordType, unknown]> = [
        [song, SONG],
        [movie, MOVIE],
        [app, APP],
      ];
      for (const [rt, data] of samples) {
        const names = rt.columns.map((c) => c.name);
        for (const k of rt.key) expect(names, `${rt.type} key ${k}`).to.include(k);
        expect(Object.keys(rowOf(rt.type, data)), rt.type).to.deep.equal(names);
      }
    });
  });

  describe('classifyRecord', () => {
    it('returns the record type and row for valid records', () => {
      const c = classifyRecord(catalog, { type: 'app', data: APP }, NOW);
      expect(c.kind).to.equal('row');
      if (c.kind === 'row') expect(c.type).to.equal(app);
    });

    it('skips unknown types', () => {
      expect(classifyRecord(catalog, { type: 'book', data: { isbn: '123' } }, NOW)).to.deep.equal({ kind: 'skip', type: 'book' });
    });

    it('rejects non-objects with type null', () => {
      expect(classifyRecord(catalog, 5, NOW)).to.deep.equal({ kind: 'reject', type: null, reason: 'record is not an object, got 5' });
      expect(classifyRecord(catalog, null, NOW)).to.deep.equal({ kind: 'reject', type: null, reason: 'record is not an object, got null' });
      expect(classifyRecord(catalog, [{ type: 'song', data: SONG }], NOW)).to.deep.include({ kind: 'reject', type: null });
      expect(classifyRecord(catalog, 'song', NOW)).to.deep.equal({ kind: 'reject', type: null, reason: 'record is not an object, got "song"' });
    });

    it('rejects a missing or non-string type with type null', () => {
      expect(classifyRecord(catalog, { data: SONG }, NOW)).to.deep.equal({
        kind: 'reject',
        type: null,
        reason: 'type: expected string, got missing',
      });
      expect(classifyRecord(catalog, { type: 5, data: SONG }, NOW)).to.deep.equal({
        kind: 'reject',
        type: null,
        reason: 'type: expected string, got 5',
      });
      expect(classifyRecord(catalog, { type: null, data: SONG }, NOW)).to.deep.equal({
        kind: 'reject',
        type: null,
        reason: 'type: expected string, got null',
      });
    });

    it('rejects a missing, null, array or scalar data', () => {
      expect(classifyRecord(catalog, { type: 'song', data: null }, NOW)).to.deep.equal({
        kind: 'reject',
        type: 'song',
        reason: 'data: expected object, got null',
      });
      expect(classifyRecord(catalog, { type: 'song' }, NOW)).to.deep.equal({
        kind: 'reject',
        type: 'song',
        reason: 'data: expected object, got missing',
      });
      expect(classifyRecord(catalog, { type: 'movie', data: [1, 2] }, NOW)).to.deep.equal({
        kind: 'reject',
        type: 'movie',
        reason: 'data: expected object, got [1,2]',
      });
      expect(classifyRecord(catalog, { type: 'app', data: 'x' }, NOW)).to.deep.equal({
        kind: 'reject',
        type: 'app',
        reason: 'data: expected object, got "x"',
      });
    });

    it('rejects invalid data of a known type with the failing fields named', () => {
      expect(classifyRecord(catalog, { type: 'movie', data: { ...MOVIE, is_adult: 1, release_date: '2021-02-30' } }, NOW)).to.deep.equal({
        kind: 'reject',
        type: 'movie',
        reason:
          'is_adult: expected boolean, got 1; release_date: expected CalendarDate(YYYY-MM-DD), got "2021-02-30"',
      });
    });
  });

  describe('formatErrors', () => {
    it('truncates long values to about 60 characters', () => {
      const long = 'x'.repeat(200);
      const reason = rejectOf('song', { ...SONG, year: long });
      expect(reason).to.equal(`year: expected SafeInteger, got "${'x'.repeat(58)}…`);
    });

    it('shows objects as JSON', () => {
      expect(rejectOf('song', { ...SONG, title: { a: 1 } })).to.equal('title: expected string, got {"a":1}');
    });

    it('deduplicates identical parts and caps the whole reason', () => {
      const leaf = { key: 'year', type: SAFE_INT, actual: 'x' };
      const root = { key: '', type: song.codec as unknown as t.Decoder<unknown, unknown>, actual: {} };
      const err = { value: 'x', context: [root, leaf] };
      expect(formatErrors([err, err])).to.equal('year: expected SafeInteger, got "x"');

      const many: t.Errors = Array.from({ length: 50 }, (_, i) => ({
        value: 'v'.repeat(40),
        context: [root, { key: `field_${i}`, type: SAFE_INT, actual: 'v' }],
      }));
      const capped = formatErrors(many);
      expect(capped.length).to.equal(500);
      expect(capped.endsWith('…')).to.equal(true);
      expect(capped).to.not.include('\n');
    });

    it('describes special values', () => {
      expect(describeValue(undefined)).to.equal('missing');
      expect(describeValue(NaN)).to.equal('NaN');
      expect(describeValue(-Infinity)).to.equal('-Infinity');
      expect(describeValue(null)).to.equal('null');
      expect(describeValue('a"b')).to.equal('"a\\"b"');
    });
  });
});
