import type { Knex } from 'knex';
import type { Cell, RecordType } from '../records/types.js';
import type { Rejection, ValidatedFile } from '../validate.js';
import { DATABASE_TABLE, dialectOf, ERASURES_TABLE } from './schema.js';

/**
 * The erasure list (`erasures`, filled by `bucket-ingest erase`) as the loader applies it: a record of a later file
 * carrying an erased value is not stored, neither as a row nor as a rejection, so an erasure is not undone by a reload.
 *
 * Dropped before the upsert rather than deleted after it: the table then holds what a load of the bucket without those
 * records gives, whatever order files load in (a row deleted after its upsert would leave no position behind, and an
 * earlier file loaded later could bring an older version of the key back, or not, depending on timing).
 */

/** One erased field of a type: the column's place in a row, and the erased values as {@link textOf} gives them. */
interface ErasedField {
  readonly field: string;
  readonly column: number;
  readonly values: ReadonlySet<string>;
}

/**
 * A value as the erasure list compares it: a string as itself, a number or boolean as its JSON text; anything else
 * (null, objects) is never erased. PII values are compared as the hash, which is what rows and rejections hold.
 */
export function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') return String(value);
  return undefined;
}

/** One entry of the list: `value` is the hash for a PII field, the value itself otherwise. */
export interface Erasure {
  readonly type: string;
  readonly field: string;
  readonly value: string;
}

export class ErasureList {
  static readonly EMPTY = new ErasureList([]);
  private readonly byType = new Map<string, Array<{ field: string; values: Set<string> }>>();
  readonly size: number;

  constructor(entries: readonly Erasure[]) {
    for (const e of entries) {
      let fields = this.byType.get(e.type);
      if (!fields) this.byType.set(e.type, (fields = []));
      let f = fields.find((x) => x.field === e.field);
      if (!f) fields.push((f = { field: e.field, values: new Set() }));
      f.values.add(e.value);
    }
    this.size = entries.length;
  }

  /** The erased fields of `type` that are columns of it (a field no longer declared erases nothing from rows). */
  private fieldsOf(type: RecordType): ErasedField[] {
    const out: ErasedField[] = [];
    for (const f of this.byType.get(type.type) ?? []) {
      out.push({ field: f.field, column: type.columns.findIndex((c) => c.name === f.field), values: f.values });
    }
    return out;
  }

  /** Whether a rejected record (its raw JSON, of record type `type`) carries an erased value in its `data`. */
  rejectionErased(type: string | null, raw: string): boolean {
    const fields = type === null ? undefined : this.byType.get(type);
    if (!fields) return false;
    return rawCarries(raw, (data) => fields.some((f) => {
      const v = textOf(data[f.field]);
      return v !== undefined && f.values.has(v);
    }), (function* () {
      for (const f of fields) yield* f.values;
    })());
  }

  /**
   * `file` without the records that carry an erased value, and how many were dropped. The file itself is returned,
   * untouched, when nothing of it is erased (always when the list is empty: the hot path pays one size check).
   */
  apply(file: ValidatedFile): { file: ValidatedFile; erased: number } {
    if (this.size === 0) return { file, erased: 0 };
    let erased = 0;
    let rows: Map<RecordType, Cell[]> | undefined;
    for (const [type, cells] of file.rows) {
      const fields = this.fieldsOf(type).filter((f) => f.column >= 0);
      if (fields.length === 0) continue;
      const width = type.columns.length;
      const kept: Cell[] = [];
      let dropped = 0;
      for (let at = 0; at < cells.length; at += width) {
        if (fields.some((f) => { const v = textOf(cells[at + f.column]); return v !== undefined && f.values.has(v); })) dropped++;
        else for (let c = 0; c < width; c++) kept.push(cells[at + c] as Cell);
      }
      if (dropped === 0) continue;
      (rows ??= new Map(file.rows)).set(type, kept);
      erased += dropped;
    }
    const loaded = file.loaded - erased;
    let rejections: Rejection[] = file.rejections;
    if (file.rejections.some((r) => this.byType.has(r.type ?? ''))) {
      rejections = file.rejections.filter((r) => !this.rejectionErased(r.type, r.raw));
      erased += file.rejections.length - rejections.length;
    }
    if (erased === 0) return { file, erased: 0 };
    return { file: { ...file, rows: rows ?? file.rows, rejections, loaded }, erased };
  }
}

/**
 * Whether the `data` object of a stored raw record passes `test`. A rejection whose raw is not a JSON record (a CSV
 * row, stored as its text) has no fields to look at: it carries a value when its text holds one of `values` anywhere,
 * so an erasure may remove more of such rejections than the field alone would, never fewer.
 */
export function rawCarries(raw: string, test: (data: Record<string, unknown>) => boolean, values: Iterable<string>): boolean {
  let record: unknown;
  try {
    record = JSON.parse(raw);
  } catch {
    for (const v of values) if (v !== '' && raw.includes(v)) return true;
    return false;
  }
  const data = typeof record === 'object' && record !== null ? (record as { data?: unknown }).data : undefined;
  return typeof data === 'object' && data !== null && !Array.isArray(data) && test(data as Record<string, unknown>);
}

/** The list last read per database, and what it was read at (its row count and highest id), so it is read again only when it changed. */
const cached = new WeakMap<Knex, { stamp: string; list: ErasureList }>();

/**
 * The erasure list as of `trx`, a loader's transaction, read at its start. On PostgreSQL and MySQL it first takes a
 * shared lock on the database's identity row, which `erase` takes exclusively: a commit in flight while an erasure
 * is made either finishes first (and `erase` then deletes what it wrote) or waits for the erasure and sees it. SQLite
 * has one writer at a time, and a transaction that read the list before an erasure committed cannot write after it
 * (SQLITE_BUSY_SNAPSHOT: retried, and the list read again). Costs one small query per transaction; the rows are read
 * again only when they changed.
 */
export async function erasuresIn(trx: Knex.Transaction, db: Knex): Promise<ErasureList> {
  if (dialectOf(trx) !== 'better-sqlite3') await trx(DATABASE_TABLE).select('id').forShare();
  const [row] = (await trx(ERASURES_TABLE).count({ n: '*' }).max({ top: 'id' })) as Array<{ n: number | string; top: number | string | null }>;
  const stamp = `${Number(row?.n ?? 0)}:${String(row?.top ?? '')}`;
  const known = cached.get(db);
  if (known?.stamp === stamp) return known.list;
  const list = Number(row?.n ?? 0) === 0
    ? ErasureList.EMPTY
    : new ErasureList((await trx(ERASURES_TABLE).select('type', 'field', 'value')) as Erasure[]);
  cached.set(db, { stamp, list });
  return list;
}
