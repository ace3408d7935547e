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
 * With a `postgres://…?schema=NAME` DATABASE_URL it writes PostgreSQL instead (the `pg` driver, one connection):
 * rows are gathered per table, de-duplicated by key, and upserted 5,000 at a time with one named
 * `INSERT … SELECT FROM unnest($1::T[], …) ON CONFLICT … DO UPDATE` per table, all in ONE transaction.
 *
 * No registry, no retries, no rejected_records, no per-file savepoints, no durability per group.
 *
 * Environment: BUCKET_URL (http://…), DATABASE_URL (sqlite://ABSOLUTE/PATH, a plain path, or
 * postgres://…?schema=NAME), CONCURRENCY
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
  process.stderr.write('limit: needs BUCKET_URL, DATABASE_URL (sqlite://path or postgres://…) and CONCURRENCY >= 1\n');
  process.exit(2);
}

// Same tables as the daemon's migrations (src/load/schema.ts, as knex writes them for SQLite).
const TABLES = {
  song: {
    table: 'songs',
    columns: ['artist_name', 'title', 'year', 'release', 'ingestion_time'],
    types: ['varchar(255)', 'varchar(255)', 'bigint', 'text', 'varchar(512)'],
    pg: ['text', 'text', 'int8', 'text', 'text'],
    key: ['artist_name', 'title'],
  },
  movie: {
    table: 'movies',
    columns: ['original_title', 'original_title_normalized', 'original_language', 'budget', 'is_adult', 'release_date'],
    types: ['text', 'varchar(255)', 'varchar(512)', 'bigint', 'boolean', 'varchar(255)'],
    pg: ['text', 'text', 'text', 'int8', 'bool', 'text'],
    key: ['original_title_normalized', 'release_date'],
  },
  app: {
    table: 'apps',
    columns: ['name', 'genre', 'version', 'rating', 'size_bytes', 'is_awesome'],
    types: ['varchar(255)', 'varchar(512)', 'varchar(255)', 'float', 'bigint', 'boolean'],
    pg: ['text', 'text', 'text', 'float8', 'int8', 'bool'],
    key: ['name', 'version'],
  },
};

const ddl = (t, dialect) => {
  const all = [...t.columns, 'source_key', 'loaded_at'];
  const types = [...t.types, 'varchar(512)', 'varchar(512)'].map((x) => (dialect === 'pg' && x === 'float' ? 'double precision' : x));
  return [
    `CREATE TABLE IF NOT EXISTS "${t.table}" (${all.map((c, i) => `"${c}" ${types[i]} NOT NULL`).join(', ')})`,
    `CREATE UNIQUE INDEX IF NOT EXISTS "${t.table}_key" ON "${t.table}" (${t.key.map((c) => `"${c}"`).join(', ')})`,
  ];
};
const conflict = (t) => {
  const updated = [...t.columns, 'source_key', 'loaded_at'].filter((c) => !t.key.includes(c));
  return `ON CONFLICT (${t.key.map((c) => `"${c}"`).join(', ')}) DO UPDATE SET ${updated.map((c) => `"${c}" = excluded."${c}"`).join(', ')}`;
};

/** SQLite: one prepared single-row upsert per table, run as rows arrive, inside one transaction. */
async function sqliteSink(filename) {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(filename);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const statements = {};
  for (const [type, t] of Object.entries(TABLES)) {
    for (const sql of ddl(t, 'sqlite')) db.exec(sql);
    const all = [...t.columns, 'source_key', 'loaded_at'];
    statements[type] = db.prepare(`INSERT INTO "${t.table}" (${all.map((c) => `"${c}"`).join(', ')}) VALUES (${all.map(() => '?').join(', ')}) ${conflict(t)}`);
  }
  db.exec('BEGIN');
  return {
    add: (type, values) => {
      for (let i = 0; i < values.length; i++) if (typeof values[i] === 'boolean') values[i] = values[i] ? 1 : 0;
      statements[type].run(values);
    },
    finish: async () => {
      db.exec('COMMIT');
      db.close();
    },
  };
}

/** PostgreSQL: rows gathered per table (later duplicates of a key win), upserted 5,000 at a time through unnest. */
async function pgSink(url) {
  const { default: pg } = await import('pg');
  const parsed = new URL(url);
  const schema = parsed.searchParams.get('schema') ?? 'public';
  parsed.searchParams.delete('schema');
  const client = new pg.Client({ connectionString: parsed.toString() });
  await client.connect();
  await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  await client.query(`SET search_path TO "${schema}"`);
  const pending = {};
  const sql = {};
  for (const [type, t] of Object.entries(TABLES)) {
    for (const q of ddl(t, 'pg')) await client.query(q);
    const arrays = [...t.pg, 'text', 'text'];
    sql[type] = `INSERT INTO "${t.table}" (${[...t.columns, 'source_key', 'loaded_at'].map((c) => `"${c}"`).join(', ')}) ` +
      `SELECT * FROM unnest(${arrays.map((a, i) => `$${i + 1}::${a}[]`).join(', ')}) ${conflict(t)}`;
    pending[type] = new Map();
  }
  await client.query('BEGIN');
  let writing = Promise.resolve();
  const flush = (type) => {
    const rows = [...pending[type].values()];
    pending[type] = new Map();
    const columns = rows[0].map((_, c) => rows.map((r) => r[c]));
    writing = writing.then(() => client.query({ name: `limit_${type}`, text: sql[type], values: columns }));
  };
  return {
    add: (type, values) => {
      const t = TABLES[type];
      const key = JSON.stringify(t.key.map((c) => values[t.columns.indexOf(c)]));
      pending[type].set(key, values);
      if (pending[type].size >= 5000) flush(type);
      return writing;
    },
    finish: async () => {
      for (const type of Object.keys(TABLES)) if (pending[type].size > 0) flush(type);
      await writing;
      await client.query('COMMIT');
      await client.end();
    },
  };
}

const sink = /^postgres(ql)?:\/\//i.test(databaseUrl) ? await pgSink(databaseUrl) : await sqliteSink(databaseUrl.replace(/^sqlite3?:\/\//i, ''));

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
          sink.add('song', [d.artist_name, d.title, d.year, d.release, now, key, now]);
          inserted++;
        }
        break;
      case 'movie': {
        if (!isStr(d.original_title) || !isStr(d.original_language) || !isNonNegInt(d.budget) || typeof d.is_adult !== 'boolean') break;
        if (!isStr(d.release_date) || !isCalendarDate(d.release_date)) break;
        const normalized = normalizeTitle(d.original_title);
        if (normalized === '') break;
        sink.add('movie', [d.original_title, normalized, d.original_language, d.budget, d.is_adult, d.release_date, key, now]);
        inserted++;
        break;
      }
      case 'app':
        if (isStr(d.name) && isStr(d.genre) && isStr(d.version) && typeof d.rating === 'number' && Number.isFinite(d.rating) && isNonNegInt(d.size_bytes)) {
          sink.add('app', [d.name, d.genre, d.version, d.rating, d.size_bytes, d.size_bytes < 1_000_000, key, now]);
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
await sink.finish();
await agent.close();
// Row counts are taken by bench/run.ts afterwards, outside the timed run, as for the daemon.
process.stdout.write(`${JSON.stringify({ files: keys.length, records, chars, upserts: inserted })}\n`);
