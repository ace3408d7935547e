import { classifyRecord } from './records/classify.js';
import type { RecordType, Row } from './records/types.js';

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
export function validateRecords(records: readonly unknown[], now: string): ValidatedFile {
  const out: ValidatedFile = { rows: new Map(), rejections: [], loaded: 0, skipped: 0 };
  for (let i = 0; i < records.length; i++) {
    const raw = records[i];
    const result = classifyRecord(raw, i, now);
    if (result.kind === 'row') {
      let table = out.rows.get(result.type);
      if (!table) out.rows.set(result.type, (table = new Map()));
      table.set(keyOf(result.type, result.row), result.row);
      out.loaded++;
    } else if (result.kind === 'skip') {
      out.skipped++;
    } else {
      out.rejections.push({ recordIndex: i, type: result.type, reason: result.reason, raw: rawJson(raw) });
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
