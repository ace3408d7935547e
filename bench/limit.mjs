/**
 * The "limit" baseline for `npm run bench`: the least work that still ends with the same rows in the same
 * tables as the daemon, with none of the daemon's guarantees. Plain ESM JavaScript so it starts without a
 * compiler.
 *
 * - lists the bucket's index, then fetches every file with undici `request`, CONCURRENCY at a time;
 * - `JSON.parse`s each body and keeps the song/movie/app records whose fields have the right types (an inline
 *   check equivalent to the daemon's codecs, no io-ts);
 * - upserts them with ONE prepared `INSERT … ON CONFLICT(key) DO UPDATE` per table, all in ONE transaction,
 *   with better-sqlite3 (synchronous, in-process) in WAL mode with synchronous=NORMAL.
 *
 * No registry, no retries, no rejected_records, no per-file savepoints, no durability per group.
 *
 * Environment: BUCKET_URL (http://…), DATABASE_URL (sqlite://ABSOLUTE/PATH or a plain path), CONCURRENCY
 * (default 16), FILES_LIST_KEY (default files_list.data). Prints one JSON line (files, records, chars,
 * upserts) on stdout.
 */
import Database from 'better-sqlite3';
import { Agent, request } from 'undici';

const bucketUrl = process.env.BUCKET_URL;
const databaseUrl = process.env.DATABASE_URL;
const concurrency = Number(process.env.CONCURRENCY ?? 16);
const indexKey = process.env.FILES_LIST_KEY || 'files_list.data';
if (!bucketUrl || !databaseUrl || !Number.isInteger(concurrency) || concurrency < 1) {
  process.stderr.write('limit: needs BUCKET_URL, DATABASE_URL (sqlite://path) and CONCURRENCY >= 1\n');
  process.exit(2);
}
const filename = databaseUrl.replace(/^sqlite3?:\/\//i, '');

// Same tables as the daemon's migrations (src/load/schema.ts, as knex writes them for SQLite).
const TABLES = {
  song: {
    table: 'songs',
    columns: ['artist_name', 'title', 'year', 'release', 'ingestion_time'],
    types: ['varchar(255)', 'varchar(255)', 'bigint', 'text', 'varchar(512)'],
    key: ['artist_name', 'title'],
  },
  movie: {
    table: 'movies',
    columns: ['original_title', 'original_title_normalized', 'original_language', 'budget', 'is_adult', 'release_date'],
    types: ['text', 'varchar(255)', 'varchar(512)', 'bigint', 'boolean', 'varchar(255)'],
    key: ['original_title_normalized', 'release_date'],
  },
  app: {
    table: 'apps',
    columns: ['name', 'genre', 'version', 'rating', 'size_bytes', 'is_awesome'],
    types: ['varchar(255)', 'varchar(512)', 'varchar(255)', 'float', 'bigint', 'boolean'],
    key: ['name', 'version'],
  },
};

const db = new Database(filename);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
const statements = {};
for (const [type, t] of Object.entries(TABLES)) {
  const all = [...t.columns, 'source_key', 'loaded_at'];
  const types = [...t.types, 'varchar(512)', 'varchar(512)'];
  db.exec(`CREATE TABLE IF NOT EXISTS "${t.table}" (${all.map((c, i) => `"${c}" ${types[i]} NOT NULL`).join(', ')})`);
  db.exec(`CREATE UNIQUE INDEX IF NOT EXISTS "${t.table}_key" ON "${t.table}" (${t.key.map((c) => `"${c}"`).join(', ')})`);
  db.exec(`CREATE INDEX IF NOT EXISTS "${t.table}_source_key" ON "${t.table}" ("source_key")`);
  const updated = all.filter((c) => !t.key.includes(c));
  statements[type] = db.prepare(
    `INSERT INTO "${t.table}" (${all.map((c) => `"${c}"`).join(', ')}) VALUES (${all.map(() => '?').join(', ')}) ` +
      `ON CONFLICT (${t.key.map((c) => `"${c}"`).join(', ')}) DO UPDATE SET ${updated.map((c) => `"${c}" = excluded."${c}"`).join(', ')}`,
  );
}

// Inline validation, same rules as src/records/*.ts.
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v) => typeof v === 'string';
const isNonNegInt = (v) => Number.isSafeInteger(v) && v >= 0;
const DATE_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;
function isCalendarDate(s) {
  const m = DATE_RE.exec(s);
  if (m === null) return false;
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const dim = mo === 2 ? ((y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28) : mo === 4 || mo === 6 || mo === 9 || mo === 11 ? 30 : 31;
  return mo >= 1 && mo <= 12 && d >= 1 && d <= dim;
}
function normalizeTitle(s) {
  return s
    .normalize('NFC')
    .toLowerCase()
    .replace(/\s+/gu, '_')
    .replace(/[^\p{L}\p{M}\p{N}_]+/gu, '')
    .replace(/_{2,}/g, '_')
    .replace(/^_+|_+$/g, '');
}

let inserted = 0;
let records = 0;
let chars = 0; // UTF-16 code units of the data files (a size hint; bench/run.ts reports bytes)
function load(key, text, now) {
  const parsed = JSON.parse(text);
  if (!Array.isArray(parsed)) throw new Error(`${key}: not a JSON array`);
  records += parsed.length;
  for (const r of parsed) {
    if (!isObject(r) || !isObject(r.data)) continue;
    const d = r.data;
    switch (r.type) {
      case 'song':
        if (isStr(d.artist_name) && isStr(d.title) && Number.isSafeInteger(d.year) && isStr(d.release)) {
          statements.song.run(d.artist_name, d.title, d.year, d.release, now, key, now);
          inserted++;
        }
        break;
      case 'movie': {
        if (!isStr(d.original_title) || !isStr(d.original_language) || !isNonNegInt(d.budget) || typeof d.is_adult !== 'boolean') break;
        if (!isStr(d.release_date) || !isCalendarDate(d.release_date)) break;
        const normalized = normalizeTitle(d.original_title);
        if (normalized === '') break;
        statements.movie.run(d.original_title, normalized, d.original_language, d.budget, d.is_adult ? 1 : 0, d.release_date, key, now);
        inserted++;
        break;
      }
      case 'app':
        if (isStr(d.name) && isStr(d.genre) && isStr(d.version) && typeof d.rating === 'number' && Number.isFinite(d.rating) && isNonNegInt(d.size_bytes)) {
          statements.app.run(d.name, d.genre, d.version, d.rating, d.size_bytes, d.size_bytes < 1_000_000 ? 1 : 0, key, now);
          inserted++;
        }
        break;
      default:
        break;
    }
  }
}

const agent = new Agent({ connections: concurrency + 1, keepAliveTimeout: 10_000 });
const base = bucketUrl.endsWith('/') ? bucketUrl : `${bucketUrl}/`;
async function get(key) {
  const url = new URL(key.split('/').map(encodeURIComponent).join('/'), base);
  const res = await request(url, { method: 'GET', dispatcher: agent });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`${key}: HTTP ${res.statusCode}`);
  }
  return res.body.text();
}

const keys = [...new Set((await get(indexKey)).split('\n').map((k) => k.trim()).filter((k) => k !== ''))];
const now = new Date().toISOString();
db.exec('BEGIN');
let next = 0;
async function worker() {
  while (next < keys.length) {
    const key = keys[next++];
    const text = await get(key);
    chars += text.length;
    load(key, text, now);
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
db.exec('COMMIT');

db.close();
await agent.close();
// Row counts are taken by bench/run.ts afterwards, outside the timed run, as for the daemon.
process.stdout.write(`${JSON.stringify({ files: keys.length, records, chars, upserts: inserted })}\n`);
