/**
 * Decoding: a file's bytes, whole or as they arrive, to batches of records with their positions. Which format reads
 * a file is decided here (detect.ts: settings, extension, content); gzip is undone first, whatever the format.
 */
import type { Settings } from '../config/schema.js';
import { isText } from '../records/codecs.js';
import type { RecordTypes } from '../records/classify.js';
import { validateRecords, type Rejection, type ValidatedFile } from '../validate.js';
import { formatOfContent, formatOfKey, HEAD_BYTES, notReadAsArchive, type FormatRules } from './detect.js';
import { gunzipStream, gunzipWhole, isGzip } from './gzip.js';
import { decodeBody } from './json-array.js';
import { splitJsonArray } from './json-array-stream.js';
import { ndjson } from './ndjson.js';
import { csv, tsv } from './csv.js';
import { parquet } from './parquet.js';
import { validateRouted } from './routed.js';
import { Undecodable, type BatchOptions, type Format, type FormatName, type RecordBatch } from './types.js';

export type { FormatRules } from './detect.js';
export type { BatchOptions, RecordBatch } from './types.js';

/** The JSON array (the bucket's `.data` files): json-array.ts whole, json-array-stream.ts as it arrives. */
const jsonArray: Format = {
  name: 'json',
  whole: (key, body) => ({ first: 0, records: decodeBody(key, body) }),
  async *stream(key, chunks, opts) {
    let first = 0;
    for await (const records of splitJsonArray(key, chunks, opts)) {
      yield { first, records };
      first += records.length;
    }
  },
};

export const FORMATS: Readonly<Record<FormatName, Format>> = { json: jsonArray, ndjson, csv, tsv, parquet };

/** The rules the settings give: FORMAT, FORMAT_OVERRIDES, MAX_FILE_MB, ROUTES, CSV_DELIMITER. */
export function formatRules(s: Pick<Settings, 'FORMAT' | 'FORMAT_OVERRIDES' | 'MAX_FILE_MB' | 'ROUTES' | 'CSV_DELIMITER'>): FormatRules {
  return { format: s.FORMAT, overrides: s.FORMAT_OVERRIDES, maxBytes: s.MAX_FILE_MB * 1024 * 1024, routes: s.ROUTES, csvDelimiter: s.CSV_DELIMITER };
}

/** The rules when no settings are given (tests, tools): every format by extension or content, 4 GB decompressed. */
export const DEFAULT_RULES: FormatRules = { format: 'auto', overrides: [], maxBytes: 4096 * 1024 * 1024, routes: [], csvDelimiter: ',' };

/** The records of a whole body, in its format (see detect.ts), gunzipped first if it is gzip. */
export async function decodeWhole(key: string, body: Buffer, rules: FormatRules = DEFAULT_RULES): Promise<RecordBatch> {
  const named = decodable(key, rules);
  const text = isGzip(body) ? await gunzipWhole(key, body, rules.maxBytes) : body;
  const format = named === 'auto' ? formatOfContent(key, text.subarray(0, HEAD_BYTES)) : named;
  return await FORMATS[format].whole(key, text, rules);
}

/**
 * The records of a body read as it arrives, in batches (see BatchOptions), gunzipped as it is read if it is gzip. Only
 * the first bytes are looked at before the format is known, so memory stays bounded by the batch.
 */
export async function* decodeStream(key: string, chunks: AsyncIterable<Buffer>, rules: FormatRules, opts: BatchOptions): AsyncGenerator<RecordBatch> {
  const named = decodable(key, rules);
  let { head, rest } = await peek(chunks, (h) => h.length >= 2);
  if (isGzip(head)) ({ head, rest } = await peek(gunzipStream(key, rest, rules.maxBytes), seesContent));
  else if (named === 'auto') ({ head, rest } = await peek(rest, seesContent));
  const format = named === 'auto' ? formatOfContent(key, head) : named;
  yield* FORMATS[format].stream(key, rest, { ...opts, maxLineBytes: rules.maxBytes }, rules);
}

/** The format the key and the settings name, which must not be an archive (those are listed as their members). */
function decodable(key: string, rules: FormatRules): FormatName | 'auto' {
  const named = formatOfKey(key, rules);
  if (named === 'zip') throw notReadAsArchive(key, 'by its key');
  return named;
}

/** Enough of a body's start to tell its format: its first value's first byte (or HEAD_BYTES of white space). */
function seesContent(head: Buffer): boolean {
  if (head.length >= HEAD_BYTES) return true;
  if (head.length < 4) return false;
  for (let i = 0; i < head.length; i++) {
    const b = head[i] as number;
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09 && !(i < 3 && (b === 0xef || b === 0xbb || b === 0xbf))) return true;
  }
  return false;
}

/** The first chunks of `chunks` until `enough` says so (or the end), and all of it again, from the start, as `rest`. */
async function peek(chunks: AsyncIterable<Buffer>, enough: (head: Buffer) => boolean): Promise<{ head: Buffer; rest: AsyncIterable<Buffer> }> {
  const it = chunks[Symbol.asyncIterator]();
  const seen: Buffer[] = [];
  let head: Buffer = Buffer.alloc(0);
  let done = false;
  while (!enough(head)) {
    const r = await it.next();
    if (r.done === true) {
      done = true;
      break;
    }
    seen.push(r.value);
    head = seen.length === 1 ? r.value : Buffer.concat(seen);
  }
  async function* rest(): AsyncGenerator<Buffer> {
    try {
      yield* seen;
      seen.length = 0;
      if (done) return;
      for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
    } finally {
      await it.return?.();
    }
  }
  return { head, rest: rest() };
}

/**
 * A batch's records sorted into rows, rejections and skips (validateRecords), each rejection at its record's place in
 * the file. A line format's rejections name the line (`line 7: …`); a record the format could not read is a rejection
 * with the format's reason and its text as it was (as a JSON string, said so, if it holds U+0000, which no database's
 * text column takes).
 *
 * `keyOrder`: see validateRecords.
 */
export function validateBatch(types: RecordTypes, batch: RecordBatch, now: string, keyOrder = false): ValidatedFile {
  if (batch.routed !== undefined) return validateRouted(types, batch, batch.routed, now, keyOrder);
  const lines = batch.lines;
  if (lines === undefined) return validateRecords(types, batch.records, now, batch.first, keyOrder);
  const values: unknown[] = [];
  const at: number[] = []; // where values[i] is in the batch
  const unread: Rejection[] = [];
  batch.records.forEach((r, i) => {
    if (!(r instanceof Undecodable)) {
      values.push(r);
      at.push(i);
    } else if (isText(r.raw)) {
      unread.push({ recordIndex: batch.first + i, type: null, reason: r.reason, raw: r.raw });
    } else {
      unread.push({ recordIndex: batch.first + i, type: null, reason: `${r.reason}; raw stored as a JSON string (it holds U+0000)`, raw: JSON.stringify(r.raw) });
    }
  });
  const file = validateRecords(types, values, now, 0, keyOrder);
  for (const r of file.rejections) {
    const i = at[r.recordIndex] as number;
    r.recordIndex = batch.first + i;
    r.reason = `line ${lines[i] as number}: ${r.reason}`;
  }
  if (unread.length > 0) file.rejections = [...file.rejections, ...unread].sort((a, b) => a.recordIndex - b.recordIndex);
  return file;
}
