import { classifyRecord, type Classification, type RecordTypes } from './records/classify.js';
import { rawJson } from './records/raw-json.js';
import type { Cell, RecordType, Row } from './records/types.js';

export interface Rejection {
  recordIndex: number;
  type: string | null;
  reason: string;
  raw: string;
}

/** How one record is sorted: classifyRecord for an enveloped `{"type", "data"}`, another for routed formats' data. */
export type Classify = (types: RecordTypes, raw: unknown, now: string) => Classification;

/** A file's records sorted into what gets written: rows per table (one per key), rejections, skips. */
export interface ValidatedFile {
  /**
   * Rows per record type, each key once (a later record with the same key replaces an earlier one), as one flat
   * array, in key order if asked (see validateRecords): row i is `cells[i * w … (i + 1) * w)` with
   * `w = type.columns.length`, in `type.columns` order. Flat arrays of strings and numbers cross to the writing thread
   * several times cheaper than row objects (structured clone) and bind to a statement without a property lookup per
   * value.
   */
  rows: Map<RecordType, Cell[]>;
  rejections: Rejection[];
  loaded: number;
  skipped: number;
}

/**
 * Validates every record of a file. Every element ends in exactly one of: a row, a rejection with its
 * reason and raw JSON, or a skip (types this daemon does not load).
 *
 * `classify`: see {@link Classify}. `firstIndex`: position in the file of `records[0]` (streamed files arrive in batches). `keyOrder`: each table's rows
 * in the order of their keys, for the dialects that merge a group's files by key before writing (upsertGroupRows): they
 * then merge as sorted runs, which sort fast, and the ordering is done here, in a decoding thread, not in the thread
 * that writes. Otherwise in the order of the records.
 */
export function validateRecords(types: RecordTypes, records: readonly unknown[], now: string, firstIndex = 0, keyOrder = false, classify: Classify = classifyRecord): ValidatedFile {
  const out: ValidatedFile = { rows: new Map(), rejections: [], loaded: 0, skipped: 0 };
  const byKey = new Map<RecordType, Map<string, Cell[]>>();
  for (let i = 0; i < records.length; i++) {
    const raw = records[i];
    const result = classify(types, raw, now);
    if (result.kind === 'row') {
      let table = byKey.get(result.type);
      if (!table) byKey.set(result.type, (table = new Map()));
      const cells = result.type.columns.map((column) => result.row[column.name] ?? null);
      table.set(keyAt(result.type, cells, 0), cells);
      out.loaded++;
    } else if (result.kind === 'skip') {
      out.skipped++;
    } else {
      out.rejections.push({ recordIndex: firstIndex + i, type: storedType(result.type), reason: result.reason, raw: rawJson(storedRecord(types, result.type, raw)) });
    }
  }
  for (const [type, rows] of byKey) {
    const cells: Cell[] = [];
    if (keyOrder) for (const key of [...rows.keys()].sort()) for (const cell of rows.get(key) as Cell[]) cells.push(cell);
    else for (const row of rows.values()) for (const cell of row) cells.push(cell);
    out.rows.set(type, cells);
  }
  return out;
}

/**
 * The unique key of the row starting at `cells[at]`, as one string, for maps in memory (never stored). Each cell is
 * self-delimiting, so ("a b","c") and ("a","b c") stay apart whatever characters the values hold: a string as its
 * length, `:` and itself; any other cell as a letter for its type, its text and `;`. About 3x faster than
 * `JSON.stringify` of the key cells, once per valid record.
 */
export function keyAt(type: RecordType, cells: readonly Cell[], at: number): string {
  let key = '';
  for (const i of type.keyCells) {
    const v = cells[at + i];
    if (typeof v === 'string') key += `${v.length}:${v}`;
    else if (typeof v === 'number') key += `n${v};`;
    else if (typeof v === 'boolean') key += v ? 't;' : 'f;';
    else key += 'z;';
  }
  return key;
}

/** The flat rows of one table as row objects (for tests and tools; the load path reads the cells directly). */
export function rowsOf(type: RecordType, cells: readonly Cell[]): Row[] {
  const rows: Row[] = [];
  for (let at = 0; at < cells.length; at += type.columns.length) {
    rows.push(Object.fromEntries(type.columns.map((c, i) => [c.name, cells[at + i] ?? null])));
  }
  return rows;
}

/** The record as its rejection stores it: with the personal data of its type hashed (RecordType.redact), if it has any. */
function storedRecord(types: RecordTypes, type: string | null, raw: unknown): unknown {
  const redact = type === null ? undefined : types.typeFor(type)?.redact;
  return redact === undefined ? raw : redact(raw as Record<string, unknown>); // a record of a known type is an object
}

/** `rejected_records.type` is a VARCHAR(255) (migration 002). */
const TYPE_LIMIT = 255;

/**
 * The `type` a rejection stores: null for one longer than its column, which PostgreSQL and MySQL would refuse (failing
 * the whole file) and SQLite take; the raw JSON stored beside it keeps the type as it was. Only rejections store a
 * type: a long type is never a known one, so with valid `data` the record is a skip.
 */
function storedType(type: string | null): string | null {
  return type !== null && type.length > TYPE_LIMIT ? null : type;
}

