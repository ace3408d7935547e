import { maxLength } from './load/schema.js';
import { recordTypes } from './records/index.js';
import { classifyRecord } from './records/classify.js';
import type { RecordType, Row } from './records/types.js';

/** Bounded text columns per type: a longer value is a rejection (with reason), the same on every dialect. */
const LIMITS = new Map<RecordType, Array<[string, number]>>(
  recordTypes.map((type) => [
    type,
    type.columns.flatMap((c): Array<[string, number]> => {
      const limit = maxLength(type, c);
      return limit === null ? [] : [[c.name, limit]];
    }),
  ]),
);

function tooLong(type: RecordType, row: Row): string | null {
  for (const [column, limit] of LIMITS.get(type) ?? []) {
    const value = row[column];
    if (typeof value === 'string' && value.length > limit) return `${column}: longer than ${limit} characters (${value.length}), the column's limit`;
  }
  return null;
}

export interface Rejection {
  recordIndex: number;
  type: string | null;
  reason: string;
  raw: string;
}

/** A file's records sorted into what gets written: rows per table (one per key), rejections, skips. */
export interface ValidatedFile {
  /** Rows per record type, keyed by the row's unique key: a later record with the same key replaces it. */
  rows: Map<RecordType, Map<string, Row>>;
  rejections: Rejection[];
  loaded: number;
  skipped: number;
}

/**
 * Validates every record of a file. Every element ends in exactly one of: a row, a rejection with its
 * reason and raw JSON, or a skip (types this daemon does not load).
 */
/** `firstIndex`: position in the file of `records[0]` (streamed files arrive in batches). */
export function validateRecords(records: readonly unknown[], now: string, firstIndex = 0): ValidatedFile {
  const out: ValidatedFile = { rows: new Map(), rejections: [], loaded: 0, skipped: 0 };
  for (let i = 0; i < records.length; i++) {
    const raw = records[i];
    const result = classifyRecord(raw, i, now);
    if (result.kind === 'row') {
      const overflow = tooLong(result.type, result.row);
      if (overflow !== null) {
        out.rejections.push({ recordIndex: firstIndex + i, type: result.type.type, reason: overflow, raw: rawJson(raw) });
        continue;
      }
      let table = out.rows.get(result.type);
      if (!table) out.rows.set(result.type, (table = new Map()));
      table.set(keyOf(result.type, result.row), result.row);
      out.loaded++;
    } else if (result.kind === 'skip') {
      out.skipped++;
    } else {
      out.rejections.push({ recordIndex: firstIndex + i, type: result.type, reason: result.reason, raw: rawJson(raw) });
    }
  }
  return out;
}

function keyOf(type: RecordType, row: Row): string {
  // JSON keeps ("a b","c") and ("a","b c") apart whatever characters the values hold.
  return JSON.stringify(type.key.map((column) => row[column]));
}

function rawJson(raw: unknown): string {
  return raw === undefined ? 'null' : JSON.stringify(raw);
}
