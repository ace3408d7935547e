import type { Knex } from 'knex';
import type { ColumnSpec, RecordType } from '../records/types.js';
import { dialectOf, keyIndexName, maxLength } from './schema.js';

/**
 * What a record table is in the database, read from the dialect's catalogue (never from the rows), in the terms
 * schema evolution compares: a column's storage type as the daemon creates it, its nullability, and the key index.
 */

/**
 * A column's storage type, dialect-neutral: `varchar(N)` (N in characters, as the database counts them), `text`,
 * `integer` (32 bits), `bigint`, `float` (double), `boolean`, `date`, `timestamp`; anything the daemon never
 * creates reads as `other <the database's name>`.
 */
export type StorageType = string;

export interface ColumnState {
  readonly name: string;
  readonly type: StorageType;
  readonly nullable: boolean;
}

export interface TableState {
  readonly table: string;
  /** In the database's column order. */
  readonly columns: readonly ColumnState[];
  /** The columns of the unique index `<table>_key`, in index order; null when there is no such index. */
  readonly key: readonly string[] | null;
}

/** The storage type the daemon gives `column` of `type` (null `type`: a provenance column), see `addColumn`. */
export function storageTypeOf(type: RecordType | null, column: ColumnSpec): StorageType {
  const limit = type ? maxLength(type, column) : column.kind === 'string' ? 512 : null;
  if (column.kind === 'string') return `varchar(${limit ?? 512})`;
  if (column.kind === 'text') return limit === null ? 'text' : `varchar(${limit})`;
  return column.kind;
}

/**
 * The names knex's `columnInfo()` gives, per dialect (SQLite: the declared type of PRAGMA table_info; PostgreSQL and
 * MySQL: information_schema.columns' data_type), for what `addColumn` creates.
 */
const NAMES: Readonly<Record<string, string>> = {
  'varchar': 'varchar', 'character varying': 'varchar',
  'text': 'text', 'longtext': 'text', 'mediumtext': 'text',
  'integer': 'integer', 'int': 'integer',
  'bigint': 'bigint',
  'float': 'float', 'double': 'float', 'double precision': 'float',
  // MySQL's BOOLEAN is TINYINT(1); the daemon makes no other TINYINT.
  'boolean': 'boolean', 'tinyint': 'boolean',
  'date': 'date',
  'datetime': 'timestamp', 'timestamp': 'timestamp', 'timestamp with time zone': 'timestamp', 'timestamptz': 'timestamp',
};

function storageTypeFromInfo(info: Knex.ColumnInfo): StorageType {
  const name = NAMES[info.type.toLowerCase()];
  if (name === undefined) return `other ${info.type}`;
  return name === 'varchar' ? `varchar(${Number(info.maxLength)})` : name;
}

/** The key index's columns in order, or null when the table has no index of that name. */
async function keyColumns(db: Knex, table: string): Promise<string[] | null> {
  const index = keyIndexName(table);
  const dialect = dialectOf(db);
  let names: string[];
  if (dialect === 'better-sqlite3') {
    const rows = (await db.raw('SELECT name FROM pragma_index_info(?) ORDER BY seqno', [index])) as Array<{ name: string }>;
    names = rows.map((r) => r.name);
  } else if (dialect === 'pg') {
    const r = (await db.raw(
      `SELECT a.attname AS name FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
       WHERE c.relname = ? AND n.nspname = current_schema()
       ORDER BY array_position(i.indkey::int2[], a.attnum)`, [index])) as { rows: Array<{ name: string }> };
    names = r.rows.map((x) => x.name);
  } else {
    const [rows] = (await db.raw(
      'SELECT column_name AS name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ? ORDER BY seq_in_index',
      [table, index])) as [Array<{ name: string }>];
    names = rows.map((x) => x.name);
  }
  return names.length === 0 ? null : names;
}

/** The table as the database has it, or null when there is no such table. Reads the catalogue only. */
export async function readTableState(db: Knex, table: string): Promise<TableState | null> {
  if (!(await db.schema.hasTable(table))) return null;
  const info = await db(table).columnInfo();
  const columns = Object.entries(info).map(([name, c]) => ({ name, type: storageTypeFromInfo(c), nullable: c.nullable }));
  return { table, columns, key: await keyColumns(db, table) };
}
