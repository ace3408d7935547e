import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { parquetMetadataAsync, parquetRead, type AsyncBuffer, type FileMetaData, type ParquetParsers } from 'hyparquet';
import { IngestError } from '../errors.js';
import { rawJson } from '../records/raw-json.js';
import { isFlat, pageRows } from './parquet-pages.js';
import { routeOf } from './routes.js';
import { Mistyped, type Format, type RecordBatch } from './types.js';

/**
 * Parquet, read by hyparquet (pure JavaScript) in batches of rows: each row becomes its top-level columns' values, of
 * the type ROUTES gives the file (no route: BI_ROUTE), which routed.ts matches to the type's properties by column
 * name. `record_index` is the row's number in the file. Parquet needs its footer (at the end) first, so a streamed
 * body is written to a temporary file (removed after, whatever happens) and read from there in slices, a page per
 * column at a time (parquet-pages.ts; nested columns by row ranges): memory is bounded by the batch and the pages,
 * not by the file nor by its row groups, which its writer sized. A file hyparquet cannot read (bad magic, cut short, a
 * bad footer or page) fails with BI_DECODE.
 *
 * Values (see {@link cell}): INT32, FLOAT, DOUBLE, BOOLEAN and strings (UTF8 / STRING) as they are; INT64 as a number
 * within ±(2^53 − 1), beyond it a rejection of the record (never a rounded number); DATE as `YYYY-MM-DD`; TIMESTAMP
 * as RFC 3339 UTC text with `Z` and every digit the file has (milliseconds `.sss`, microseconds `.ssssss`, nanoseconds
 * `.sssssssss`); null as null; a BYTE_ARRAY with no string annotation a rejection (binary has no JSON value; the
 * stored row holds it in hex). A nested value (list, struct) with such a value inside is rejected the same way.
 * DECIMAL becomes a number up to 15 digits of precision; a DECIMAL column of more fails the file (never rounded).
 */
export const parquet: Format = {
  name: 'parquet',
  async whole(key, body, rules) {
    const type = routeOf(key, rules.routes, 'Parquet');
    const file: AsyncBuffer = { byteLength: body.length, slice: (start, end) => toArrayBuffer(body.subarray(start, end)) };
    const batches: RecordBatch[] = [];
    for await (const b of rowGroups(key, type, file, Infinity)) batches.push(b);
    const records = batches.flatMap((b) => b.records);
    const columns = batches[0]?.routed?.columns ?? [];
    return { first: 0, records, routed: { key, type, typed: true, columns, raw: (i) => rowJson(columns, records[i] as unknown[]) } };
  },
  async *stream(key, chunks, opts, rules) {
    const type = routeOf(key, rules.routes, 'Parquet');
    const dir = await mkdtemp(join(tmpdir(), 'bucket-ingest-parquet-'));
    let handle: FileHandle | undefined;
    try {
      const path = join(dir, 'body.parquet');
      await pipeline(Readable.from(chunks), createWriteStream(path));
      handle = await open(path, 'r');
      yield* rowGroups(key, type, await fileBuffer(handle), opts.batchRecords);
    } finally {
      await handle?.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
};

/** The file's rows, in batches of at most `batchRecords` rows, each read on its own (a row group at most). */
async function* rowGroups(key: string, type: string, file: AsyncBuffer, batchRecords: number): AsyncGenerator<RecordBatch> {
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw unreadable(key, err);
  }
  const root = metadata.schema[0];
  const columns: string[] = [];
  // Top-level columns: the root's children, each followed by its own descendants (a struct's or list's fields).
  for (let i = 1, left = root?.num_children ?? 0; left > 0 && i < metadata.schema.length; left--) {
    columns.push((metadata.schema[i] as { name: string }).name);
    i = skip(metadata.schema, i);
  }
  for (let i = 1; i < metadata.schema.length; i++) {
    const el = metadata.schema[i] as { name: string; converted_type?: string; logical_type?: { type: string; precision?: number }; precision?: number; scale?: number };
    const precision = el.logical_type?.type === 'DECIMAL' ? el.logical_type.precision : el.converted_type === 'DECIMAL' ? el.precision : undefined;
    if (precision !== undefined && precision > EXACT_DIGITS) {
      throw new IngestError('BI_DECODE', `${key}: column ${el.name} is DECIMAL(${precision}, ${el.scale ?? 0}), more digits than a number holds exactly (${EXACT_DIGITS}); not read rather than rounded`);
    }
  }
  const flat = isFlat(metadata);
  let groupStart = 0;
  for (const group of metadata.row_groups) {
    const groupEnd = groupStart + Number(group.num_rows);
    let first = groupStart;
    try {
      for await (const rows of flat ? pageRows(file, metadata, group, columns, PARSERS, batchRecords) : rowRanges(file, metadata, columns, groupStart, groupEnd, batchRecords)) {
        const records: unknown[] = rows.map((row) => row.map(cell));
        yield { first, records, routed: { key, type, typed: true, columns, raw: (i) => rowJson(columns, records[i] as unknown[]) } };
        first += rows.length;
      }
    } catch (err) {
      throw unreadable(key, err);
    }
    groupStart = groupEnd;
  }
}

/**
 * Rows `groupStart`…`groupEnd` (one row group) of a file with nested columns (lists, structs), read `batchRecords` at
 * a time with hyparquet's row ranges (`rowStart`, `rowEnd`): it decodes only the pages those rows are on (fetching only
 * them where the file has an offset index), so memory follows the batch, though a page is decoded again for each
 * batch it holds rows of. Flat files are read page by page instead (pageRows).
 */
async function* rowRanges(file: AsyncBuffer, metadata: FileMetaData, columns: string[], groupStart: number, groupEnd: number, batchRecords: number): AsyncGenerator<unknown[][]> {
  for (let rowStart = groupStart; rowStart < groupEnd; rowStart += batchRecords) {
    let rows: unknown[][] = [];
    await parquetRead({ file, metadata, columns, rowStart, rowEnd: Math.min(groupEnd, rowStart + batchRecords), useOffsetIndex: true, parsers: PARSERS, utf8: false, onComplete: (r) => (rows = r as unknown[][]) });
    yield rows;
  }
}

/** Decimal digits every double holds exactly: a DECIMAL of more (hyparquet gives a number) would be rounded. */
const EXACT_DIGITS = 15;

/** The index after schema element `i` and all its descendants. */
function skip(schema: FileMetaData['schema'], i: number): number {
  let n = (schema[i] as { num_children?: number }).num_children ?? 0;
  let j = i + 1;
  while (n > 0 && j < schema.length) {
    j = skip(schema, j);
    n--;
  }
  return j;
}

/** A value as hyparquet gives it (with {@link PARSERS}), as the JSON value routed.ts takes, or a Mistyped. */
function cell(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) && BigInt(Number(v)) === v ? Number(v) : new Mistyped('SafeInteger', v.toString(), v.toString());
  if (v instanceof Uint8Array) return new Mistyped('string', `${v.length} byte${v.length === 1 ? '' : 's'} of binary (a BYTE_ARRAY with no string annotation)`, JSON.stringify(Buffer.from(v).toString('hex')));
  if (Array.isArray(v)) {
    const out = v.map(cell);
    const bad = out.find((x) => x instanceof Mistyped);
    return bad ?? out;
  }
  if (v !== null && typeof v === 'object') {
    const out = Object.create(null) as Record<string, unknown>; // a field named `__proto__` stays a field
    for (const [k, x] of Object.entries(v)) {
      const c = cell(x);
      if (c instanceof Mistyped) return c;
      out[k] = c;
    }
    return out;
  }
  return v;
}

/** A row as the JSON its rejection stores: an INT64 beyond 2^53 with its exact digits, binary as a hex string. */
function rowJson(columns: readonly string[], fields: readonly unknown[]): string {
  const parts = fields.map((f, i) => {
    const name = JSON.stringify(columns[i]);
    if (f instanceof Mistyped) return `${name}:${f.json}`;
    return `${name}:${rawJson(f === undefined ? null : f)}`;
  });
  return `{${parts.join(',')}}`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Dates and timestamps as the text `format: date` / `date-time` check, exactly; strings that are not UTF-8 fail the file. */
const PARSERS: Partial<ParquetParsers> = {
  dateFromDays: (days: number) => iso(BigInt(days) * 86_400_000n, 0n, 0).slice(0, 10),
  timestampFromMilliseconds: (ms: bigint) => iso(BigInt(ms), 0n, 0),
  timestampFromMicroseconds: (us: bigint) => iso(floorDiv(BigInt(us), 1000n), mod(BigInt(us), 1000n), 3),
  timestampFromNanoseconds: (ns: bigint) => iso(floorDiv(BigInt(ns), 1_000_000n), mod(BigInt(ns), 1_000_000n), 6),
  stringFromBytes: (bytes: Uint8Array | undefined) => bytes && utf8.decode(bytes),
} as unknown as Partial<ParquetParsers>;

/** RFC 3339 UTC of `ms` milliseconds since 1970, with `digits` more digits of fraction (`rest`). */
function iso(ms: bigint, rest: bigint, digits: number): string {
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) throw new RangeError(`a date or timestamp out of range (${ms} ms from 1970)`);
  const s = d.toISOString(); // `…T12:34:56.789Z`; years beyond 9999 as `+010000-…`
  return digits === 0 ? s : `${s.slice(0, -1)}${rest.toString().padStart(digits, '0')}Z`;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b < 0n ? q - 1n : q;
}

function mod(a: bigint, b: bigint): bigint {
  return ((a % b) + b) % b;
}

/** A file handle as hyparquet's AsyncBuffer: each slice read when asked for, so only what is read is held. */
async function fileBuffer(handle: FileHandle): Promise<AsyncBuffer> {
  const { size } = await handle.stat();
  return {
    byteLength: size,
    async slice(start, end = size) {
      // Not from Node's pool: the slice owns its memory, which is handed to hyparquet without a copy.
      const buf = Buffer.allocUnsafeSlow(Math.max(0, Math.min(end, size) - start));
      let at = 0;
      while (at < buf.length) {
        const { bytesRead } = await handle.read(buf, at, buf.length - at, start + at);
        if (bytesRead === 0) break;
        at += bytesRead;
      }
      return toArrayBuffer(buf.subarray(0, at));
    },
  };
}

/** The bytes of `b` as an ArrayBuffer of their own: `b`'s own if it spans all of it (hyparquet only reads them), else a copy. */
function toArrayBuffer(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.length === b.buffer.byteLength) return b.buffer as ArrayBuffer;
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
}

function unreadable(key: string, err: unknown): IngestError {
  if (err instanceof IngestError) return err;
  return new IngestError('BI_DECODE', `${key}: not Parquet, or corrupt (${err instanceof Error ? err.message : String(err)})`);
}

