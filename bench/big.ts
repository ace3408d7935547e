/**
 * `npm run bench -- --big`: memory on large files. For each format, ONE large file is written to a temp directory
 * (streamed to disk as it is generated, never held in memory), then `node dist/bundle/cli.js run --once` loads it
 * from there (a local-directory bucket, SQLite) as a child process, whose peak RSS is measured; the file is removed
 * before the next format is written. The target (bench/README.md): every format under 250 MB, whatever the file's size.
 *
 *   npm run bench -- --big [--format F] [--big-mb 1024] [--big-rows N] [--big-row-group 1000000] [--seed 1]
 *                    [--cpu-prof DIR] [--out bench/results]
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { fileWriter, ParquetWriter } from 'hyparquet-writer';
import { childEnv, detectRssMethod, GNU_TIME, runNode, stopCurrentChild, type RssMethod } from './child.js';
import { CSV_TYPES, csvField, fits, generateFiles, generateTypeRecords, INDEX_KEY, PARQUET_OF, PARQUET_TYPES, type BenchFormat, type RecordType } from './generate.js';
import { fmt, fmtInt, say, table } from './text.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'bundle', 'cli.js');

/** The peak RSS every format must stay under (issue 15, section 2). */
export const RSS_TARGET_MB = 250;

/** The formats of issue 15's memory target, one large file each (ZIP archives are not among them). */
export const BIG_FORMATS = ['json', 'ndjson', 'ndjson.gz', 'csv', 'parquet'] as const satisfies readonly BenchFormat[];
type BigFormat = (typeof BIG_FORMATS)[number];

/** The record type of the big CSV and Parquet files (five columns: text, a date, an integer, a boolean). */
const ROUTED_TYPE: RecordType = 'movie';

export const BIG_USAGE = `usage: npm run bench -- --big [--format json|ndjson|ndjson.gz|csv|parquet] [--big-mb N] [--big-rows N]
                        [--big-row-group N] [--seed N] [--cpu-prof DIR] [--out DIR]`;

interface BigOptions {
  formats: BigFormat[];
  /** MB (2^20 bytes) of each text file; gzip: of the NDJSON before compression. */
  mb: number;
  /** Rows of the Parquet file. */
  parquetRows: number;
  /** Rows per Parquet row group. */
  rowGroupRows: number;
  seed: number;
  /** Where the daemon writes a CPU profile (`node --cpu-prof`), if anywhere. */
  cpuProf: string | undefined;
  out: string;
}

function parseBigOptions(argv: string[]): BigOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      big: { type: 'boolean' },
      format: { type: 'string' },
      'big-mb': { type: 'string', default: '1024' },
      'big-rows': { type: 'string' },
      'big-row-group': { type: 'string', default: '1000000' },
      seed: { type: 'string', default: '1' },
      'cpu-prof': { type: 'string' },
      out: { type: 'string', default: join('bench', 'results') },
    },
  });
  const int = (name: string, raw: string, min: number): number => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${raw}\n${BIG_USAGE}`);
    return n;
  };
  if (values.format !== undefined && !(BIG_FORMATS as readonly string[]).includes(values.format)) {
    throw new Error(`--format must be one of ${BIG_FORMATS.join(', ')} with --big, got ${values.format}\n${BIG_USAGE}`);
  }
  const mb = int('big-mb', values['big-mb'], 1);
  return {
    formats: values.format === undefined ? [...BIG_FORMATS] : [values.format as BigFormat],
    mb,
    // 10M rows beside 1 GB of text, in proportion for other sizes.
    parquetRows: values['big-rows'] === undefined ? Math.round((10_000_000 * mb) / 1024) : int('big-rows', values['big-rows'], 1),
    rowGroupRows: int('big-row-group', values['big-row-group'], 1),
    seed: int('seed', values.seed, 0),
    cpuProf: values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']),
    out: resolve(values.out),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Writing one large file, streamed

interface BigFile {
  key: string;
  /** Bytes on disk. */
  bytes: number;
  /** Bytes of text before compression (gzip), else `bytes`. */
  textBytes: number;
  records: number;
  /** Records the generator made invalid (JSON and NDJSON: exactly the daemon's rejections). */
  invalid: number;
  /** ROUTES for the file, if it has no envelope. */
  routes?: string;
}

/** Generated files' records, as text chunks of about one generated file each, until `target` bytes of text. */
async function* envelopedText(format: 'json' | 'ndjson', target: number, seed: number, file: BigFile): AsyncGenerator<string> {
  const emit = (text: string): string => {
    file.textBytes += Buffer.byteLength(text);
    return text;
  };
  if (format === 'json') yield emit('[');
  let first = true;
  for (const generated of generateFiles({ files: Number.MAX_SAFE_INTEGER, recordsPerFile: 1000, seed })) {
    if (file.textBytes >= target) break;
    let text: string;
    if (format === 'json') {
      // Pretty-printed bodies end with a newline: trim before taking the brackets off.
      const inner = generated.body.trim().slice(1, -1).trim();
      text = first ? inner : `,${inner}`;
    } else {
      text = (JSON.parse(generated.body) as unknown[]).map((r) => `${JSON.stringify(r)}\n`).join('');
    }
    first = false;
    file.records += generated.valid + generated.invalid + generated.skipped;
    file.invalid += generated.invalid;
    yield emit(text);
  }
  if (format === 'json') yield emit(']');
}

/** ROUTED_TYPE's records as CSV (a header row, then one line each), until `target` bytes. */
async function* csvText(target: number, seed: number, file: BigFile): AsyncGenerator<string> {
  const columns = CSV_TYPES.find((t) => t.type === ROUTED_TYPE)?.columns ?? [];
  let text = `${columns.join(',')}\n`;
  for (const { data, valid } of generateTypeRecords(ROUTED_TYPE, { seed })) {
    if (file.textBytes >= target) break;
    text += `${columns.map((c) => csvField(data[c])).join(',')}\n`;
    file.records++;
    if (!valid) file.invalid++;
    if (text.length >= 1 << 16) {
      file.textBytes += Buffer.byteLength(text);
      yield text;
      text = '';
    }
  }
  file.textBytes += Buffer.byteLength(text);
  yield text;
}

async function writeText(path: string, chunks: AsyncIterable<string>, gzip: boolean): Promise<void> {
  if (gzip) await pipeline(Readable.from(chunks), createGzip(), createWriteStream(path));
  else await pipeline(Readable.from(chunks), createWriteStream(path));
}

/**
 * `rows` rows of ROUTED_TYPE as Parquet, written with hyparquet-writer's ParquetWriter (one `write` per row group,
 * through its file writer, which flushes every MB), so only one row group's columns are held at a time. Records with a
 * value that is not of its column's type are left out, as parquetFiles does.
 */
async function writeParquet(path: string, rows: number, rowGroupRows: number, seed: number, file: BigFile): Promise<void> {
  const columns = PARQUET_TYPES.find((t) => t.type === ROUTED_TYPE)?.columns ?? [];
  const schema = [{ name: 'root', num_children: columns.length }, ...columns.map((c) => ({ name: c.name, repetition_type: 'OPTIONAL', ...PARQUET_OF[c.type] }))];
  const writer = new ParquetWriter({ writer: fileWriter(path), schema: schema as never });
  let group: unknown[][] = columns.map(() => []);
  let held = 0;
  const flush = async (): Promise<void> => {
    if (held === 0) return;
    await writer.write({ columnData: columns.map((c, i) => ({ name: c.name, data: group[i] as unknown[] })), rowGroupSize: held });
    group = columns.map(() => []);
    held = 0;
  };
  for (const { data, valid } of generateTypeRecords(ROUTED_TYPE, { seed })) {
    if (file.records >= rows) break;
    if (!columns.every((c) => data[c.name] === undefined || data[c.name] === null || fits(c.type, data[c.name]))) continue;
    columns.forEach((c, i) => {
      const v = data[c.name];
      (group[i] as unknown[]).push(v === undefined || v === null ? null : c.type === 'integer' ? BigInt(v as number) : v);
    });
    held++;
    file.records++;
    if (!valid) file.invalid++;
    if (held >= rowGroupRows) await flush();
  }
  await flush();
  await writer.finish();
}

export async function writeBigFile(dir: string, format: BigFormat, opts: BigOptions): Promise<BigFile> {
  const target = opts.mb * 2 ** 20;
  const keys: Record<BigFormat, string> = {
    json: 'big.json', ndjson: 'big.ndjson', 'ndjson.gz': 'big.ndjson.gz', csv: `big.${ROUTED_TYPE}.csv`, parquet: `big.${ROUTED_TYPE}.parquet`,
  };
  const file: BigFile = { key: keys[format], bytes: 0, textBytes: 0, records: 0, invalid: 0 };
  const path = join(dir, file.key);
  if (format === 'parquet') {
    await writeParquet(path, opts.parquetRows, opts.rowGroupRows, opts.seed, file);
    file.routes = `**/*.parquet=${ROUTED_TYPE}`;
  } else if (format === 'csv') {
    await writeText(path, csvText(target, opts.seed, file), false);
    file.routes = `**/*.csv=${ROUTED_TYPE}`;
  } else {
    await writeText(path, envelopedText(format === 'json' ? 'json' : 'ndjson', target, opts.seed, file), format === 'ndjson.gz');
  }
  file.bytes = (await stat(path)).size;
  if (format === 'parquet') file.textBytes = file.bytes;
  await writeFile(join(dir, INDEX_KEY), file.key);
  return file;
}

// ---------------------------------------------------------------------------------------------------------
// Loading it

interface BigResult {
  format: BigFormat;
  file: BigFile;
  generateSeconds: number;
  wallSeconds: number;
  recordsPerSecond: number;
  peakRssMB: number | null;
  underTarget: boolean | null;
  exitCode: number | null;
  /** What the cycle's CycleFinished line says, or null. */
  cycle: { filesDone: number; recordsLoaded: number; recordsRejected: number; recordsSkipped: number } | null;
  warnings: string[];
}

function cycleOf(stdout: string): BigResult['cycle'] {
  for (const text of stdout.split('\n').reverse()) {
    if (!text.includes('"CycleFinished"')) continue;
    try {
      const l = JSON.parse(text) as Record<string, unknown>;
      return { filesDone: Number(l.filesDone), recordsLoaded: Number(l.recordsLoaded), recordsRejected: Number(l.recordsRejected), recordsSkipped: Number(l.recordsSkipped) };
    } catch {
      // a line cut by the output tail
    }
  }
  return null;
}

async function loadBig(format: BigFormat, opts: BigOptions, rssMethod: RssMethod): Promise<BigResult> {
  const scratch = await mkdtemp(join(os.tmpdir(), 'bucket-ingest-big-'));
  try {
    const bucket = join(scratch, 'bucket');
    await mkdir(bucket);
    const started = performance.now();
    const file = await writeBigFile(bucket, format, opts);
    const generateSeconds = (performance.now() - started) / 1000;
    const env = childEnv({
      BUCKET_URL: bucket,
      DATABASE_URL: `sqlite://${join(scratch, 'big.sqlite3')}`,
      REGISTRY_PATH: join(scratch, 'registry.json'),
      MAX_FILE_MB: String(Math.max(4096, Math.ceil((2 * file.textBytes) / 2 ** 20))),
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      ...(file.routes === undefined ? {} : { ROUTES: file.routes }),
    });
    const prof = opts.cpuProf === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', opts.cpuProf, '--cpu-prof-name', `big-${format}-${Date.now()}.cpuprofile`];
    const child = await runNode([...prof, CLI, 'run', '--once'], env, rssMethod, scratch);
    const cycle = cycleOf(child.stdout);
    const warnings: string[] = [];
    if (child.exitCode !== 0) warnings.push(`exited ${child.exitCode ?? child.signal}: ${child.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    else if (cycle === null) warnings.push('no CycleFinished line');
    else {
      if (cycle.filesDone !== 1) warnings.push(`${cycle.filesDone} files done, expected 1: ${child.stdout.trim().split('\n').slice(-3).join(' | ')}`);
      const accounted = cycle.recordsLoaded + cycle.recordsRejected + cycle.recordsSkipped;
      if (cycle.filesDone === 1 && accounted !== file.records) warnings.push(`${accounted} records accounted for, ${file.records} written`);
      // The daemon's rules are the generator's for enveloped records; CSV and Parquet read some invalid ones as valid.
      if (format !== 'csv' && format !== 'parquet' && cycle.filesDone === 1 && cycle.recordsRejected !== file.invalid) warnings.push(`${cycle.recordsRejected} rejected, the generator made ${file.invalid} invalid`);
    }
    return {
      format, file, generateSeconds,
      wallSeconds: child.wallSeconds,
      recordsPerSecond: file.records / child.wallSeconds,
      peakRssMB: child.peakRssMB,
      underTarget: child.peakRssMB === null ? null : child.peakRssMB < RSS_TARGET_MB,
      exitCode: child.exitCode,
      cycle,
      warnings,
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Main

/** `--big`: each format's large file generated, loaded, measured and removed in turn; a report on stdout and in `--out`. */
export async function runBig(argv: string[]): Promise<void> {
  const opts = parseBigOptions(argv);
  const rssMethod = detectRssMethod();
  const startedAt = new Date();
  say(`big files: ${opts.formats.join(', ')}; text formats ${fmtInt(opts.mb)} MB each (gzip: of NDJSON before compression), Parquet ${fmtInt(opts.parquetRows)} rows in row groups of ${fmtInt(opts.rowGroupRows)}; seed ${opts.seed}`);
  say(`peak RSS: ${rssMethod === 'gnu-time' ? `${GNU_TIME} -f %M` : rssMethod === 'proc-vmhwm' ? '/proc/<pid>/status VmHWM every 50 ms' : 'not measured'}; target < ${RSS_TARGET_MB} MB`);
  say('database: a fresh SQLite file per format; bucket: a local directory holding the one file');
  const onSignal = (): void => {
    stopCurrentChild();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const results: BigResult[] = [];
  try {
    for (const format of opts.formats) {
      const r = await loadBig(format, opts, rssMethod);
      results.push(r);
      say(`${format.padEnd(9)}: ${(r.file.bytes / 2 ** 20).toFixed(0)} MB${r.file.bytes === r.file.textBytes ? '' : ` (${(r.file.textBytes / 2 ** 20).toFixed(0)} MB of text)`}, ` +
        `${fmtInt(r.file.records)} records, generated in ${r.generateSeconds.toFixed(1)} s; loaded in ${r.wallSeconds.toFixed(1)} s, ${fmtInt(r.recordsPerSecond)} records/s, ` +
        `peak RSS ${fmt(r.peakRssMB, 0)} MB${r.underTarget === false ? ' OVER' : ''}${r.cycle ? `; ${fmtInt(r.cycle.recordsLoaded)} loaded, ${fmtInt(r.cycle.recordsRejected)} rejected, ${fmtInt(r.cycle.recordsSkipped)} skipped` : ''}`);
      for (const w of r.warnings) say(`  WARNING: ${w}`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  say();
  const rows = [['format', 'file MB', 'records', 'wall s', 'records/s', 'MB/s', 'peak RSS MB', `< ${RSS_TARGET_MB} MB`]];
  for (const r of results) {
    rows.push([
      r.format, (r.file.bytes / 2 ** 20).toFixed(0), fmtInt(r.file.records), r.wallSeconds.toFixed(1), fmtInt(r.recordsPerSecond),
      (r.file.bytes / 2 ** 20 / r.wallSeconds).toFixed(1), fmt(r.peakRssMB, 0), r.underTarget === null ? '-' : r.underTarget ? 'yes' : 'NO',
    ]);
  }
  say(table(rows));
  const warnings = results.flatMap((r) => r.warnings);
  if (warnings.length > 0) say(`${warnings.length} warning(s), see above`);
  await mkdir(opts.out, { recursive: true });
  const out = join(opts.out, `big-${startedAt.toISOString().replace(/:/g, '-')}.json`);
  await writeFile(out, `${JSON.stringify({ startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), options: opts, peakRssMethod: rssMethod, rssTargetMB: RSS_TARGET_MB, results }, null, 2)}\n`);
  say(`saved ${out}`);
  if (warnings.length > 0 || results.some((r) => r.underTarget === false)) process.exitCode = 1;
}
