import { IngestError } from '../errors.js';
import { invalidUtf8At } from '../utf8.js';
import { notUtf8 } from './json-array.js';
import { findJsonSyntaxError } from './json-syntax.js';
import { Undecodable, type BatchOptions, type Format, type RecordBatch } from './types.js';

const NEWLINE = 0x0a;

/**
 * NDJSON / JSON Lines: one JSON value per line, lines ended by `\n` or `\r\n` (the last one may have none), blank lines
 * skipped but counted, a UTF-8 byte order mark allowed at the start. A line that is not JSON is a rejection of that
 * record (an {@link Undecodable}, its text stored as it was), not a failed file: the other lines stand on their own,
 * which is why loggers write this format. Bytes that are not UTF-8 still fail the file, naming the byte offset, as a
 * JSON array's do: no text is loaded with U+FFFD in place of what it held.
 */
export const ndjson: Format = {
  name: 'ndjson',
  whole(key, body) {
    const bad = invalidUtf8At(body);
    if (bad >= 0) throw notUtf8(key, body[bad] as number, bad);
    const out: RecordBatch = { first: 0, records: [], lines: [] };
    readLines(key, body, 0, 1, true, out);
    return out;
  },
  stream: splitLines,
};

/**
 * The records of `bytes` (whole lines of the body, starting at body offset `offset` and line `line`), added to `out`;
 * returns the number of lines read. The text is checked as UTF-8 by the caller. Each line is parsed on its own: one
 * `JSON.parse` of all of them joined would be faster only if lines could not be parts of one value (`[1` and `2]`).
 */
function readLines(key: string, bytes: Buffer, offset: number, line: number, atStart: boolean, out: RecordBatch): number {
  let text: string;
  try {
    text = bytes.toString('utf8');
  } catch (err) {
    // Past V8's longest string (~512 MB): a data error, not a crash.
    throw new IngestError('BI_DECODE', `${key}: the lines from byte ${offset} are too large to decode (${(err as Error).message})`);
  }
  let at = atStart && text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let n = 0;
  while (at < text.length) {
    let end = text.indexOf('\n', at);
    if (end < 0) end = text.length;
    const lineEnd = end > at && text.charCodeAt(end - 1) === 0x0d ? end - 1 : end;
    n++;
    // Most lines start with `{`: only others are looked at for being blank (white space only).
    if (lineEnd > at && (text.charCodeAt(at) === 0x7b || text.slice(at, lineEnd).trim() !== '')) {
      out.records.push(parseLine(text.slice(at, lineEnd), line + n - 1));
      out.lines?.push(line + n - 1);
    }
    at = end + 1;
  }
  return n;
}

/** A line's value, or an Undecodable naming the line and the column where it stops being JSON. */
function parseLine(text: string, line: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // JSON.parse's message may quote the line: name the place ourselves, in characters from the line's start.
    const problem = findJsonSyntaxError(text) ?? { at: 0, what: 'refused by JSON.parse' };
    const column = [...text.slice(0, problem.at)].length + 1;
    return new Undecodable(`line ${line}: not JSON (${problem.what} at column ${column})`, text);
  }
}

/**
 * NDJSON read as it arrives: complete lines are gathered (found with the native `indexOf`, not byte by byte) until
 * `batchRecords` lines or `batchBytes`, then checked as UTF-8 once, decoded and parsed, and handed on `batchRecords` at a time. Lines are cut
 * only at `\n`, which is never inside a UTF-8 character, so checking every line checks every byte of the body. A line
 * still under way is held until it ends; one longer than `maxLineBytes` fails the file instead of growing memory.
 */
export async function* splitLines(key: string, chunks: AsyncIterable<Buffer>, opts: BatchOptions): AsyncGenerator<RecordBatch> {
  const maxLine = opts.maxLineBytes ?? Infinity;
  let pieces: Buffer[] = []; // bytes of whole lines (and, in `partial`, of the line under way) not yet read
  let piecesBytes = 0;
  let piecesLines = 0; // lines ended in `pieces` (blank ones too: a batch has at most batchRecords records)
  let partial: Buffer[] = [];
  let partialBytes = 0;
  let offset = 0; // body offset of the first byte of `pieces`
  let line = 1; // line number of the first line in `pieces`
  let first = 0; // record number of the next record
  let atStart = true;

  function* flush(bytes: Buffer): Generator<RecordBatch> {
    const bad = invalidUtf8At(bytes);
    if (bad >= 0) throw notUtf8(key, bytes[bad] as number, offset + bad);
    const out: RecordBatch = { first, records: [], lines: [] };
    line += readLines(key, bytes, offset, line, atStart, out);
    atStart = false;
    offset += bytes.length;
    for (let i = 0; i < out.records.length; i += opts.batchRecords) {
      const records = out.records.slice(i, i + opts.batchRecords);
      yield { first: first + i, records, lines: (out.lines as number[]).slice(i, i + opts.batchRecords) };
    }
    first += out.records.length;
  }

  for await (const chunk of chunks) {
    const last = chunk.lastIndexOf(NEWLINE);
    if (last < 0) {
      partial.push(chunk);
      partialBytes += chunk.length;
      if (partialBytes > maxLine) throw lineTooLong(key, line + countLines(pieces), maxLine);
      continue;
    }
    // The line under way ends in this chunk: it joins the whole lines, and what follows the last newline waits.
    const whole = chunk.subarray(0, last + 1);
    pieces.push(...partial, whole);
    piecesBytes += partialBytes + whole.length;
    piecesLines += countLines([whole]);
    partial = last + 1 < chunk.length ? [chunk.subarray(last + 1)] : [];
    partialBytes = chunk.length - last - 1;
    if (piecesBytes >= opts.batchBytes || piecesLines >= opts.batchRecords) {
      const bytes = Buffer.concat(pieces, piecesBytes);
      pieces = [];
      piecesBytes = 0;
      piecesLines = 0;
      yield* flush(bytes);
    }
    if (partialBytes > maxLine) throw lineTooLong(key, line + countLines(pieces), maxLine);
  }
  pieces.push(...partial); // the last line, which may have no newline: still a record
  piecesBytes += partialBytes;
  if (piecesBytes > 0) yield* flush(Buffer.concat(pieces, piecesBytes));
}

/** Lines ended in `pieces` (for the number of the line under way, only when failing). */
function countLines(pieces: readonly Buffer[]): number {
  let n = 0;
  for (const p of pieces) for (let i = p.indexOf(NEWLINE); i >= 0; i = p.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

function lineTooLong(key: string, line: number, max: number): IngestError {
  return new IngestError('BI_DECODE', `${key}: line ${line} is longer than MAX_FILE_MB (${max} bytes)`);
}
