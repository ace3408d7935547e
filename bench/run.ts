/**
 * `npm run bench`: a reproducible end-to-end benchmark of `bucket-ingest run --once`, next to a "limit"
 * baseline (bench/limit.mjs) that does the least work ending in the same rows. See bench/README.md.
 *
 *   npm run bench -- [--files 300] [--records 1000] [--concurrency 16] [--reps 3] [--seed 1]
 *                    [--database-url URL] [--registry json|database] [--skip-limit] [--one-file] [--again] [--out bench/results]
 *                    [--format json|ndjson|ndjson.gz|csv|parquet|ndjson.zip]
 *   npm run bench -- --notify [--uploads 1000] [--keys 100000] [--every-ms 20]   (see bench/notify.ts)
 *   npm run bench -- --big [--format F] [--big-mb 1024] …   (one large file per format: see bench/big.ts)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Knex } from 'knex';
import { openDatabase, parseDatabaseUrl } from '../src/load/database.js';
import { FILES_TABLE } from '../src/load/schema.js';
import { redactUrl } from '../src/redact.js';
import { runBig } from './big.js';
import { childEnv, detectRssMethod, GNU_TIME, runNode, stopCurrentChild } from './child.js';
import { fmt, fmtInt, say, table } from './text.js';
import { BENCH_FORMATS, CSV_ROUTES, INDEX_KEY, PARQUET_ROUTES, writeBucket, writeOneFileBucket, type BenchFormat, type BucketSummary } from './generate.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'bundle', 'cli.js');
const LIMIT = join(ROOT, 'bench', 'limit.mjs');
const GENERATOR = join(ROOT, 'bench', 'generate.ts');

// ---------------------------------------------------------------------------------------------------------
// Options

interface BenchOptions {
  files: number;
  records: number;
  concurrency: number;
  reps: number;
  seed: number;
  /** undefined: a fresh SQLite file per repetition. */
  databaseUrl: string | undefined;
  skipLimit: boolean;
  /** The same records in ONE file (the large-file memory case); implies skipLimit. */
  oneFile: boolean;
  /** After each daemon run, a second `run --once` over the same database and registry (the no-op cycle). */
  again: boolean;
  /** REGISTRY for the daemon (`json`, `database`); undefined: the daemon's default for the dialect. */
  registry: string | undefined;
  /** How the bucket's files are written; beside another format, the daemon also loads the JSON-array bucket. */
  format: BenchFormat;
  out: string;
}

const USAGE = `usage: npm run bench -- [--files N] [--records N] [--concurrency N] [--reps N] [--seed N]
                        [--database-url URL] [--registry json|database] [--skip-limit] [--one-file] [--again] [--out DIR]
                        [--format json|ndjson|ndjson.gz|csv|parquet|ndjson.zip]
       npm run bench -- --big [--format F] [--big-mb N] [--big-rows N] [--big-row-group N] [--cpu-prof DIR]`;

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      files: { type: 'string', default: '300' },
      records: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '16' },
      reps: { type: 'string', default: '3' },
      seed: { type: 'string', default: '1' },
      'database-url': { type: 'string' },
      'skip-limit': { type: 'boolean', default: false },
      'one-file': { type: 'boolean', default: false },
      again: { type: 'boolean', default: false },
      registry: { type: 'string' },
      format: { type: 'string', default: 'json' },
      out: { type: 'string', default: join('bench', 'results') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (name: string, raw: string, min: number): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${raw}\n${USAGE}`);
    return n;
  };
  if (!(BENCH_FORMATS as readonly string[]).includes(values.format)) throw new Error(`--format must be one of ${BENCH_FORMATS.join(', ')}, got ${values.format}\n${USAGE}`);
  if (values.format !== 'json' && values['one-file']) throw new Error(`--one-file writes one JSON array: not with --format ${values.format}\n${USAGE}`);
  return {
    format: values.format as BenchFormat,
    files: int('files', values.files, 1),
    records: int('records', values.records, 0),
    concurrency: int('concurrency', values.concurrency, 1),
    reps: int('reps', values.reps, 1),
    seed: int('seed', values.seed, 0),
    databaseUrl: values['database-url'],
    // The limit reads a file into one string for JSON.parse, and V8 strings end at 512 MB.
    skipLimit: values['skip-limit'] || values['one-file'],
    oneFile: values['one-file'],
    again: values.again,
    registry: values.registry,
    out: resolve(values.out),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Bucket: generated once, cached under the OS temp dir

interface Bucket {
  dir: string;
  summary: Omit<BucketSummary, 'keys'> & { files: number };
  cached: boolean;
  generateSeconds: number;
}

async function ensureBucket(opts: BenchOptions, format: BenchFormat = opts.format): Promise<Bucket> {
  // The generator's own text is part of the cache key, so editing it regenerates the bucket.
  const generatorHash = createHash('sha1').update(readFileSync(GENERATOR)).digest('hex').slice(0, 10);
  const suffix = `${opts.oneFile ? '-one' : ''}${format === 'json' ? '' : `-${format}`}`;
  const dir = join(os.tmpdir(), 'bucket-ingest-bench', `f${opts.files}-r${opts.records}-s${opts.seed}${suffix}-g${generatorHash}`);
  const summaryPath = join(dir, '.bench-summary.json');
  if (existsSync(summaryPath)) {
    const summary = JSON.parse(await readFile(summaryPath, 'utf8')) as Bucket['summary'];
    return { dir, summary, cached: true, generateSeconds: 0 };
  }
  const started = performance.now();
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  const options = { files: opts.files, recordsPerFile: opts.records, seed: opts.seed };
  const { keys, ...counts } = opts.oneFile ? await writeOneFileBucket(tmp, options) : await writeBucket(tmp, options, format);
  const summary = { files: keys.length, ...counts };
  await writeFile(join(tmp, '.bench-summary.json'), JSON.stringify(summary));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return { dir, summary, cached: false, generateSeconds: (performance.now() - started) / 1000 };
}

// ---------------------------------------------------------------------------------------------------------
// Static HTTP server over the bucket directory

interface StaticServer {
  url: string;
  /** GET/HEAD requests answered so far. */
  requests(): number;
  close(): Promise<void>;
}

/**
 * Serves the files of `dir` (names not starting with `.`) at `/<name>`, with Content-Length, a content ETag
 * and If-None-Match → 304; keep-alive. Every file is read once at start, which warms the page cache so the
 * first repetition does not pay for cold disk reads.
 */
async function startStaticServer(dir: string): Promise<StaticServer> {
  // Bodies stay in memory up to 2 GB in all, so serving costs the benchmark's process (which shares the machine
  // with the run it measures) as little CPU as possible; beyond that they are read from disk per request.
  const files = new Map<string, { path: string; size: number; etag: string; body: Buffer | null }>();
  let held = 0;
  for (const name of await readdir(dir)) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    const body = await readFile(path);
    held += body.length;
    files.set(name, { path, size: body.length, etag: `"${createHash('md5').update(body).digest('hex')}"`, body: held <= 2 ** 31 ? body : null });
  }
  let count = 0;
  const server: Server = createServer((req, res) => {
    count++;
    let key = '';
    try {
      key = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1));
    } catch {
      key = '';
    }
    const file = files.get(key);
    if (file === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(file === undefined ? 404 : 405, { 'Content-Length': 0 }).end();
      return;
    }
    const headers = { ETag: file.etag, 'Content-Type': 'application/octet-stream', 'Content-Length': file.size };
    if (req.headers['if-none-match']?.split(',').some((t) => t.trim().replace(/^W\//, '') === file.etag)) {
      res.writeHead(304, { ETag: file.etag }).end();
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, headers).end();
      return;
    }
    if (file.body !== null) {
      res.writeHead(200, headers).end(file.body);
      return;
    }
    readFile(file.path).then(
      (body) => res.writeHead(200, headers).end(body),
      (err: Error) => res.writeHead(500, { 'Content-Length': Buffer.byteLength(err.message) }).end(err.message),
    );
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => count,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Row counts

interface RowCounts {
  songs: number | null;
  movies: number | null;
  apps: number | null;
  rejected_records: number | null;
}

/** The daemon's own reading of DATABASE_URL (schema parameter, dialects), so the counts look where it wrote. */
function knexFor(databaseUrl: string): Promise<Knex> {
  return openDatabase(parseDatabaseUrl(databaseUrl, ROOT), { poolSize: 1 });
}

/**
 * A database of its own for one run: a fresh SQLite file in the run's scratch directory; on a server (the
 * `--database-url` given) a fresh PostgreSQL schema (`?schema=`) or MySQL database beside the one named, dropped
 * after a run whose checks passed. Every repetition then loads everything into empty tables.
 */
async function freshDatabase(userDb: string | undefined, scratch: string, name: string): Promise<{ url: string; drop(): Promise<void> }> {
  const dialect = userDb === undefined ? 'sqlite' : parseDatabaseUrl(userDb, ROOT).dialect;
  if (userDb === undefined || dialect === 'sqlite') return { url: `sqlite://${join(scratch, 'bench.sqlite3')}`, drop: async () => undefined };
  const url = new URL(userDb);
  if (dialect === 'postgres') {
    url.searchParams.set('schema', name);
    return {
      url: url.toString(),
      drop: () => onServer(userDb, 'DROP SCHEMA IF EXISTS ?? CASCADE', name),
    };
  }
  await onServer(userDb, 'CREATE DATABASE ??', name);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => onServer(userDb, 'DROP DATABASE IF EXISTS ??', name) };
}

async function onServer(databaseUrl: string, sql: string, name: string): Promise<void> {
  const db = await knexFor(databaseUrl);
  try {
    await db.raw(sql, [name]);
  } finally {
    await db.destroy();
  }
}

/**
 * A fingerprint of everything the registry holds: the JSON registry's snapshot and journal, and the database
 * registry's `ingest_files` rows (the shared listing, `ingest_listing`, is a cache every cycle refreshes).
 */
async function registryFingerprint(registryPath: string, databaseUrl: string): Promise<string> {
  const hash = createHash('sha1');
  for (const path of [registryPath, `${registryPath}.journal`]) {
    hash.update(path).update(existsSync(path) ? await readFile(path) : 'absent');
  }
  const db = await knexFor(databaseUrl);
  try {
    if (await db.schema.hasTable(FILES_TABLE)) hash.update(JSON.stringify(await db(FILES_TABLE).orderBy('key')));
  } finally {
    await db.destroy();
  }
  return hash.digest('hex');
}

/** The CycleFinished line among a run's JSON log lines, or null. */
function cycleFinished(stdout: string): { seconds: number; planned: number } | null {
  for (const text of stdout.split('\n').reverse()) {
    if (!text.includes('"CycleFinished"')) continue;
    try {
      const line = JSON.parse(text) as { event?: unknown; seconds?: unknown; planned?: unknown };
      if (line.event === 'CycleFinished' && typeof line.seconds === 'number' && typeof line.planned === 'number') return { seconds: line.seconds, planned: line.planned };
    } catch {
      // a line cut by the output tail: keep looking
    }
  }
  return null;
}

async function countRows(databaseUrl: string): Promise<RowCounts> {
  const db = await knexFor(databaseUrl);
  try {
    const counts: RowCounts = { songs: null, movies: null, apps: null, rejected_records: null };
    for (const table of Object.keys(counts) as Array<keyof RowCounts>) {
      if (!(await db.schema.hasTable(table))) continue;
      const row = (await db(table).count({ n: '*' }).first()) as { n: number | string } | undefined;
      counts[table] = row === undefined ? null : Number(row.n);
    }
    return counts;
  } finally {
    await db.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Repetitions

/** `json`: the daemon on the JSON-array bucket of the same records, beside a `--format` other than json. */
type Runner = 'daemon' | 'limit' | 'json';

interface Repetition {
  runner: Runner;
  rep: number;
  wallSeconds: number;
  peakRssMB: number | null;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  recordsPerSecond: number;
  validRowsPerSecond: number;
  mbPerSecond: number;
  httpRequests: number;
  rows: RowCounts | null;
  /** With --again: the second cycle, which should find nothing to do. */
  again: AgainRun | null;
  ok: boolean;
  warnings: string[];
}

interface AgainRun {
  /** The whole process: start-up, opening the database and registry, the cycle, exit. */
  wallSeconds: number;
  /** The cycle alone, as its CycleFinished line gives it (registry refresh, listing, planning, loading nothing). */
  cycleSeconds: number | null;
  /** Files the cycle planned to process (0 expected). */
  planned: number | null;
  exitCode: number | null;
  httpRequests: number;
  /** Whether the registry (the JSON file and its journal, or the `ingest_files` table) is byte for byte the same. */
  registryUnchanged: boolean | null;
}

interface Metrics {
  wallSeconds: number;
  recordsPerSecond: number;
  validRowsPerSecond: number;
  mbPerSecond: number;
  peakRssMB: number | null;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function medians(reps: Repetition[]): Metrics | null {
  const good = reps.filter((r) => r.exitCode === 0);
  if (good.length === 0) return null;
  const rss = good.map((r) => r.peakRssMB).filter((v): v is number => v !== null);
  return {
    wallSeconds: median(good.map((r) => r.wallSeconds)),
    recordsPerSecond: median(good.map((r) => r.recordsPerSecond)),
    validRowsPerSecond: median(good.map((r) => r.validRowsPerSecond)),
    mbPerSecond: median(good.map((r) => r.mbPerSecond)),
    peakRssMB: rss.length > 0 ? median(rss) : null,
  };
}

/** The daemon's wall time over the limit's, for each repetition in which both exited 0. */
function pairedRatios(daemon: Repetition[], limit: Repetition[]): number[] {
  return daemon.flatMap((d) => {
    const l = limit.find((x) => x.rep === d.rep);
    return d.exitCode === 0 && l?.exitCode === 0 ? [d.wallSeconds / l.wallSeconds] : [];
  });
}

function lastLines(text: string, n = 5): string {
  return text.trim().split('\n').slice(-n).map((l) => `      ${l}`).join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// Output


function gitInfo(): { commit: string | null; dirty: boolean | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return { commit, dirty };
  } catch {
    return { commit: null, dirty: null };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run \`npm run build\` first (npm run bench does)`);
  if (process.argv.includes('--big')) return runBig(process.argv.slice(2));
  const opts = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  const rssMethod = detectRssMethod();
  const warnings: string[] = [];
  const warn = (msg: string): void => {
    warnings.push(msg);
    say(`  WARNING: ${msg}`);
  };

  const bucket = await ensureBucket(opts);
  const s = bucket.summary;
  const mb = s.bytes / 1e6;
  const shape = opts.oneFile ? `1 file holding ${opts.files} × ${opts.records} records` : opts.format === 'csv' || opts.format === 'parquet' ? `${s.files} ${opts.format === 'csv' ? 'CSV' : 'Parquet'} files (${opts.files} generated files × ${opts.records} records, a file per type)` : `${s.files} files × ${opts.records} records`;
  say(`bucket: ${shape} (seed ${opts.seed}), ${fmtInt(s.records)} records, ${fmtInt(s.valid)} valid, ${fmtInt(s.invalid)} invalid, ${fmtInt(s.skipped)} skipped, ${mb.toFixed(1)} MB`);
  say(`        ${bucket.cached ? 'cached' : `generated in ${bucket.generateSeconds.toFixed(1)} s`}: ${bucket.dir}`);
  const server = await startStaticServer(bucket.dir);
  say(`server: ${server.url} (keep-alive, Content-Length, ETag)`);
  // The limit reads JSON arrays only: beside another format, it and the `json` runner read the same records so.
  const jsonBucket = opts.format === 'json' ? bucket : await ensureBucket(opts, 'json');
  const jsonServer = opts.format === 'json' ? server : await startStaticServer(jsonBucket.dir);
  if (opts.format !== 'json') {
    say(`format: ${opts.format}, ${mb.toFixed(1)} MB; the limit and the daemon's \`json\` runs read the same records as JSON arrays (${(jsonBucket.summary.bytes / 1e6).toFixed(1)} MB) from ${jsonServer.url}`);
  }
  say(`peak RSS: ${rssMethod === 'gnu-time' ? `${GNU_TIME} -f %M` : rssMethod === 'proc-vmhwm' ? '/proc/<pid>/status VmHWM every 50 ms' : 'not measured'}`);
  const userDb = opts.databaseUrl;
  const userDbIsSqlite = userDb === undefined || /^sqlite3?:\/\//i.test(userDb);
  // The limit speaks SQLite and PostgreSQL; against MySQL it still writes a fresh SQLite file.
  const limitDb = userDb !== undefined && /^postgres(ql)?:\/\//i.test(userDb) ? userDb : undefined;
  if (userDb !== undefined && !userDbIsSqlite) {
    say(`database: ${redactUrl(userDb)} (given; a fresh ${limitDb ? 'schema' : 'database'} in it per run${opts.skipLimit || limitDb ? '' : ', the limit uses a fresh SQLite file'})`);
  } else if (userDb !== undefined) {
    say(`database: ${redactUrl(userDb)} (given; reused by every repetition${opts.skipLimit ? '' : ', the limit uses a fresh SQLite file'})`);
  } else {
    say('database: a fresh SQLite file per repetition');
  }
  say();

  const runs: Record<Runner, Repetition[]> = { daemon: [], limit: [], json: [] };
  let daemonSkipped: string | null = null;
  const onSignal = (): void => {
    stopCurrentChild();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const measure = async (runner: Runner, rep: number): Promise<Repetition | null> => {
    const scratch = await mkdtemp(join(os.tmpdir(), `bucket-ingest-bench-${runner}-`));
    const given = runner === 'limit' ? limitDb : userDb;
    const fresh = userDb !== undefined && userDbIsSqlite && runner !== 'limit'
      ? { url: userDb, drop: async () => undefined }
      : await freshDatabase(given, scratch, `bench_${process.pid}_${runner}_${rep}`);
    const databaseUrl = fresh.url;
    const served = runner === 'daemon' ? server : jsonServer;
    const runMB = (runner === 'daemon' ? s.bytes : jsonBucket.summary.bytes) / 1e6;
    const env = childEnv({
      BUCKET_URL: served.url,
      DATABASE_URL: databaseUrl,
      REGISTRY_PATH: join(scratch, 'registry.json'),
      CONCURRENCY: String(opts.concurrency),
      LOG_LEVEL: 'warn',
      ...(runner === 'daemon' && opts.format === 'csv' ? { ROUTES: CSV_ROUTES } : {}),
      ...(runner === 'daemon' && opts.format === 'parquet' ? { ROUTES: PARQUET_ROUTES } : {}),
      ...(opts.registry === undefined ? {} : { REGISTRY: opts.registry }),
    });
    const args = runner === 'limit' ? [LIMIT] : [CLI, 'run', '--once'];
    const requestsBefore = served.requests();
    const child = await runNode(args, env, rssMethod, scratch);
    const result: Repetition = {
      runner, rep,
      wallSeconds: child.wallSeconds,
      peakRssMB: child.peakRssMB,
      exitCode: child.exitCode,
      signal: child.signal,
      recordsPerSecond: (runner === 'daemon' ? s : jsonBucket.summary).records / child.wallSeconds,
      validRowsPerSecond: (runner === 'daemon' ? s : jsonBucket.summary).valid / child.wallSeconds,
      mbPerSecond: runMB / child.wallSeconds,
      httpRequests: served.requests() - requestsBefore,
      rows: null,
      again: null,
      ok: false,
      warnings: [],
    };
    const repWarn = (msg: string): void => {
      result.warnings.push(msg);
      warn(`${runner} rep ${rep}: ${msg}`);
    };
    if (child.exitCode !== 0) {
      const first = child.stderr.trim().split('\n')[0] ?? '';
      if (runner !== 'limit' && !userDbIsSqlite && child.exitCode === 2) {
        daemonSkipped = `SKIP daemon: it did not start against ${redactUrl(databaseUrl)} (exit 2: ${first})`;
        say(daemonSkipped);
        await rm(scratch, { recursive: true, force: true });
        await fresh.drop().catch(() => undefined);
        return null;
      }
      repWarn(`exited ${child.exitCode ?? child.signal}; scratch kept in ${scratch}\n${lastLines(child.stderr || child.stdout)}`);
      return result;
    }
    try {
      result.rows = await countRows(databaseUrl);
    } catch (err) {
      repWarn(`cannot count rows: ${(err as Error).message}`);
    }
    const r = result.rows;
    if (r !== null) {
      const loaded = (r.songs ?? 0) + (r.movies ?? 0) + (r.apps ?? 0);
      if (loaded === 0 && s.valid > 0) repWarn('songs + movies + apps is 0');
      const invalid = runner === 'daemon' ? s.invalid : jsonBucket.summary.invalid; // CSV and Parquet hold fewer of them (csvFiles, parquetFiles)
      if (runner !== 'limit' && r.rejected_records !== invalid) repWarn(`rejected_records is ${r.rejected_records}, the generator made ${invalid} invalid records`);
      result.ok = result.warnings.length === 0;
    }
    const files = (runner === 'daemon' ? s : jsonBucket.summary).files;
    if (result.httpRequests < files + 1) repWarn(`only ${result.httpRequests} HTTP requests for ${files} files + the index`);
    if (runner === 'daemon' && opts.again) {
      const registryPath = join(scratch, 'registry.json');
      const before = await registryFingerprint(registryPath, databaseUrl).catch((err: Error) => repWarn(`cannot read the registry: ${err.message}`));
      const requests = server.requests();
      // JSON lines on stdout, to read the cycle's own summary.
      const second = await runNode(args, { ...env, LOG_LEVEL: 'info', LOG_FORMAT: 'json' }, rssMethod, scratch);
      const finished = cycleFinished(second.stdout);
      const after = await registryFingerprint(registryPath, databaseUrl).catch((err: Error) => repWarn(`cannot read the registry: ${err.message}`));
      result.again = {
        wallSeconds: second.wallSeconds,
        cycleSeconds: finished?.seconds ?? null,
        planned: finished?.planned ?? null,
        exitCode: second.exitCode,
        httpRequests: server.requests() - requests,
        registryUnchanged: typeof before === 'string' && typeof after === 'string' ? before === after : null,
      };
      if (second.exitCode !== 0) repWarn(`the second cycle exited ${second.exitCode ?? second.signal}\n${lastLines(second.stderr || second.stdout)}`);
      if (result.again.registryUnchanged === false) repWarn('the second cycle, with nothing to do, changed the registry');
      if (finished === null) repWarn('the second cycle logged no CycleFinished line');
      else if (finished.planned !== 0) repWarn(`the second cycle planned ${finished.planned} file(s), expected none`);
      result.ok = result.ok && result.warnings.length === 0;
    }
    if (result.ok) {
      await rm(scratch, { recursive: true, force: true });
      await fresh.drop().catch((err: Error) => repWarn(`cannot drop the run's database: ${err.message}`));
    }
    return result;
  };

  const line = (r: Repetition): string =>
    `${(r.runner === 'daemon' && opts.format !== 'json' ? opts.format : r.runner).padEnd(9)} rep ${r.rep}: ${r.wallSeconds.toFixed(2)} s, ${fmtInt(r.recordsPerSecond)} records/s, ${fmtInt(r.validRowsPerSecond)} valid rows/s, ` +
    `${r.mbPerSecond.toFixed(2)} MB/s, peak RSS ${fmt(r.peakRssMB, 0)} MB${r.rows ? `, rows ${r.rows.songs}/${r.rows.movies}/${r.rows.apps} songs/movies/apps, ${r.rows.rejected_records ?? '-'} rejected` : ''}` +
    (r.again ? `\n       again: ${r.again.wallSeconds.toFixed(2)} s in all, the cycle ${fmt(r.again.cycleSeconds, 2)} s, ${r.again.httpRequests} HTTP request(s), registry ${r.again.registryUnchanged === null ? 'not read' : r.again.registryUnchanged ? 'unchanged' : 'CHANGED'}` : '');

  // Daemon and limit alternate, so slow drift of the machine (thermal, other load) hits both alike.
  for (let rep = 1; rep <= opts.reps; rep++) {
    if (daemonSkipped === null) {
      const d = await measure('daemon', rep);
      if (d) {
        runs.daemon.push(d);
        say(line(d));
      }
    }
    if (daemonSkipped === null && opts.format !== 'json') {
      const j = await measure('json', rep);
      if (j) {
        runs.json.push(j);
        say(line(j));
      }
    }
    if (!opts.skipLimit) {
      const l = await measure('limit', rep);
      if (l) {
        runs.limit.push(l);
        say(line(l));
      }
      // Same bucket, same validation rules, same keys: both must end with the same rows per table (not CSV: it holds
      // some records the JSON does not, a year "1999" being the text 1999; see csvFiles).
      const d = opts.format === 'csv' || opts.format === 'parquet' ? undefined : runs.daemon.find((x) => x.rep === rep);
      if (d?.rows && l?.rows && (userDb === undefined || limitDb !== undefined)) {
        for (const t of ['songs', 'movies', 'apps'] as const) {
          if (d.rows[t] !== l.rows[t]) warn(`rep ${rep}: ${t}: daemon has ${d.rows[t]} rows, limit ${l.rows[t]}`);
        }
      }
    }
  }
  await server.close();
  if (jsonServer !== server) await jsonServer.close();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  const med = { daemon: medians(runs.daemon), limit: medians(runs.limit), json: medians(runs.json) };
  const ratio = med.daemon && med.limit ? med.daemon.wallSeconds / med.limit.wallSeconds : null;
  // Each limit run follows its daemon run within seconds, so a pair shares the machine's mood of the moment;
  // the spread of these ratios shows how far one figure can be trusted on a noisy machine.
  const paired = pairedRatios(runs.daemon, runs.limit);

  say();
  const header = ['run', 'rep', 'wall s', 'records/s', 'valid rows/s', 'MB/s', 'peak RSS MB', 'exit'];
  const rows: string[][] = [header];
  const label = (runner: Runner): string => (runner === 'daemon' && opts.format !== 'json' ? `daemon ${opts.format}` : runner === 'json' ? 'daemon json' : runner);
  for (const runner of ['daemon', 'json', 'limit'] as const) {
    for (const r of runs[runner]) {
      rows.push([label(runner), String(r.rep), r.wallSeconds.toFixed(2), fmtInt(r.recordsPerSecond), fmtInt(r.validRowsPerSecond), r.mbPerSecond.toFixed(2), fmt(r.peakRssMB, 0), String(r.exitCode ?? r.signal)]);
    }
    const m = med[runner];
    if (m) rows.push([label(runner), 'median', m.wallSeconds.toFixed(2), fmtInt(m.recordsPerSecond), fmtInt(m.validRowsPerSecond), m.mbPerSecond.toFixed(2), fmt(m.peakRssMB, 0), '']);
  }
  say(table(rows));
  say();
  if (daemonSkipped !== null) say(daemonSkipped);
  if (ratio !== null) {
    say(`daemon / limit (median wall time): ${ratio.toFixed(2)}×${userDbIsSqlite || limitDb ? '' : ' (the limit ran on SQLite, the daemon did not)'}`);
    if (paired.length > 1) {
      say(`daemon / limit, rep by rep: median ${median(paired).toFixed(2)}× (${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)}×)`);
    }
  } else if (opts.skipLimit) {
    say(`limit baseline skipped (${opts.oneFile ? '--one-file: the limit parses a file as one string, and V8 strings end at 512 MB' : '--skip-limit'})`);
  }
  const formatRatio = med.daemon && med.json ? med.daemon.wallSeconds / med.json.wallSeconds : null;
  const formatPaired = pairedRatios(runs.daemon, runs.json);
  const jsonRatio = med.json && med.limit ? med.json.wallSeconds / med.limit.wallSeconds : null;
  if (formatRatio !== null) {
    say(`daemon ${opts.format} / daemon json (median wall time): ${formatRatio.toFixed(2)}×${formatPaired.length > 1 ? `; rep by rep ${Math.min(...formatPaired).toFixed(2)}–${Math.max(...formatPaired).toFixed(2)}×` : ''}`);
    if (jsonRatio !== null) say(`daemon json / limit (median wall time): ${jsonRatio.toFixed(2)}×`);
  }
  const againSeconds = runs.daemon.flatMap((r) => (r.again?.exitCode === 0 ? [r.again.wallSeconds] : []));
  const againCycles = runs.daemon.flatMap((r) => (r.again?.exitCode === 0 && r.again.cycleSeconds !== null ? [r.again.cycleSeconds] : []));
  if (againSeconds.length > 0) {
    const unchanged = runs.daemon.filter((r) => r.again?.registryUnchanged === true).length;
    say(`second run (nothing new; ${s.files} keys done): median ${median(againSeconds).toFixed(2)} s in all, ` +
      `the cycle itself ${againCycles.length > 0 ? `${median(againCycles).toFixed(2)} s` : 'not logged'}; registry unchanged in ${unchanged} of ${runs.daemon.filter((r) => r.again).length}`);
  }
  if (warnings.length > 0) say(`${warnings.length} warning(s), see above`);

  const cpus = os.cpus();
  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: {
      cpu: cpus[0]?.model ?? null,
      cores: cpus.length,
      totalMemMB: Math.round(os.totalmem() / 2 ** 20),
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    },
    git: gitInfo(),
    options: { ...opts, databaseUrl: opts.databaseUrl === undefined ? null : redactUrl(opts.databaseUrl), out: opts.out },
    bucket: { dir: bucket.dir, cached: bucket.cached, ...s, indexKey: INDEX_KEY },
    peakRssMethod: rssMethod,
    daemonSkipped,
    repetitions: [...runs.daemon, ...runs.json, ...runs.limit],
    medians: med,
    daemonOverLimit: ratio,
    daemonOverLimitByRep: paired,
    daemonOverJson: formatRatio,
    daemonOverJsonByRep: formatPaired,
    jsonOverLimit: jsonRatio,
    secondRunMedianSeconds: againSeconds.length > 0 ? median(againSeconds) : null,
    secondCycleMedianSeconds: againCycles.length > 0 ? median(againCycles) : null,
    warnings,
  };
  await mkdir(opts.out, { recursive: true });
  const file = join(opts.out, `${startedAt.toISOString().replace(/:/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  say(`saved ${file}`);
}

(process.argv.includes('--notify') ? import('./notify.js').then((m) => m.main(process.argv.slice(2).filter((a) => a !== '--notify'))) : main()).catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
