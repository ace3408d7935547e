import * as t from 'io-ts';
import { BUNDLED_SCHEMAS } from '../schemas/catalog.js';
import { FORMAT_SETTINGS, type FormatOverride, type FormatSetting } from '../formats/detect.js';
import type { Route } from '../formats/routes.js';

/** An integer given as text (ini, environment) or number (CLI), within [min, max]. */
function intIn(name: string, min: number, max: number): t.Type<number, number, unknown> {
  return new t.Type<number, number, unknown>(
    name,
    (u): u is number => typeof u === 'number' && Number.isInteger(u) && u >= min && u <= max,
    (u, c) => {
      const n = typeof u === 'number' ? u : typeof u === 'string' && /^\s*-?\d+\s*$/.test(u) ? Number(u) : NaN;
      return Number.isInteger(n) && n >= min && n <= max ? t.success(n) : t.failure(u, c, `expected an integer from ${min} to ${max}`);
    },
    t.identity,
  );
}

/** A number of seconds given as text or number, >= min (fractions allowed, for tests and tuning). */
function secondsAtLeast(name: string, min: number): t.Type<number, number, unknown> {
  return new t.Type<number, number, unknown>(
    name,
    (u): u is number => typeof u === 'number' && Number.isFinite(u) && u >= min,
    (u, c) => {
      const n = typeof u === 'number' ? u : typeof u === 'string' && u.trim() !== '' ? Number(u) : NaN;
      return Number.isFinite(n) && n >= min ? t.success(n) : t.failure(u, c, `expected a number of seconds >= ${min}`);
    },
    t.identity,
  );
}

const NonEmpty = new t.Type<string, string, unknown>(
  'NonEmptyString',
  (u): u is string => typeof u === 'string' && u.trim() !== '',
  (u, c) => (typeof u === 'string' && u.trim() !== '' ? t.success(u.trim()) : t.failure(u, c, 'expected a non-empty string')),
  t.identity,
);

/**
 * A secret, taken exactly as written (no trimming: it is a key). ini reads `true`, `false` as booleans: taken back as
 * the text written. A value that fails is never shown (see SECRET_SETTINGS).
 */
const Secret = new t.Type<string, string, unknown>(
  'Secret',
  (u): u is string => typeof u === 'string',
  (u, c) => (typeof u === 'string' ? t.success(u) : typeof u === 'boolean' || typeof u === 'number' ? t.success(String(u)) : t.failure(u, c, 'expected a string')),
  t.identity,
);

/** NOTIFY_URL: empty (no notifications) or an `amqp://` / `amqps://` URL. */
const NotifyUrl = new t.Type<string, string, unknown>(
  'NotifyUrl',
  (u): u is string => typeof u === 'string',
  (u, c) => {
    if (typeof u !== 'string') return t.failure(u, c, 'expected an amqp:// URL, or nothing');
    const v = u.trim();
    return v === '' || /^amqps?:\/\/[^/\s]/i.test(v) ? t.success(v) : t.failure(u, c, 'expected an amqp:// or amqps:// URL, or nothing');
  },
  t.identity,
);

/** `off` (or empty) disables the HTTP server; 0 picks a free port (tests); else the port. */
const HttpPort = new t.Type<number | null, number | null, unknown>(
  'HttpPort',
  (u): u is number | null => u === null || (typeof u === 'number' && Number.isInteger(u) && u >= 0 && u <= 65535),
  (u, c) => {
    if (u === null || u === '' || (typeof u === 'string' && u.trim().toLowerCase() === 'off')) return t.success(null);
    const n = typeof u === 'number' ? u : typeof u === 'string' && /^\s*\d+\s*$/.test(u) ? Number(u) : NaN;
    return Number.isInteger(n) && n >= 0 && n <= 65535 ? t.success(n) : t.failure(u, c, 'expected a port from 0 to 65535, or off');
  },
  t.identity,
);

/** `auto`, or a number of threads from 0 to 64. */
const Threads = new t.Type<number | 'auto', number | 'auto', unknown>(
  'Threads',
  (u): u is number | 'auto' => u === 'auto' || (typeof u === 'number' && Number.isInteger(u) && u >= 0 && u <= 64),
  (u, c) => {
    if (typeof u === 'string' && u.trim().toLowerCase() === 'auto') return t.success('auto');
    const n = typeof u === 'number' ? u : typeof u === 'string' && /^\s*\d+\s*$/.test(u) ? Number(u) : NaN;
    return Number.isInteger(n) && n >= 0 && n <= 64 ? t.success(n) : t.failure(u, c, 'expected auto or a number of threads from 0 to 64');
  },
  t.identity,
);

/** One of a fixed set of words; a wrong one is told the allowed ones (io-ts's `keyof` says only "invalid value"). */
function oneOf<const K extends string>(name: string, values: readonly K[]): t.Type<K, K, unknown> {
  const allowed = new Set<unknown>(values);
  return new t.Type<K, K, unknown>(
    name,
    (u): u is K => allowed.has(u),
    (u, c) => (allowed.has(u) ? t.success(u as K) : t.failure(u, c, `expected one of ${values.join(', ')}`)),
    t.identity,
  );
}

const LogFormat = oneOf('LOG_FORMAT', ['auto', 'json', 'pretty']);

/**
 * `glob=value` pairs separated by commas (`logs/**=ndjson`, then more), tried in order; empty: none. A glob is a
 * picomatch pattern over the whole key, as `reprocess` takes them. `check` says what is wrong with a value, or null.
 */
function globPairs<A>(name: string, what: string, value: (v: string) => string | null, make: (glob: string, v: string) => A): t.Type<A[], A[], unknown> {
  return new t.Type<A[], A[], unknown>(
    name,
    (u): u is A[] => Array.isArray(u),
    (u, c) => {
      if (Array.isArray(u)) return t.success(u as A[]);
      if (typeof u !== 'string') return t.failure(u, c, `expected glob=${what} pairs separated by commas`);
      const out: A[] = [];
      for (const pair of u.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
        const eq = pair.lastIndexOf('=');
        const glob = pair.slice(0, Math.max(0, eq)).trim();
        const v = pair.slice(eq + 1).trim();
        if (eq < 0 || glob === '') return t.failure(u, c, `"${pair}" is not glob=${what}`);
        const wrong = value(v);
        if (wrong !== null) return t.failure(u, c, `"${pair}": ${wrong}`);
        out.push(make(glob, v));
      }
      return t.success(out);
    },
    t.identity,
  );
}

/** FORMAT_OVERRIDES: `glob=format` pairs (formats named in any case). */
const FormatOverrides = globPairs<FormatOverride>(
  'FormatOverrides',
  'format',
  (v) => (FORMAT_SETTINGS.includes(v.toLowerCase() as FormatSetting) ? null : `format must be one of ${FORMAT_SETTINGS.join(', ')}`),
  (glob, v) => ({ glob, format: v.toLowerCase() as FormatSetting }),
);

/** ROUTES: `glob=type` pairs; whether each type is declared is checked against the catalog (config/load.ts). */
const Routes = globPairs<Route>('Routes', 'type', (v) => (v === '' ? 'the type is empty' : null), (glob, type) => ({ glob, type }));

/** CSV_DELIMITER: one character (not a quote, CR or LF); TSV files are always tab-separated. */
const CsvDelimiter = new t.Type<string, string, unknown>(
  'CsvDelimiter',
  (u): u is string => typeof u === 'string',
  (u, c) => {
    if (typeof u !== 'string') return t.failure(u, c, 'expected one character');
    const d = u === '\\t' ? '\t' : u;
    if ([...d].length !== 1 || d === '"' || d === '\r' || d === '\n') return t.failure(u, c, 'expected one character other than ", CR and LF (\\t for a tab)');
    return t.success(d);
  },
  t.identity,
);

/** Globs separated by commas (picomatch over the whole key); empty: none. */
const Globs = new t.Type<string[], string[], unknown>(
  'Globs',
  (u): u is string[] => Array.isArray(u),
  (u, c) => (Array.isArray(u) ? t.success(u as string[]) : typeof u === 'string' ? t.success(u.split(',').map((g) => g.trim()).filter((g) => g !== '')) : t.failure(u, c, 'expected globs separated by commas')),
  t.identity,
);

/** `auto` (path-style when S3_ENDPOINT is set), `true` or `false`. */
const PathStyle = new t.Type<'auto' | boolean, 'auto' | boolean, unknown>(
  'PathStyle',
  (u): u is 'auto' | boolean => u === 'auto' || typeof u === 'boolean',
  (u, c) => {
    if (typeof u === 'boolean') return t.success(u);
    const v = typeof u === 'string' ? u.trim().toLowerCase() : '';
    if (v === 'auto' || v === '') return t.success('auto');
    if (v === 'true' || v === '1' || v === 'yes') return t.success(true);
    if (v === 'false' || v === '0' || v === 'no') return t.success(false);
    return t.failure(u, c, 'expected auto, true or false');
  },
  t.identity,
);

/** What AFTER_LOAD does with a file once its rows are committed (see src/load/after-load.ts). */
export type AfterLoadSetting = { kind: 'keep' } | { kind: 'delete' } | { kind: 'move'; prefix: string };

/**
 * Why a move prefix cannot be used, or null: a folder inside the bucket, so neither absolute nor leading out of it
 * (`..`), without `.` or empty segments (a local bucket would resolve them, S3 would not: the two would disagree on
 * where the copy is), and ending with `/`.
 */
export function movePrefixProblem(prefix: string): string | null {
  if (prefix === '') return 'the prefix is empty (move:PREFIX copies each file to PREFIX + its key)';
  if (prefix.startsWith('/') || prefix.startsWith('\\') || /^[a-z]:/i.test(prefix)) return `the prefix ${JSON.stringify(prefix)} is absolute; it must be a key prefix inside the bucket`;
  if (prefix.includes('\0')) return 'the prefix holds a NUL character';
  const segments = prefix.split('/');
  for (const [i, segment] of segments.entries()) {
    if (segment === '..') return `the prefix ${JSON.stringify(prefix)} leads outside the bucket (..)`;
    if (segment === '.') return `the prefix ${JSON.stringify(prefix)} has a "." segment`;
    if (segment === '' && i < segments.length - 1) return `the prefix ${JSON.stringify(prefix)} has an empty segment (//)`;
  }
  // `move:archive` would put b.json at archiveb.json, beside the files to load, where it may replace one.
  if (!prefix.endsWith('/')) return `the prefix ${JSON.stringify(prefix)} must end with "/" (a folder of the bucket: move:${prefix}/)`;
  return null;
}

/** AFTER_LOAD: `keep`, `delete` or `move:PREFIX` (PREFIX as movePrefixProblem allows). */
const AfterLoad = new t.Type<AfterLoadSetting, AfterLoadSetting, unknown>(
  'AfterLoad',
  (u): u is AfterLoadSetting => typeof u === 'object' && u !== null && 'kind' in u,
  (u, c) => {
    if (typeof u === 'object' && u !== null && 'kind' in u) return t.success(u as AfterLoadSetting);
    if (typeof u !== 'string') return t.failure(u, c, 'expected keep, delete or move:PREFIX');
    const v = u.trim();
    if (v.toLowerCase() === 'keep') return t.success({ kind: 'keep' });
    if (v.toLowerCase() === 'delete') return t.success({ kind: 'delete' });
    if (/^move:/i.test(v)) {
      const prefix = v.slice('move:'.length).trim();
      const problem = movePrefixProblem(prefix);
      return problem === null ? t.success({ kind: 'move', prefix }) : t.failure(u, c, problem);
    }
    return t.failure(u, c, 'expected keep, delete or move:PREFIX');
  },
  t.identity,
);

/** AFTER_LOAD as written: `keep`, `delete`, `move:PREFIX`; what the registry records of a pending or done action. */
export function afterLoadText(a: AfterLoadSetting): string {
  return a.kind === 'move' ? `move:${a.prefix}` : a.kind;
}

const LogLevel = oneOf('LOG_LEVEL', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/**
 * Every setting of a profile, with its codec. Values come from config.ini, the environment (same name) or
 * the command line; all arrive as text except CLI numbers, so every codec accepts both.
 */
export const settingsCodec = t.type({
  /** Where the bucket is: `http(s)://…` or a local directory (a path or `file://` URL). */
  BUCKET_URL: NonEmpty,
  /**
   * Key of the index object listing the data files, one key per line. An S3 bucket is listed with ListObjectsV2
   * instead, unless this is set (then its index object is read).
   */
  FILES_LIST_KEY: NonEmpty,
  /** S3: the server, for one other than AWS (MinIO, Ceph, R2: `https://host[:port]`); empty: AWS. */
  S3_ENDPOINT: t.string,
  /** S3: path-style URLs (`endpoint/bucket/key`): `auto` is true with S3_ENDPOINT, false on AWS. */
  S3_FORCE_PATH_STYLE: PathStyle,
  /** S3: the region requests are signed for; empty: AWS_REGION, else us-east-1. */
  S3_REGION: t.string,
  /** Only keys matching one of these globs are processed (comma-separated, picomatch); empty: every key. */
  INCLUDE: Globs,
  /** Keys matching one of these globs are left out, after INCLUDE. */
  EXCLUDE: Globs,
  /** An object written less than this many seconds ago is left for a later cycle (needs a listing: S3). */
  MIN_AGE_SECONDS: secondsAtLeast('MIN_AGE_SECONDS', 0),
  /** S3: `full` lists every key every cycle; `ordered` lists after the last key seen (keys written in lexical order). */
  LISTING: oneOf('LISTING', ['full', 'ordered']),
  /**
   * Files planned ahead of the loader: a cycle whose listing finds more to do starts loading while it goes on listing,
   * and lists no further while this many wait (a huge bucket's first load starts at once, in bounded memory).
   */
  PLAN_AHEAD_FILES: intIn('PLAN_AHEAD_FILES', 1, 10_000_000),
  /** LISTING=ordered: how many keys before the last one seen are listed again each cycle. */
  LOOKBACK_KEYS: intIn('LOOKBACK_KEYS', 0, 1_000_000),
  /** LISTING=ordered: every this many seconds a cycle lists the whole bucket, catching keys that came below the cursor; with NOTIFY_URL: how often the bucket is listed at all (at least every second), to find what notifications missed. */
  RECONCILE_SECONDS: secondsAtLeast('RECONCILE_SECONDS', 0),
  /** Directory of the record types' schema files (`*.json`, one type each); default: the bundled MacPaw types. */
  SCHEMAS: NonEmpty,
  /** HMAC-SHA256 key of personal data (`x-pii: "hash"`); a schema with such a property refuses to start without it. Secret. */
  PII_HASH_KEY: Secret,
  /** `sqlite://relative/path`, `sqlite:///absolute/path` (PostgreSQL and MySQL come with a later issue). */
  DATABASE_URL: NonEmpty,
  /** Registry file; default `registry/<profile>.json`. */
  REGISTRY_PATH: NonEmpty,
  /** Files fetched and validated at once. */
  CONCURRENCY: intIn('CONCURRENCY', 1, 256),
  /** Attempts per file within one cycle (network errors, 5xx, 429, truncated bodies). */
  MAX_ATTEMPTS: intIn('MAX_ATTEMPTS', 1, 100),
  /** Time allowed for one HTTP request, headers and body. */
  REQUEST_TIMEOUT_SECONDS: secondsAtLeast('REQUEST_TIMEOUT_SECONDS', 0.05),
  /** Pause between the end of one cycle and the start of the next (daemon mode). */
  POLL_INTERVAL_SECONDS: secondsAtLeast('POLL_INTERVAL_SECONDS', 0),
  /** Files larger than this are recorded failed instead of being read. */
  MAX_FILE_MB: intIn('MAX_FILE_MB', 1, 1_000_000),
  /** Format of every file: `auto` (by extension, else content), or `json` (JSON array), `ndjson` (JSON Lines), `csv`, `tsv`, `parquet`, or `zip` (archives, read as their members). */
  FORMAT: oneOf('FORMAT', FORMAT_SETTINGS),
  /** Per-glob FORMAT: `glob=format, …`, the first matching glob wins over FORMAT. */
  FORMAT_OVERRIDES: FormatOverrides,
  /** Record type of files without an envelope (CSV): `glob=type, …`, the first matching glob wins. */
  ROUTES: Routes,
  /** Field delimiter of CSV files (`,` default); TSV files use a tab. */
  CSV_DELIMITER: CsvDelimiter,
  /** Files larger than this (or of unknown length) are streamed and loaded in batches instead of read whole. */
  STREAM_ABOVE_MB: intIn('STREAM_ABOVE_MB', 1, 1_000_000),
  /** Disk for temporary copies of ZIP archives whose members are read; the least recently used are dropped past it. */
  ARCHIVE_CACHE_MB: intIn('ARCHIVE_CACHE_MB', 0, 1_000_000),
  /** Bucket event notifications (S3 event JSON) from this AMQP broker, `amqp://user:pass@host:5672/vhost`; empty: none. */
  NOTIFY_URL: NotifyUrl,
  /** The durable queue notifications are consumed from. */
  NOTIFY_QUEUE: NonEmpty,
  /** If set, an exchange the queue is bound to (declared as a durable topic exchange unless it exists). */
  NOTIFY_EXCHANGE: t.string,
  /** The binding's routing key (with NOTIFY_EXCHANGE). */
  NOTIFY_ROUTING_KEY: NonEmpty,
  /** How often a done file is asked again whether its ETag or size changed; 0 = every cycle. */
  RECHECK_DONE_SECONDS: secondsAtLeast('RECHECK_DONE_SECONDS', 0),
  /** First wait before a failed file is tried on a later cycle; doubles per failure up to an hour. */
  RETRY_FAILED_SECONDS: secondsAtLeast('RETRY_FAILED_SECONDS', 0),
  /** What is done with a file once its rows are committed: `keep` it, `delete` it, or `move:PREFIX` (to PREFIX + its key). */
  AFTER_LOAD: AfterLoad,
  /** Most files committed in one database transaction (one fsync per group, see README). */
  COMMIT_MAX_FILES: intIn('COMMIT_MAX_FILES', 1, 10_000),
  /** Threads that parse and validate whole files beside the main thread; 0: in the main thread; `auto`: cores − 1, at most 4. */
  DECODE_THREADS: Threads,
  LOG_LEVEL: LogLevel,
  /** `auto`: readable lines on a terminal, JSON lines otherwise. */
  LOG_FORMAT: LogFormat,
  /** Port of /healthz, /readyz, /metrics and the read API; `off` disables the server. */
  HTTP_PORT: HttpPort,
  /** Address the HTTP server binds; loopback unless you mean to expose it. */
  HTTP_HOST: NonEmpty,
  /** Bearer token that enables the dashboard's actions (reprocess, replay); empty: the dashboard is read-only. Secret. */
  DASHBOARD_TOKEN: Secret,
  /** `json` (a file; default with SQLite), `database` (a table written in the files' own transactions; default
   * with PostgreSQL/MySQL; needed to run several daemons on one bucket), or `auto`. */
  REGISTRY: oneOf('REGISTRY', ['auto', 'json', 'database']),
  /** Database registry: this daemon's name in claims (default: the host name; a pod name under Kubernetes). */
  WORKER_NAME: t.string,
  /** Database registry: how long a worker's claim on a file lasts without a heartbeat. */
  LEASE_SECONDS: secondsAtLeast('LEASE_SECONDS', 0.5),
  /** After SIGTERM/SIGINT, how long files in flight may take before they are abandoned. */
  SHUTDOWN_TIMEOUT_SECONDS: secondsAtLeast('SHUTDOWN_TIMEOUT_SECONDS', 0),
  /** At start-up, how long the schema migration waits for a lock another process holds before giving up. */
  DATABASE_LOCK_TIMEOUT_SECONDS: secondsAtLeast('DATABASE_LOCK_TIMEOUT_SECONDS', 0.1),
});

export type Settings = t.TypeOf<typeof settingsCodec>;
export type SettingKey = keyof Settings;
export const SETTING_KEYS = Object.keys(settingsCodec.props) as SettingKey[];
/** Settings whose value is never shown, not even in the error about a bad one. */
export const SECRET_SETTINGS: ReadonlySet<SettingKey> = new Set(['PII_HASH_KEY', 'DASHBOARD_TOKEN']);

/** Built-in defaults: the last word when neither flag, environment nor profile sets a key. */
export function defaultSettings(profile: string): Record<SettingKey, string> {
  return {
    BUCKET_URL: 'examples/sample-bucket',
    FILES_LIST_KEY: 'files_list.data',
    S3_ENDPOINT: '',
    S3_FORCE_PATH_STYLE: 'auto',
    S3_REGION: '',
    INCLUDE: '',
    EXCLUDE: '',
    MIN_AGE_SECONDS: '0',
    LISTING: 'full',
    LOOKBACK_KEYS: '1000',
    PLAN_AHEAD_FILES: '10000',
    RECONCILE_SECONDS: '3600',
    SCHEMAS: BUNDLED_SCHEMAS,
    PII_HASH_KEY: '',
    DATABASE_URL: 'sqlite://data/bucket-ingest.sqlite3',
    REGISTRY_PATH: `registry/${profile}.json`,
    CONCURRENCY: '16',
    MAX_ATTEMPTS: '5',
    REQUEST_TIMEOUT_SECONDS: '30',
    POLL_INTERVAL_SECONDS: '60',
    MAX_FILE_MB: '4096',
    STREAM_ABOVE_MB: '8',
    ARCHIVE_CACHE_MB: '1024',
    FORMAT: 'auto',
    FORMAT_OVERRIDES: '',
    ROUTES: '',
    CSV_DELIMITER: ',',
    NOTIFY_URL: '',
    NOTIFY_QUEUE: 'bucket-ingest',
    NOTIFY_EXCHANGE: '',
    NOTIFY_ROUTING_KEY: '#',
    RECHECK_DONE_SECONDS: '3600',
    RETRY_FAILED_SECONDS: '60',
    COMMIT_MAX_FILES: '1000',
    AFTER_LOAD: 'keep',
    DECODE_THREADS: 'auto',
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'auto',
    HTTP_PORT: 'off',
    HTTP_HOST: '127.0.0.1',
    DASHBOARD_TOKEN: '',
    SHUTDOWN_TIMEOUT_SECONDS: '30',
    DATABASE_LOCK_TIMEOUT_SECONDS: '60',
    REGISTRY: 'auto',
    LEASE_SECONDS: '60',
    WORKER_NAME: '',
  };
}
