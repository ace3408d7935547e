/**
 * Huge S3 buckets: a bucket of N (default 1,000,000) done keys on a synthetic ListObjectsV2 endpoint, the daemon with
 * the database registry (the registry table in an SQLite file). Reports the first cycle of a daemon (a full listing:
 * what every RECONCILE_SECONDS costs with LISTING=ordered, and every cycle with LISTING=full), the ordered cycles after
 * it with nothing new, their ListObjectsV2 requests, and the daemon's peak RSS (VmHWM).
 *
 *   npm run build && node --import tsx bench/s3-listing.ts [--keys 1000000] [--listing ordered|full] [--registry database|json]
 *
 * With `--new [--plan-ahead N]`: no registry filled, so the first cycle loads every key; reports when the first file
 * was committed and when the listing was read (PLAN_AHEAD_FILES, default 10,000, starts loading before that);
 * `--until-first` stops the daemon at its first committed file, and reports the peak RSS until then.
 *
 * The endpoint is a `node:http` server in this process answering ListObjectsV2 (pages of 1,000, continuation tokens,
 * start-after) and GetObject (`[]`, an empty JSON array) for keys `k/0000000.data`…; it checks no signature. The
 * registry is filled by a first run on one key, then by SQL: loading a million files is not what is measured here.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? (args[i + 1] as string) : fallback;
};
const KEYS = Number(opt('keys', '1000000'));
const LISTING = opt('listing', 'ordered');
const REGISTRY = opt('registry', 'database');
const CYCLES = Number(opt('cycles', '4'));
const CLI = resolve('dist/bundle/cli.js');
/** --new: no registry filled; the first cycle loads every key (what PLAN_AHEAD_FILES is for). */
const NEW = args.includes('--new');
const PLAN_AHEAD = opt('plan-ahead', '10000');
/** --until-first (with --new): stop the daemon once its first file is committed (a first load of a million keys). */
const UNTIL_FIRST = args.includes('--until-first');
let firstDoneAt: number | null = null;
let listingReadAt: number | null = null;

const keyOf = (i: number): string => `k/${String(i).padStart(7, '0')}.data`;
const indexOf = (key: string): number => Number(/^k\/(\d{7})\.data$/.exec(key)?.[1] ?? NaN);
const LAST_MODIFIED = '2026-01-01T00:00:00.000Z';
let served = KEYS;
const requests = { list: 0, get: 0 };

const xmlPage = (from: number, prefix: string): string => {
  const end = Math.min(served, from + 1000);
  const parts = ['<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bench</Name>', `<Prefix>${prefix}</Prefix><KeyCount>${end - from}</KeyCount><MaxKeys>1000</MaxKeys>`];
  parts.push(`<IsTruncated>${end < served}</IsTruncated>`);
  if (end < served) parts.push(`<NextContinuationToken>${Buffer.from(String(end)).toString('base64')}</NextContinuationToken>`);
  for (let i = from; i < end; i++) {
    parts.push(`<Contents><Key>${encodeURIComponent(keyOf(i))}</Key><LastModified>${LAST_MODIFIED}</LastModified><ETag>&quot;e${i}&quot;</ETag><Size>2</Size><StorageClass>STANDARD</StorageClass></Contents>`);
  }
  parts.push('<EncodingType>url</EncodingType></ListBucketResult>');
  return parts.join('');
};

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.searchParams.get('list-type') === '2') {
    requests.list++;
    const token = url.searchParams.get('continuation-token');
    const after = url.searchParams.get('start-after');
    let from = 0;
    if (token) from = Number(Buffer.from(token, 'base64').toString());
    else if (after) from = Math.max(0, Math.floor(indexOf(after)) + 1);
    res.writeHead(200, { 'content-type': 'application/xml' }).end(xmlPage(from, url.searchParams.get('prefix') ?? ''));
    return;
  }
  requests.get++;
  const key = decodeURIComponent(url.pathname.split('/').slice(2).join('/'));
  const i = indexOf(key);
  if (!Number.isFinite(i) || i >= served) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { etag: `"e${i}"`, 'content-length': '2', 'last-modified': new Date(LAST_MODIFIED).toUTCString() }).end('[]');
});
await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const dir = mkdtempSync(join(tmpdir(), 'bucket-ingest-s3-bench-'));
const env = {
  ...process.env, BUCKET_URL: 's3://bench', S3_ENDPOINT: endpoint, AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench',
  DATABASE_URL: 'sqlite://data/b.sqlite3', REGISTRY, REGISTRY_PATH: 'registry/b.json', LOG_FORMAT: 'json', LISTING,
  POLL_INTERVAL_SECONDS: '0.5', RECONCILE_SECONDS: '3600', LOOKBACK_KEYS: '1000', PLAN_AHEAD_FILES: PLAN_AHEAD,
  ...(NEW ? { LOG_LEVEL: 'debug' } : {}),
};

try {
  // 1. One key, loaded for real: the database, its identity, and a registry entry to copy.
  served = 1;
  // Not execFileSync: the endpoint answers from this process's event loop.
  await promisify(execFile)(process.execPath, [CLI, 'run', '--once'], { cwd: dir, env });
  served = KEYS;
  const t0 = performance.now();
  if (NEW) {
    process.stdout.write(`${KEYS.toLocaleString('en')} new keys: the first cycle loads them all (each GET answers an empty JSON array)\n`);
  } else {
    fill(dir);
    process.stdout.write(`registry filled with ${KEYS.toLocaleString('en')} done keys (${REGISTRY}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }

  // 2. A daemon: the first cycle lists everything, the next ones (ordered) only after the cursor.
  const cycles: Array<{ seconds: number; listed: number; planned: number; list: number; get: number }> = [];
  let seen = { list: requests.list, get: requests.get };
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'run'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  // Peak RSS (VmHWM) of the daemon, read from /proc before it is stopped.
  let peakKb = NaN;
  const readPeak = (): void => {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    if (m) peakKb = Number(m[1]);
  };
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let buffer = '';
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (process.env.BENCH_DEBUG) process.stderr.write(`${line.slice(0, 300)}\n`);
      // --new: when the first file was committed, and when the listing was read, from the daemon's start.
      if (firstDoneAt === null && line.includes('"FileDone"')) {
        firstDoneAt = (performance.now() - started) / 1000;
        if (UNTIL_FIRST) {
          readPeak();
          child.kill('SIGTERM');
        }
      }
      if (listingReadAt === null && (line.includes('"ListingFinished"') || (line.includes('"CycleStarted"') && !line.includes('"continuing"')))) {
        listingReadAt = (performance.now() - started) / 1000;
      }
      if (!line.includes('"CycleFinished"')) continue;
      const e = JSON.parse(line) as { seconds: number; listed: number; planned: number };
      cycles.push({ seconds: e.seconds, listed: e.listed, planned: e.planned, list: requests.list - seen.list, get: requests.get - seen.get });
      seen = { list: requests.list, get: requests.get };
      if (cycles.length >= CYCLES) {
        readPeak();
        child.kill('SIGTERM');
      }
    }
  });
  const code = await new Promise<number | null>((ok) => child.on('close', ok));
  const rss = peakKb / 1024;
  const report = {
    ...(NEW ? { firstFileDoneSeconds: firstDoneAt, listingReadSeconds: listingReadAt, planAheadFiles: PLAN_AHEAD } : {}),
    keys: KEYS, listing: LISTING, registry: REGISTRY, exit: code, wallSeconds: (performance.now() - started) / 1000, peakRssMb: Math.round(rss), cycles,
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  if (code !== 0) process.stdout.write(stderr.slice(-2000));
  writeFileSync(join('bench', 'results', `s3-listing-${LISTING}-${REGISTRY}-${KEYS}${NEW ? `-new-ahead${PLAN_AHEAD}` : ''}.json`), `${JSON.stringify(report, null, 2)}\n`);
} finally {
  server.close();
  rmSync(dir, { recursive: true, force: true });
}

/** The other keys' entries, copied from the one loaded: the same columns, each key's own ETag. */
function fill(cwd: string): void {
  if (REGISTRY === 'json') {
    const path = join(cwd, 'registry', 'b.json');
    const snapshot = JSON.parse(readFileSync(path, 'utf8')) as { entries: Record<string, Record<string, unknown>> };
    const [first] = Object.values(snapshot.entries);
    const pieces: string[] = [];
    const [head, tail] = JSON.stringify({ ...snapshot, entries: '\u0000' }).split('"\\u0000"') as [string, string];
    pieces.push(`${head}{`);
    for (let i = 0; i < KEYS; i++) pieces.push(`${i > 0 ? ',' : ''}${JSON.stringify(keyOf(i))}:${JSON.stringify({ ...first, etag: `"e${i}"` })}`);
    pieces.push(`}${tail}`);
    writeFileSync(path, pieces.join(''));
    return;
  }
  const db = new Database(join(cwd, 'data', 'b.sqlite3'));
  try {
    const cols = (db.prepare('PRAGMA table_info(ingest_files)').all() as Array<{ name: string }>).map((c) => c.name);
    const copied = cols.filter((c) => c !== 'key' && c !== 'etag' && c !== 'position');
    db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${KEYS - 1})
      INSERT INTO ingest_files ("key", "etag", "position", ${copied.map((c) => `"${c}"`).join(', ')})
      SELECT printf('k/%07d.data', i), '"e' || i || '"', i, ${copied.map((c) => `f."${c}"`).join(', ')} FROM n, (SELECT * FROM ingest_files LIMIT 1) AS f`);
  } finally {
    db.close();
  }
}
