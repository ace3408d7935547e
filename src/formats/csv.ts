import { pipeline, Readable } from 'node:stream';
import { parse as parseStream, type Options } from 'csv-parse';
import { parse as parseWhole } from 'csv-parse/sync';
import { IngestError } from '../errors.js';
import { invalidUtf8At } from '../utf8.js';
import { notUtf8 } from './json-array.js';
import { routeOf } from './routes.js';
import { Undecodable, type Format, type RecordBatch, type Routed } from './types.js';

/**
 * CSV and TSV with a header row, read by csv-parse (quoting, embedded newlines, a byte order mark, CRLF, the delimiter):
 * each row becomes its text fields, of the type ROUTES gives the file (no route: BI_ROUTE, before a byte is read);
 * routed.ts matches them to the type's properties by header name and converts them. A row whose number of fields is not
 * the header's is a rejection of that row; text csv-parse cannot read (a quote never closed) fails the file, naming
 * the line, as bytes that are not UTF-8 do.
 */
function csvFormat(name: 'csv' | 'tsv'): Format {
  const delimiterOf = (csvDelimiter: string): string => (name === 'tsv' ? '\t' : csvDelimiter);
  return {
    name,
    whole(key, body, rules) {
      const type = routeOf(key, rules.routes, name.toUpperCase());
      const bad = invalidUtf8At(body);
      if (bad >= 0) throw notUtf8(key, body[bad] as number, bad);
      let rows: Parsed[];
      try {
        rows = parseWhole(body.toString('utf8'), options(delimiterOf(rules.csvDelimiter))) as unknown as Parsed[];
      } catch (err) {
        throw unreadable(key, err);
      }
      const reader = new Rows(key, type);
      for (const row of rows) reader.add(row);
      return reader.take(0);
    },
    async *stream(key, chunks, opts, rules) {
      const type = routeOf(key, rules.routes, name.toUpperCase());
      const parser = parseStream(options(delimiterOf(rules.csvDelimiter)));
      pipeline(Readable.from(utf8(key, chunks)), parser, () => undefined); // an error reaches the parser, and so us
      const reader = new Rows(key, type);
      let first = 0;
      let bytes = 0;
      try {
        for await (const row of parser as AsyncIterable<Parsed>) {
          bytes += row.raw.length;
          if (reader.add(row) && (reader.size >= opts.batchRecords || bytes >= opts.batchBytes)) {
            const batch = reader.take(first);
            first += batch.records.length;
            bytes = 0;
            yield batch;
          }
        }
      } catch (err) {
        throw err instanceof IngestError ? err : unreadable(key, err);
      }
      if (reader.size > 0) yield reader.take(first);
    },
  };
}

export const csv = csvFormat('csv');
export const tsv = csvFormat('tsv');

/** A row as csv-parse gives it with `raw`: its fields and the text it was read from. */
interface Parsed {
  record: string[];
  raw: string;
}

function options(delimiter: string): Options {
  return { bom: true, delimiter, raw: true, relax_column_count: true, skip_empty_lines: true };
}

/**
 * Rows read so far, with their lines and text. csv-parse's `raw` holds the blank lines skipped before a row (one line
 * break character each) and the first character of the row's line break; the rest is the row as it was, which is
 * stored without its line break, and whose line breaks (quoted newlines) give the next row's line.
 */
class Rows {
  private columns: string[] | undefined;
  private line = 1;
  private batch: RecordBatch = { first: 0, records: [], lines: [] };
  private raws: string[] = [];

  constructor(private readonly key: string, private readonly type: string) {}

  get size(): number {
    return this.batch.records.length;
  }

  /** Takes one parsed row (the first is the header); true if it is a record. */
  add(row: Parsed): boolean {
    let from = 0;
    while (from < row.raw.length && (row.raw.charCodeAt(from) === 0x0a || row.raw.charCodeAt(from) === 0x0d)) from++;
    let to = row.raw.length;
    if (to > from && (row.raw.charCodeAt(to - 1) === 0x0a || row.raw.charCodeAt(to - 1) === 0x0d)) to--;
    const text = row.raw.slice(from, to);
    const line = this.line + from;
    this.line = line + 1 + (text.match(LINE_BREAK)?.length ?? 0);
    if (this.columns === undefined) {
      const seen = new Set<string>();
      for (const c of row.record) {
        if (seen.has(c)) throw new IngestError('BI_DECODE', `${this.key}: line ${line}: the header names column "${c}" twice`);
        seen.add(c);
      }
      this.columns = row.record;
      return false;
    }
    const n = this.columns.length;
    this.batch.records.push(row.record.length === n ? row.record : new Undecodable(`line ${line}: ${row.record.length} field${row.record.length === 1 ? '' : 's'}, the header has ${n}`, text));
    this.batch.lines?.push(line);
    this.raws.push(text);
    return true;
  }

  /** The rows since the last take, as a batch whose first record is record number `first`. */
  take(first: number): RecordBatch {
    const raws = this.raws;
    const routed: Routed = { key: this.key, type: this.type, columns: this.columns ?? [], raw: (i) => raws[i] as string };
    const out = { ...this.batch, first, routed };
    this.batch = { first: 0, records: [], lines: [] };
    this.raws = [];
    return out;
  }
}

const LINE_BREAK = /\r\n|\r|\n/g;

/** The chunks as text, failing the file at the first bytes that are not UTF-8 (no U+FFFD loaded in their place). */
async function* utf8(key: string, chunks: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let offset = 0;
  for await (const chunk of chunks) {
    try {
      yield decoder.decode(chunk, { stream: true });
    } catch {
      const bad = Math.max(0, invalidUtf8At(chunk));
      throw notUtf8(key, chunk[bad] as number, offset + bad);
    }
    offset += chunk.length;
  }
  try {
    yield decoder.decode();
  } catch {
    throw new IngestError('BI_DECODE', `${key}: not UTF-8 (the body ends inside a character, at byte ${offset})`);
  }
}

function unreadable(key: string, err: unknown): IngestError {
  if (err instanceof IngestError) return err;
  // csv-parse's messages name the line (`… an opening quote at line 2`).
  return new IngestError('BI_DECODE', `${key}: not CSV (${err instanceof Error ? err.message : String(err)})`);
}
