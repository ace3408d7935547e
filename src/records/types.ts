import type * as t from 'io-ts';

/** A value that fits a column in every supported dialect. */
export type Cell = string | number | boolean | null;

/** One row ready for the database: column name → value. */
export type Row = Record<string, Cell>;

/** Column kinds the migrations know how to create in every dialect. */
export type ColumnKind = 'string' | 'text' | 'bigint' | 'integer' | 'float' | 'boolean' | 'date' | 'timestamp';

export interface ColumnSpec {
  readonly name: string;
  readonly kind: ColumnKind;
  /** NULL allowed (an optional or nullable property); absent: NOT NULL. */
  readonly nullable?: boolean;
}

/**
 * One record type of the bucket (`{"type": T, "data": {...}}`): how to validate its `data`, where it goes,
 * and which columns identify a row. Declared by a schema file (schemas/*.json) and compiled by src/schemas/.
 */
export interface RecordType<A = unknown> {
  /** The value of the record's `type` field, e.g. `song`. */
  readonly type: string;
  /** Target table, e.g. `songs`. */
  readonly table: string;
  /** io-ts codec for the record's `data` object; extra fields are ignored. */
  readonly codec: t.Decoder<unknown, A>;
  /** The data columns this type writes (provenance `source_key`, `loaded_at` are added by the loader). */
  readonly columns: readonly ColumnSpec[];
  /** Columns of the unique key used for upserts, in order. */
  readonly key: readonly string[];
  /** The index in `columns` of each key column, in key order. */
  readonly keyCells: readonly number[];
  /** Builds the row from decoded data. `now` is the load time as UTC ISO-8601. */
  toRow(data: A, now: string): Row;
  /**
   * A type with personal data (`x-pii`): the record (`{"type", "data"}`) as a rejection stores it, with those values
   * hashed. Absent for a type without: its records are stored as they came.
   */
  readonly redact?: (record: Readonly<Record<string, unknown>>) => Record<string, unknown>;
  /**
   * A type with personal data: the same type for records as their rejections stored them (`redact`), whose personal
   * values are already hashes: each is taken as a stored hash, not checked or hashed again (`reprocess --rejected`).
   */
  readonly stored?: RecordType<A>;
}
