/**
 * The one interface every file format implements: a whole body, or a stream of chunks, in; batches of records out,
 * each with its position in the file. What a record then becomes (row, rejection, skip) is validate.ts's job.
 */
import type { FormatRules } from './detect.js';

/** A record the format could not read (an NDJSON line that is not JSON): a rejection of that record, not of the file. */
export class Undecodable {
  /** `reason`: one line, naming the place (`line 7: not JSON (…)`); `raw`: the record's text as it was in the file. */
  constructor(readonly reason: string, readonly raw: string) {}
}

/** A typed field that has no JSON value of the schema's kind (an INT64 beyond 2^53): a rejection of its record. */
export class Mistyped {
  /**
   * `expected`: as a codec's reason says it (`SafeInteger`); `got`: the value, as the reason shows it; `json`: the
   * value as the stored row's JSON holds it (an INT64's exact digits, binary as a hex string).
   */
  constructor(readonly expected: string, readonly got: string, readonly json: string) {}
}

/** Records of a file, in file order, as one format read them. */
export interface RecordBatch {
  /** `record_index` of `records[0]`: its 0-based record number in the file. */
  first: number;
  /** Parsed values (a `{"type","data"}` envelope, or whatever the file held), or an Undecodable in a record's place. */
  records: unknown[];
  /** Line formats: the 1-based line of each record (blank lines counted), which rejections name. */
  lines?: number[];
  /** A routed format (CSV, Parquet): `records` are rows of fields, of one type, read by routed.ts. */
  routed?: Routed;
}

/**
 * What a routed format's batch says besides its rows (`string[]` each, an Undecodable in a row's place; with `typed`,
 * `unknown[]` each).
 */
export interface Routed {
  /** Parquet: fields are values already of their JSON type (null for a null), or a Mistyped; CSV: text to convert. */
  typed?: true;
  /** The file's key, which a missing column's error names. */
  key: string;
  /** The record type ROUTES gave the file. */
  type: string;
  /** The header row: the property each field is. */
  columns: readonly string[];
  /**
   * Row `i`'s text as it was in the file, which its rejection stores; Parquet: the row as JSON, built only then (for
   * every row it was 8% of a large Parquet file's load).
   */
  raw(i: number): string;
}

/** When a stream's records are handed on. */
export interface BatchOptions {
  /** Records per batch handed on. */
  batchRecords: number;
  /** Bytes of the file after which a batch is handed on even if it has fewer records. */
  batchBytes: number;
  /** Line formats: a line longer than this fails the file (memory stays bounded by it); default: no limit. */
  maxLineBytes?: number;
}

/** A file format: how its bytes become records. Implementations fail the file with an IngestError (BI_DECODE…). */
export interface Format {
  /** As FORMAT and detection name it. */
  readonly name: FormatName;
  /** The records of a whole body, as one batch (Parquet's reader is asynchronous, hence the promise). */
  whole(key: string, body: Buffer, rules: FormatRules): RecordBatch | Promise<RecordBatch>;
  /** The records of a body read as it arrives, memory bounded by the batch. */
  stream(key: string, chunks: AsyncIterable<Buffer>, opts: BatchOptions, rules: FormatRules): AsyncGenerator<RecordBatch>;
}

/** The formats that load. */
export type FormatName = 'json' | 'ndjson' | 'csv' | 'tsv' | 'parquet';
