/**
 * Deterministic generator of bucket contents for benchmarks, examples and tests.
 *
 * Each data file is a JSON array of `{"type": T, "data": {...}}` records: `song`, `movie` and `app`
 * (known to the daemon, spread evenly), `book` (unknown to the daemon, so skipped), invalid records of
 * many realistic kinds, and duplicates that reuse the key fields of an earlier valid record of the same
 * type with other non-key values. Everything derives from `seed` through a mulberry32 PRNG, so the same
 * options always give the same bytes.
 *
 * Counting, per file and in total:
 * - `valid`: records the daemon should load (new records and duplicates alike);
 * - `invalid`: records of a known type whose `data` fails validation, and malformed records (bare
 *   numbers, `null`);
 * - `skipped`: `book` records (well-formed, unknown type).
 *
 * Keys never collide except through `duplicateRate`: every song title, movie title and app name carries
 * a per-type counter as its only digits, so keys stay distinct under any normalization that keeps digits
 * (case folding, trimming, whitespace or punctuation removal, Unicode normalization).
 *
 * As a script:
 *   node --import tsx bench/generate.ts --out DIR --files N --records M [--seed S]
 *     [--invalid-rate R] [--book-rate R] [--duplicate-rate R] [--format json|ndjson|ndjson.gz|csv|parquet]
 */
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import yazl from 'yazl';
import { DEFAULT_RULES, FORMATS, validateBatch } from '../src/formats/index.js';
import { bundledCatalog } from '../src/schemas/catalog.js';

export interface GenerateOptions {
  files: number;
  recordsPerFile: number;
  /** PRNG seed; default 1. */
  seed?: number;
  /** Share of records that are invalid; default 0.02. */
  invalidRate?: number;
  /** Share of records that are `book` (unknown type); default 0.30. */
  bookRate?: number;
  /**
   * Share of records reusing the key fields of an earlier valid record of the same type (possibly in
   * another file) with other non-key values; default 0.01. They count as valid.
   */
  duplicateRate?: number;
}

export interface GeneratedFile {
  key: string;
  body: string;
  valid: number;
  invalid: number;
  skipped: number;
}

export interface BucketSummary {
  keys: string[];
  records: number;
  valid: number;
  invalid: number;
  skipped: number;
  /** Total UTF-8 bytes of the data files (the index not included). */
  bytes: number;
}

/** The bucket index's key. */
export const INDEX_KEY = 'files_list.data';

// ---------------------------------------------------------------------------------------------------------
// PRNG

type Rng = () => number;

/** mulberry32: a small, fast 32-bit PRNG; returns floats in [0, 1). */
function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [lo, hi], both inclusive. */
function int(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  const item = items[Math.floor(rng() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

function chance(rng: Rng, p: number): boolean {
  return rng() < p;
}

// ---------------------------------------------------------------------------------------------------------
// Word lists (no digits in any of them: the per-type counter is the only digit run of a key field)

const ARTISTS = [
  'The Beatles', 'Beyoncé', 'Sigur Rós', 'Motörhead', 'AC/DC', "Guns N' Roses", 'Björk', 'Кино',
  'Daft Punk', 'Mötley Crüe', 'Édith Piaf', 'Nina Simone', 'Ryuichi Sakamoto', 'Los Lobos',
  'Earth, Wind & Fire', 'Sade', 'Fela Kuti', 'Rammstein', 'Caetano Veloso', 'Tears for Fears', 'Мумий Тролль',
  'Portishead', 'Os Mutantes', 'Joni Mitchell',
];

const SONG_TITLES = [
  'Hey Jude', "Don't Stop Me Now", 'Bohemian Rhapsody', 'Ça plane pour moi', 'Hoppípolla', 'Группа крови',
  'La Vie en rose', "(I Can't Get No) Satisfaction", 'Smells Like Teen Spirit', 'Águas de Março',
  'Feeling Good', 'What a Wonderful World', 'Jóga', 'Around the World', 'Du hast', 'Glory Box',
  'Rock & Roll', 'Kids in America', 'Bésame mucho', 'Señorita', 'Hotel California', 'Respect',
  'Take Five', 'Purple Rain', 'Zombie', 'Wonderwall',
];

const SONG_TITLE_FORMATS: ReadonlyArray<(title: string, n: number) => string> = [
  (title, n) => `${title} ${n}`,
  (title, n) => `${title} (Take ${n})`,
  (title, n) => `${title} - Live ${n}`,
  (title, n) => `${title} (Remix #${n})`,
];

const RELEASES = [
  'Abbey Road', 'Homogenic', 'Random Access Memories', 'Ágætis byrjun', 'Dummy', 'Blue', 'Ace of Spades',
  'Back in Black', 'Greatest Hits', 'Live at the Olympia', 'Звезда по имени Солнце', 'Lemonade',
  'Takk...', 'Appetite for Destruction', 'Diamond Life', 'Unknown Pleasures', 'The Köln Concert',
];

/** Movie titles with their original language. */
const MOVIE_TITLES: ReadonlyArray<readonly [string, string]> = [
  ['Amélie', 'fr'], ['Крёстный отец', 'ru'], ['Léon: The Professional', 'en'], ["Pan's Labyrinth", 'es'],
  ['Spirited Away', 'ja'], ['Crouching Tiger, Hidden Dragon', 'zh'], ['Das Boot', 'de'], ['La Haine', 'fr'],
  ['Y tu mamá también', 'es'], ['The Good, the Bad and the Ugly', 'it'], ['Oldboy', 'ko'],
  ['千と千尋の神隠し', 'ja'], ['Il Postino', 'it'], ['Cinema Paradiso', 'it'], ['M*A*S*H', 'en'],
  ["What's Up, Doc?", 'en'], ['Сталкер', 'ru'], ['Fitzcarraldo', 'de'], ['Les Misérables', 'fr'],
  ['The Seventh Seal', 'sv'], ['Heat', 'en'], ['Alien', 'en'], ['Brazil', 'en'], ['Jaws', 'en'],
  ['Roma', 'es'], ['Parasite', 'ko'], ['Fargo', 'en'], ['Up', 'en'],
];

const MOVIE_TITLE_FORMATS: ReadonlyArray<(title: string, n: number) => string> = [
  (title, n) => `${title} ${n}`,
  (title, n) => `${title}: Part ${n}`,
  (title, n) => `${title} (Episode ${n})`,
];

const APP_NAMES = [
  'Photo Editor', 'Notes+', 'Zen Garden', 'Météo France', 'Шахматы', 'Calc & Convert', 'To-Do!',
  'Sleep Sounds', 'Pixel Runner', 'Budget Buddy', 'Café Finder', 'Lingo: Learn Languages', 'Flashlight',
  'Habit Tracker', 'Podcast Player', 'Sudoku Pro', 'Recipe Box', 'Guitar Tuner', 'QR Scanner',
];

const APP_GENRES = [
  'Games', 'Productivity', 'Utilities', 'Photo & Video', 'Education', 'Health & Fitness', 'Music', 'Finance',
  'Food & Drink', 'Weather',
];

const LANGUAGES = ['en', 'fr', 'ru', 'ja', 'es', 'de', 'it', 'ko', 'zh', 'sv'];

const BOOK_TITLES = [
  'War and Peace', 'Les Misérables', 'Мастер и Маргарита', 'Don Quijote', 'Moby-Dick; or, The Whale',
  "Gödel, Escher, Bach", 'One Hundred Years of Solitude', 'Norwegian Wood', 'The Trial', 'Middlemarch',
];

const BOOK_AUTHORS = [
  'Leo Tolstoy', 'Victor Hugo', 'Михаил Булгаков', 'Miguel de Cervantes', 'Herman Melville',
  'Douglas Hofstadter', 'Gabriel García Márquez', 'Haruki Murakami', 'Franz Kafka', 'George Eliot',
];

const BOOK_PUBLISHERS = [
  'Penguin Classics', 'Vintage International', 'Éditions Gallimard', 'Азбука-классика', "Oxford World's Classics",
  'Farrar, Straus and Giroux', 'Alfred A. Knopf', 'Basic Books', 'Harper Perennial Modern Classics', 'Suhrkamp Verlag',
];

// ---------------------------------------------------------------------------------------------------------
// Records

type KnownType = 'song' | 'movie' | 'app';
const KNOWN_TYPES: readonly KnownType[] = ['song', 'movie', 'app'];

type Data = Record<string, unknown>;
interface TypedRecord {
  type: string;
  data: Data | null | unknown[];
}
type AnyRecord = TypedRecord | number | null;

/** Key fields of an earlier valid record, kept so a later record can reuse them. */
type KeyFields = Data;

const KEY_FIELDS: Record<KnownType, readonly string[]> = {
  song: ['artist_name', 'title'],
  movie: ['original_title', 'release_date'],
  app: ['name', 'version'],
};

/** At most this many key tuples per type are remembered for duplicates (reservoir sampling). */
const POOL_SIZE = 5000;

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function randomDate(rng: Rng): string {
  const year = int(rng, 1920, 2025);
  const month = int(rng, 1, 12);
  const day = int(rng, 1, daysInMonth(year, month));
  return `${year}-${pad2(month)}-${pad2(day)}`;
}

/** Random bytes as a UUID v4-looking string. */
function uuid(rng: Rng): string {
  const hex: string[] = [];
  for (let i = 0; i < 16; i++) {
    let byte = int(rng, 0, 255);
    if (i === 6) byte = (byte & 0x0f) | 0x40;
    if (i === 8) byte = (byte & 0x3f) | 0x80;
    hex.push(byte.toString(16).padStart(2, '0'));
  }
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

/** A 13-digit ISBN (978 prefix) with a valid check digit. */
function isbn13(rng: Rng): string {
  let digits = '978';
  for (let i = 0; i < 9; i++) digits += String(int(rng, 0, 9));
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += Number(digits[i]) * (i % 2 === 0 ? 1 : 3);
  return digits + String((10 - (sum % 10)) % 10);
}

class RecordFactory {
  private readonly counters: Record<KnownType, number> = { song: 0, movie: 0, app: 0 };
  private readonly pools: Record<KnownType, KeyFields[]> = { song: [], movie: [], app: [] };
  private readonly seen: Record<KnownType, number> = { song: 0, movie: 0, app: 0 };
  private invalidCount = 0;

  constructor(private readonly rng: Rng, private readonly detailRng: Rng) {}

  private next(type: KnownType): number {
    this.counters[type] += 1;
    return this.counters[type];
  }

  // Non-key values -----------------------------------------------------------------------------------------

  private songValues(): Data {
    const rng = this.rng;
    return {
      year: chance(rng, 0.3) ? 0 : int(rng, 1950, 2024),
      release: pick(rng, RELEASES),
    };
  }

  private movieValues(language: string): Data {
    const rng = this.rng;
    return {
      original_language: language,
      budget: chance(rng, 0.4) ? 0 : int(rng, 1, 3000) * 100_000 + int(rng, 0, 99_999),
      is_adult: chance(rng, 0.05),
    };
  }

  private appValues(): Data {
    const rng = this.rng;
    const r = rng();
    const size =
      r < 0.3 ? int(rng, 20_000, 999_999) : r < 0.8 ? int(rng, 1_000_000, 2 ** 31 - 1) : int(rng, 2 ** 31, 2 ** 34);
    return {
      genre: pick(rng, APP_GENRES),
      rating: int(rng, 2, 10) / 2,
      size_bytes: size,
    };
  }

  // Fresh records --------------------------------------------------------------------------------------------

  song(): Data {
    const rng = this.rng;
    const n = this.next('song');
    const artist = pick(rng, ARTISTS);
    const title = pick(rng, SONG_TITLE_FORMATS)(pick(rng, SONG_TITLES), n);
    const values = this.songValues();
    return { artist_name: artist, title, year: values.year, release: values.release };
  }

  movie(): Data {
    const rng = this.rng;
    const n = this.next('movie');
    const [base, language] = pick(rng, MOVIE_TITLES);
    const title = pick(rng, MOVIE_TITLE_FORMATS)(base, n);
    const lang = chance(rng, 0.85) ? language : pick(rng, LANGUAGES);
    const values = this.movieValues(lang);
    return {
      original_title: title,
      original_language: values.original_language,
      budget: values.budget,
      is_adult: values.is_adult,
      release_date: randomDate(rng),
    };
  }

  app(): Data {
    const rng = this.rng;
    const n = this.next('app');
    const name = `${pick(this.rng, APP_NAMES)} ${n}`;
    const version = `${int(rng, 0, 12)}.${int(rng, 0, 30)}.${int(rng, 0, 99)}`;
    const values = this.appValues();
    return { name, genre: values.genre, version, rating: values.rating, size_bytes: values.size_bytes };
  }

  fresh(type: KnownType): Data {
    return type === 'song' ? this.song() : type === 'movie' ? this.movie() : this.app();
  }

  /** A catalogue entry of a type the daemon does not load: the fields such records carry, so they weigh what they do. */
  book(): Data {
    const rng = this.rng;
    const detail = this.detailRng;
    return {
      title: pick(rng, BOOK_TITLES),
      author: pick(rng, BOOK_AUTHORS),
      pages: int(rng, 48, 1400),
      isbn: isbn13(detail),
      publisher: pick(detail, BOOK_PUBLISHERS),
      year: int(detail, 1605, 2024),
      language: pick(detail, LANGUAGES),
    };
  }

  // Duplicates -----------------------------------------------------------------------------------------------

  /** Remembers the key fields of a valid record (reservoir sampling keeps memory bounded). */
  remember(type: KnownType, data: Data): void {
    const keys: KeyFields = {};
    for (const field of KEY_FIELDS[type]) keys[field] = data[field];
    this.seen[type] += 1;
    const pool = this.pools[type];
    if (pool.length < POOL_SIZE) {
      pool.push(keys);
    } else {
      const slot = Math.floor(this.rng() * this.seen[type]);
      if (slot < POOL_SIZE) pool[slot] = keys;
    }
  }

  /** A record with the key fields of an earlier valid one and fresh non-key values, or undefined. */
  duplicate(type: KnownType): Data | undefined {
    const pool = this.pools[type];
    if (pool.length === 0) return undefined;
    const keys = pick(this.rng, pool);
    switch (type) {
      case 'song': {
        const v = this.songValues();
        return { artist_name: keys.artist_name, title: keys.title, year: v.year, release: v.release };
      }
      case 'movie': {
        const v = this.movieValues(pick(this.rng, LANGUAGES));
        return {
          original_title: keys.original_title,
          original_language: v.original_language,
          budget: v.budget,
          is_adult: v.is_adult,
          release_date: keys.release_date,
        };
      }
      case 'app': {
        const v = this.appValues();
        return { name: keys.name, genre: v.genre, version: keys.version, rating: v.rating, size_bytes: v.size_bytes };
      }
    }
  }

  // Invalid records ------------------------------------------------------------------------------------------

  /** Invalid records, cycling through the kinds below so that every kind shows up. */
  invalid(): AnyRecord {
    const kinds = INVALID_KINDS;
    const kind = kinds[this.invalidCount % kinds.length];
    this.invalidCount += 1;
    if (kind === undefined) throw new Error('no invalid kinds');
    return kind(this, this.rng);
  }
}

type InvalidKind = (f: RecordFactory, rng: Rng) => AnyRecord;

function corrupt(f: RecordFactory, type: KnownType, change: (data: Data) => void): TypedRecord {
  const data = f.fresh(type);
  change(data);
  return { type, data };
}

const INVALID_KINDS: readonly InvalidKind[] = [
  // year as a string
  (f) => corrupt(f, 'song', (d) => (d.year = String(d.year === 0 ? 1999 : d.year))),
  // release_date that does not exist
  (f) => corrupt(f, 'movie', (d) => (d.release_date = '2021-02-30')),
  // rating as a string
  (f) => corrupt(f, 'app', (d) => (d.rating = '4.5')),
  // data null
  (_f, rng) => ({ type: pick(rng, KNOWN_TYPES), data: null }),
  // missing title
  (f) => corrupt(f, 'song', (d) => delete d.title),
  // negative budget
  (f) => corrupt(f, 'movie', (d) => (d.budget = -5)),
  // fractional size
  (f) => corrupt(f, 'app', (d) => (d.size_bytes = 1.5)),
  // a bare number instead of a record
  (_f, rng) => int(rng, 1, 999),
  // is_adult as 0
  (f) => corrupt(f, 'movie', (d) => (d.is_adult = 0)),
  // artist_name null
  (f) => corrupt(f, 'song', (d) => (d.artist_name = null)),
  // version as a number
  (f) => corrupt(f, 'app', (d) => (d.version = 2)),
  // release_date in another format
  (f) => corrupt(f, 'movie', (d) => (d.release_date = '03/12/2019')),
  // data is an array
  (_f, rng) => ({ type: pick(rng, KNOWN_TYPES), data: [] }),
  // a null record
  () => null,
];

// ---------------------------------------------------------------------------------------------------------
// Files

function resolve(opts: GenerateOptions): Required<GenerateOptions> {
  const o = {
    files: opts.files,
    recordsPerFile: opts.recordsPerFile,
    seed: opts.seed ?? 1,
    invalidRate: opts.invalidRate ?? 0.02,
    bookRate: opts.bookRate ?? 0.3,
    duplicateRate: opts.duplicateRate ?? 0.01,
  };
  for (const [name, value] of Object.entries(o)) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a number >= 0, got ${value}`);
  }
  if (!Number.isInteger(o.files) || !Number.isInteger(o.recordsPerFile)) {
    throw new RangeError('files and recordsPerFile must be integers');
  }
  if (o.invalidRate + o.bookRate + o.duplicateRate > 1) {
    throw new RangeError('invalidRate + bookRate + duplicateRate must not exceed 1');
  }
  return o;
}

/**
 * Generates the bucket's data files one at a time (lazily, so large buckets never sit in memory).
 * Same options → same keys and bytes.
 */
export function* generateFiles(opts: GenerateOptions): Generator<GeneratedFile> {
  const o = resolve(opts);
  const rng = mulberry32(o.seed);
  // A separate stream for keys: a file's key depends only on the seed and its position.
  const keyRng = mulberry32((o.seed ^ 0x9e3779b9) >>> 0);
  // Books' catalogue details come from a stream of their own, so adding them left every other record as it was.
  const factory = new RecordFactory(rng, mulberry32((o.seed ^ 0x85ebca6b) >>> 0));
  const usedKeys = new Set<string>();
  let typeTurn = 0;

  for (let i = 0; i < o.files; i++) {
    let key = `${uuid(keyRng)}.data`;
    while (usedKeys.has(key)) key = `${uuid(keyRng)}.data`;
    usedKeys.add(key);

    const records: AnyRecord[] = [];
    let valid = 0;
    let invalid = 0;
    let skipped = 0;
    for (let r = 0; r < o.recordsPerFile; r++) {
      const x = rng();
      if (x < o.bookRate) {
        records.push({ type: 'book', data: factory.book() });
        skipped++;
      } else if (x < o.bookRate + o.invalidRate) {
        records.push(factory.invalid());
        invalid++;
      } else {
        // Round-robin over the known types keeps them evenly spread.
        const type = KNOWN_TYPES[typeTurn % KNOWN_TYPES.length] ?? 'song';
        typeTurn++;
        const dup = x < o.bookRate + o.invalidRate + o.duplicateRate ? factory.duplicate(type) : undefined;
        const data = dup ?? factory.fresh(type);
        if (dup === undefined) factory.remember(type, data);
        records.push({ type, data });
        valid++;
      }
    }

    // Most files are compact, some pretty-printed, as different producers would write them.
    const body = rng() < 0.2 ? `${JSON.stringify(records, null, 2)}\n` : JSON.stringify(records);
    yield { key, body, valid, invalid, skipped };
  }
}

/** A known type's name, for {@link generateTypeRecords}. */
export type RecordType = KnownType;

/**
 * The `data` of records of one known type, one at a time and without end, mixed as generateFiles mixes them (new
 * records, duplicates of earlier keys at `duplicateRate`, invalid ones of that type at `invalidRate`; no books): the
 * rows of one CSV or Parquet file of any size (`npm run bench -- --big`), never more than one record in memory.
 * `valid` is the generator's view (a CSV holds a year `"1999"` as text the daemon reads as 1999).
 */
export function* generateTypeRecords(type: KnownType, opts: Omit<GenerateOptions, 'files' | 'recordsPerFile' | 'bookRate'>): Generator<{ data: Data; valid: boolean }> {
  const o = resolve({ ...opts, files: 0, recordsPerFile: 0, bookRate: 0 });
  const rng = mulberry32(o.seed);
  const factory = new RecordFactory(rng, mulberry32((o.seed ^ 0x85ebca6b) >>> 0));
  for (;;) {
    const x = rng();
    if (x < o.invalidRate) {
      // Invalid kinds cycle through the types: take the next one of this type with a data object.
      for (;;) {
        const r = factory.invalid();
        if (r !== null && typeof r === 'object' && r.type === type && r.data !== null && !Array.isArray(r.data)) {
          yield { data: r.data, valid: false };
          break;
        }
      }
      continue;
    }
    const dup = x < o.invalidRate + o.duplicateRate ? factory.duplicate(type) : undefined;
    const data = dup ?? factory.fresh(type);
    if (dup === undefined) factory.remember(type, data);
    yield { data, valid: true };
  }
}

/** How a bucket's files are written: the same records in each, so each loads to the same tables. */
export const FILE_FORMATS = ['json', 'ndjson', 'ndjson.gz'] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];

/**
 * A generated file in `format`: `json` as generated (a JSON array under the seed's `.data` key); `ndjson` one record
 * per line (`uuid.ndjson`), `ndjson.gz` that gzip-compressed (`uuid.ndjson.gz`). Records keep their order, so
 * `record_index` is the same in every format, and a record's line is its index + 1.
 */
export function inFormat(file: GeneratedFile, format: FileFormat): { key: string; body: Buffer } {
  if (format === 'json') return { key: file.key, body: Buffer.from(file.body) };
  const lines = (JSON.parse(file.body) as unknown[]).map((r) => `${JSON.stringify(r)}\n`).join('');
  const key = file.key.replace(/\.data$/, `.${format}`);
  return format === 'ndjson' ? { key, body: Buffer.from(lines) } : { key, body: gzipSync(lines) };
}

/**
 * Formats the bench writes: FILE_FORMATS, `csv` (see csvFiles) and `parquet` (see parquetFiles), whose tables differ
 * (CSV and Parquet say less), and `ndjson.zip`: the NDJSON files as members of ZIP archives of ZIP_MEMBERS each.
 */
export const BENCH_FORMATS = [...FILE_FORMATS, 'csv', 'parquet', 'ndjson.zip'] as const;
export type BenchFormat = (typeof BENCH_FORMATS)[number];

/** ROUTES for csvFiles' keys. */
export const CSV_ROUTES = '**/*.song.csv=song, **/*.movie.csv=movie, **/*.app.csv=app';
/** ROUTES for parquetFiles' keys. */
export const PARQUET_ROUTES = '**/*.song.parquet=song, **/*.movie.parquet=movie, **/*.app.parquet=app';

/** A value as a CSV field: text as it is, another value as its JSON, quoted where it must be. */
export const csvField = (v: unknown): string => {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

/**
 * A generated file as CSV: one file per known type (`uuid.song.csv`, …, routed by CSV_ROUTES), its columns the
 * type's properties, each record's `data` values as text (a non-string value as its JSON). What CSV cannot hold is
 * left out: bare values, records without a `data` object, books, and properties the schema does not declare; so its
 * counts are the daemon's own (classified with the bundled types), not the generator's.
 */
export async function csvFiles(file: GeneratedFile): Promise<Array<{ key: string; body: Buffer; valid: number; invalid: number }>> {
  const rows = new Map<string, string[]>(CSV_TYPES.map((t) => [t.type, []]));
  for (const r of JSON.parse(file.body) as unknown[]) {
    if (typeof r !== 'object' || r === null) continue;
    const { type, data } = r as { type?: unknown; data?: unknown };
    const t = CSV_TYPES.find((x) => x.type === type);
    if (t === undefined || typeof data !== 'object' || data === null || Array.isArray(data)) continue;
    rows.get(t.type)?.push(t.columns.map((c) => csvField((data as Record<string, unknown>)[c])).join(','));
  }
  const now = new Date().toISOString();
  return Promise.all(CSV_TYPES.map(async (t) => {
    const key = file.key.replace(/\.data$/, `.${t.type}.csv`);
    const body = Buffer.from(`${t.columns.join(',')}\n${(rows.get(t.type) ?? []).map((l) => `${l}\n`).join('')}`);
    const checked = validateBatch(BUNDLED, await FORMATS.csv.whole(key, body, { ...DEFAULT_RULES, routes: [{ glob: '**', type: t.type }] }), now);
    return { key, body, valid: checked.loaded, invalid: checked.rejections.length };
  }));
}

/**
 * A generated file as Parquet (hyparquet-writer): one file per known type (`uuid.song.parquet`, …, routed by
 * PARQUET_ROUTES), a column per property typed by its JSON type (integer INT64, number DOUBLE, boolean BOOLEAN, else
 * UTF8), in row groups of 10,000 rows. What such columns cannot hold is left out as in csvFiles, and so is a record
 * with a value not of its property's type (a year "1999"); its counts are the daemon's own.
 */
export async function parquetFiles(file: GeneratedFile): Promise<Array<{ key: string; body: Buffer; valid: number; invalid: number }>> {
  const rows = new Map<string, Array<Record<string, unknown>>>(PARQUET_TYPES.map((t) => [t.type, []]));
  for (const r of JSON.parse(file.body) as unknown[]) {
    if (typeof r !== 'object' || r === null) continue;
    const { type, data } = r as { type?: unknown; data?: unknown };
    const t = PARQUET_TYPES.find((x) => x.type === type);
    if (t === undefined || typeof data !== 'object' || data === null || Array.isArray(data)) continue;
    const d = data as Record<string, unknown>;
    if (t.columns.every((c) => d[c.name] === undefined || d[c.name] === null || fits(c.type, d[c.name]))) rows.get(t.type)?.push(d);
  }
  const now = new Date().toISOString();
  return Promise.all(PARQUET_TYPES.map(async (t) => {
    const key = file.key.replace(/\.data$/, `.${t.type}.parquet`);
    const of = rows.get(t.type) ?? [];
    const columnData = t.columns.map((c) => ({ name: c.name, data: of.map((d) => (d[c.name] === undefined || d[c.name] === null ? null : c.type === 'integer' ? BigInt(d[c.name] as number) : d[c.name])) }));
    const schema = [{ name: 'root', num_children: t.columns.length }, ...t.columns.map((c) => ({ name: c.name, repetition_type: 'OPTIONAL', ...PARQUET_OF[c.type] }))];
    const body = Buffer.from(parquetWriteBuffer({ columnData, schema, rowGroupSize: 10_000 } as never));
    const checked = validateBatch(BUNDLED, await FORMATS.parquet.whole(key, body, { ...DEFAULT_RULES, routes: [{ glob: '**', type: t.type }] }), now);
    return { key, body, valid: checked.loaded, invalid: checked.rejections.length };
  }));
}

/** The Parquet column of a property's JSON type. */
export const PARQUET_OF: Record<string, { type: string; converted_type?: string }> = {
  integer: { type: 'INT64' },
  number: { type: 'DOUBLE' },
  boolean: { type: 'BOOLEAN' },
  string: { type: 'BYTE_ARRAY', converted_type: 'UTF8' },
};

/** A value a column of the property's JSON type holds as it is (an integer column: a safe integer). */
export function fits(type: string, v: unknown): boolean {
  if (type === 'integer') return Number.isSafeInteger(v);
  if (type === 'number') return typeof v === 'number';
  if (type === 'boolean') return typeof v === 'boolean';
  return typeof v === 'string';
}

const BUNDLED = bundledCatalog();
/** The known types' columns, as csvFiles and parquetFiles write them. */
export const CSV_TYPES = ['song', 'movie', 'app'].map((type) => ({ type, columns: BUNDLED.typeFor(type)?.spec.properties.map((p) => p.name) ?? [] }));
export const PARQUET_TYPES = ['song', 'movie', 'app'].map((type) => ({
  type,
  columns: (BUNDLED.typeFor(type)?.spec.properties ?? []).map((p) => ({ name: p.name, type: PARQUET_OF[p.type] === undefined ? 'string' : p.type })),
}));

/** The index file's text: one key per line, no trailing newline. */
export function indexText(keys: string[]): string {
  return keys.join('\n');
}

/** Members of each archive of an `ndjson.zip` bucket. */
export const ZIP_MEMBERS = 30;

/** A ZIP archive (yazl, deflate) of the members, in their order. */
export async function zipArchive(members: ReadonlyArray<{ key: string; body: Buffer }>): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const m of members) zip.addBuffer(m.body, m.key, { mtime: new Date('2026-01-01T00:00:00Z') });
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Writes every generated file (in `format`, see inFormat) and `files_list.data` into `dir` (created if missing). */
export async function writeBucket(dir: string, opts: GenerateOptions, format: BenchFormat = 'json'): Promise<BucketSummary> {
  await mkdir(dir, { recursive: true });
  const summary: BucketSummary = { keys: [], records: 0, valid: 0, invalid: 0, skipped: 0, bytes: 0 };
  const pending: Array<{ key: string; body: Buffer }> = []; // ndjson.zip: members of the archive being filled
  const archive = async (): Promise<void> => {
    const key = `archive-${String(summary.keys.length).padStart(4, '0')}.zip`;
    const body = await zipArchive(pending.splice(0));
    await writeFile(join(dir, key), body);
    summary.keys.push(key);
    summary.bytes += body.length;
  };
  for (const generated of generateFiles(opts)) {
    if (format === 'ndjson.zip') {
      pending.push(inFormat(generated, 'ndjson'));
      summary.valid += generated.valid;
      summary.invalid += generated.invalid;
      summary.skipped += generated.skipped;
      summary.records += generated.valid + generated.invalid + generated.skipped;
      if (pending.length === ZIP_MEMBERS) await archive();
      continue;
    }
    if (format === 'csv' || format === 'parquet') {
      for (const file of await (format === 'csv' ? csvFiles : parquetFiles)(generated)) {
        await writeFile(join(dir, file.key), file.body);
        summary.keys.push(file.key);
        summary.valid += file.valid;
        summary.invalid += file.invalid;
        summary.records += file.valid + file.invalid;
        summary.bytes += file.body.length;
      }
      continue;
    }
    const file = inFormat(generated, format);
    await writeFile(join(dir, file.key), file.body);
    summary.keys.push(file.key);
    summary.valid += generated.valid;
    summary.invalid += generated.invalid;
    summary.skipped += generated.skipped;
    summary.records += generated.valid + generated.invalid + generated.skipped;
    summary.bytes += file.body.length;
  }
  if (pending.length > 0) await archive();
  await writeFile(join(dir, INDEX_KEY), indexText(summary.keys));
  return summary;
}

/**
 * Writes the records `opts` describes as ONE data file, `key`, one JSON array (each generated file's records in
 * turn, compact and pretty-printed runs alike), plus `files_list.data` naming it. Streamed to disk a generated
 * file at a time, so a file of several GB never sits in memory here either.
 */
export async function writeOneFileBucket(dir: string, opts: GenerateOptions, key = 'all-records.data'): Promise<BucketSummary> {
  await mkdir(dir, { recursive: true });
  const summary: BucketSummary = { keys: [key], records: 0, valid: 0, invalid: 0, skipped: 0, bytes: 0 };
  const out = await open(join(dir, key), 'w');
  try {
    let first = true;
    const write = async (text: string): Promise<void> => {
      // writeFile on a handle writes all of the text from the current position; write() may write only part of it.
      await out.writeFile(text);
      summary.bytes += Buffer.byteLength(text);
    };
    await write('[');
    for (const file of generateFiles(opts)) {
      // Pretty-printed bodies end with a newline: trim before taking the brackets off.
      const inner = file.body.trim().slice(1, -1).trim();
      if (inner !== '') {
        await write(first ? inner : `,${inner}`);
        first = false;
      }
      summary.valid += file.valid;
      summary.invalid += file.invalid;
      summary.skipped += file.skipped;
      summary.records += file.valid + file.invalid + file.skipped;
    }
    await write(']');
  } finally {
    await out.close();
  }
  await writeFile(join(dir, INDEX_KEY), indexText(summary.keys));
  return summary;
}

// ---------------------------------------------------------------------------------------------------------
// Script

const USAGE =
  'usage: node --import tsx bench/generate.ts --out DIR --files N --records M [--seed S]\n' +
  '         [--invalid-rate R] [--book-rate R] [--duplicate-rate R] [--format json|ndjson|ndjson.gz|csv|parquet]';

function parseArgs(argv: string[]): { out: string; opts: GenerateOptions; format: BenchFormat } {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '-h' || arg === '--help') throw new Error(USAGE);
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}\n${USAGE}`);
    const eq = arg.indexOf('=');
    if (eq > 0) {
      values.set(arg.slice(2, eq), arg.slice(eq + 1));
    } else {
      const value = argv[i + 1];
      if (value === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      values.set(arg.slice(2), value);
      i++;
    }
  }
  const known = ['out', 'files', 'records', 'seed', 'invalid-rate', 'book-rate', 'duplicate-rate', 'format'];
  for (const name of values.keys()) {
    if (!known.includes(name)) throw new Error(`unknown option --${name}\n${USAGE}`);
  }
  const num = (name: string): number | undefined => {
    const raw = values.get(name);
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${raw}`);
    return n;
  };
  const out = values.get('out');
  const files = num('files');
  const records = num('records');
  if (out === undefined || files === undefined || records === undefined) throw new Error(USAGE);
  const opts: GenerateOptions = { files, recordsPerFile: records };
  const seed = num('seed');
  const invalidRate = num('invalid-rate');
  const bookRate = num('book-rate');
  const duplicateRate = num('duplicate-rate');
  if (seed !== undefined) opts.seed = seed;
  if (invalidRate !== undefined) opts.invalidRate = invalidRate;
  if (bookRate !== undefined) opts.bookRate = bookRate;
  if (duplicateRate !== undefined) opts.duplicateRate = duplicateRate;
  const format = values.get('format') ?? 'json';
  if (!(BENCH_FORMATS as readonly string[]).includes(format)) throw new Error(`--format must be one of ${BENCH_FORMATS.join(', ')}, got ${format}`);
  return { out, opts, format: format as BenchFormat };
}

async function main(): Promise<void> {
  const { out, opts, format } = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const summary = await writeBucket(out, opts, format);
  const { keys, ...counts } = summary;
  process.stdout.write(
    `${JSON.stringify({ out, files: keys.length, ...counts, ms: Date.now() - started })}\n`,
  );
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
