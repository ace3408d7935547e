import type { Knex } from 'knex';
import type { Cell, ColumnKind, RecordType } from '../records/types.js';
import { PROVENANCE, REJECTED_TABLE } from './schema.js';
import { keyAt, type Rejection } from '../validate.js';
import type { Dialect } from './database.js';

/**
 * Rows per statement. SQLite allows 32,766 bound values per statement (3.32+), PostgreSQL and MySQL 65,535;
 * 500 rows × ≤ 9 columns stays far below all three.
 */
export const ROWS_PER_STATEMENT = 500;

const quote = (dialect: Dialect, name: string): string => (dialect === 'mysql' ? `\`${name}\`` : `"${name}"`);

/** A named prepared statement for pg: parsed and planned once per connection. */
interface PgStatement { name: string; text: string; values: unknown[] }
interface PgConnection { query(q: PgStatement): Promise<unknown> }

/** PostgreSQL array element type per column kind, for `unnest($n::T[])`. */
const PG_ARRAY_TYPE: Record<ColumnKind, string> = {
  string: 'text', text: 'text', bigint: 'int8', integer: 'int4', float: 'float8', boolean: 'bool', date: 'date', timestamp: 'timestamptz',
};

/** Compiles the upsert statements of each dialect, once per shape. */
export class UpsertCompiler {
  private readonly cache = new Map<string, string>();
  private readonly unnestCache = new Map<string, string>();

  constructor(readonly dialect: Dialect) {}

  columnsOf(type: RecordType): string[] {
    return [...type.columns.map((c) => c.name), ...PROVENANCE.map((c) => c.name)];
  }

  /**
   * Builds `INSERT … VALUES (…),(…) ON CONFLICT (key) DO UPDATE SET … WHERE excluded.source_position >=
   * t.source_position` for `rows` rows. When two files hold the same key, the file later in the bucket index
   * wins whatever order files are loaded in (concurrent workers, retries of failed files, restarts), so every
   * run converges to the same tables; a file loaded again replaces its own rows (equal positions). A plain multi-row
   * VALUES list, not knex's SQLite `INSERT … SELECT … UNION ALL` form, which is several times slower.
   * Cached per (table, rows), so a run compiles at most two statements per table.
   */
  sql(type: RecordType, rows: number): string {
    const cacheKey = `${type.table}:${rows}`;
    let sql = this.cache.get(cacheKey);
    if (sql === undefined) {
      const q = (n: string): string => quote(this.dialect, n);
      const columns = this.columnsOf(type);
      const tuple = `(${columns.map(() => '?').join(',')})`;
      const values = Array.from({ length: rows }, () => tuple).join(',');
      sql = `INSERT INTO ${q(type.table)} (${columns.map(q).join(',')}) VALUES ${values} ${this.conflict(type, columns)}`;
      this.cache.set(cacheKey, sql);
    }
    return sql;
  }

  /**
   * PostgreSQL: one statement for any number of rows, `INSERT … SELECT FROM unnest($1::T[], …) ON CONFLICT …`,
   * one array parameter per column plus `loaded_at` as a scalar. The text is the same whatever the batch size, so
   * one named prepared statement per table serves every batch, and a batch binds ~8 parameters instead of one per
   * value (measured ~1.2x the rows/s of 1,000-row VALUES lists, PERFORMANCE-NOTES).
   */
  unnestSql(type: RecordType): string {
    let sql = this.unnestCache.get(type.table);
    if (sql === undefined) {
      const q = (n: string): string => quote('postgres', n);
      const arrays = [...type.columns, ...PROVENANCE.filter((c) => c.name !== 'loaded_at')];
      const columns = [...arrays.map((c) => c.name), 'loaded_at'];
      sql = `INSERT INTO ${q(type.table)} (${columns.map(q).join(',')}) ` +
        `SELECT u.*, $${arrays.length + 1}::text FROM unnest(${arrays.map((c, i) => `$${i + 1}::${PG_ARRAY_TYPE[c.kind]}[]`).join(',')}) AS u ` +
        this.conflict(type, columns);
      this.unnestCache.set(type.table, sql);
    }
    return sql;
  }

  /** What a conflicting key does: take the new row only if its file is not earlier in the index. */
  private conflict(type: RecordType, columns: readonly string[]): string {
    const q = (n: string): string => quote(this.dialect, n);
    // source_position last: MySQL applies the assignments in order, and the others compare against it.
    const updated = [...columns.filter((c) => !type.key.includes(c) && c !== 'source_position'), 'source_position'];
    const pos = q('source_position');
    return this.dialect === 'mysql'
      ? `ON DUPLICATE KEY UPDATE ${updated.map((c) => `${q(c)}=IF(VALUES(${pos})>=${pos},VALUES(${q(c)}),${q(c)})`).join(',')}`
      : `ON CONFLICT (${type.key.map(q).join(',')}) DO UPDATE SET ${updated.map((c) => `${q(c)}=excluded.${q(c)}`).join(',')} ` +
        `WHERE excluded.${pos}>=${q(type.table)}.${pos}`;
  }
}

interface PreparedStatement { run(...params: unknown[]): unknown }
interface BetterSqliteConnection { prepare(sql: string): PreparedStatement; inTransaction: boolean }

/** Prepared statements per better-sqlite3 connection: a new connection (after a reconnect) prepares again. */
const statements = new WeakMap<object, Map<string, PreparedStatement>>();

/**
 * The better-sqlite3 connection a knex transaction runs on, or null for the other drivers. Inside
 * `db.transaction(trx => …)` and its savepoints knex hands out exactly the connection that holds the
 * transaction, so statements run on it belong to the transaction and roll back with its savepoint.
 */
async function sqliteConnection(trx: Knex.Transaction): Promise<BetterSqliteConnection | null> {
  if (trx.client.config.client !== 'better-sqlite3') return null;
  const conn = (await trx.client.acquireConnection()) as BetterSqliteConnection;
  if (trx.isCompleted() || !conn.inTransaction) throw new Error('upsert outside its transaction');
  return conn;
}

function prepared(conn: BetterSqliteConnection, sql: string): PreparedStatement {
  let cache = statements.get(conn);
  if (!cache) statements.set(conn, (cache = new Map()));
  let statement = cache.get(sql);
  if (!statement) cache.set(sql, (statement = conn.prepare(sql)));
  return statement;
}

const sqliteValue = (v: Cell | undefined): string | number | null => (typeof v === 'boolean' ? (v ? 1 : 0) : v ?? null);

/**
 * Upserts one file's rows of one type: `cells` holds them flat, in `type.columns` order (see ValidatedFile),
 * already de-duplicated by key. On SQLite one prepared single-row upsert runs per row on the transaction's own
 * connection: no SQL text per batch, no re-prepare, no promise per statement (the fastest form measured, see
 * README Performance). Elsewhere multi-row statements (see upsertSourcedRows).
 */
export async function upsertRows(
  trx: Knex.Transaction, compiler: UpsertCompiler, type: RecordType, cells: readonly Cell[], provenance: { sourceKey: string; position: number; loadedAt: string },
): Promise<void> {
  const width = type.columns.length;
  const conn = await sqliteConnection(trx);
  if (conn) {
    const statement = prepared(conn, compiler.sql(type, 1));
    const params: Array<string | number | null> = new Array(width + 3);
    params[width] = provenance.sourceKey;
    params[width + 1] = provenance.position;
    params[width + 2] = provenance.loadedAt;
    for (let at = 0; at < cells.length; at += width) {
      for (let c = 0; c < width; c++) params[c] = sqliteValue(cells[at + c]);
      // Spread, not the array: better-sqlite3 reads arguments directly but an array element by element through V8's
      // API; ~10% less time binding and inserting (README, Performance).
      statement.run(...params);
    }
    return;
  }
  await upsertSourcedRows(trx, compiler, type, sourced(type, cells, provenance), provenance.loadedAt);
}

/**
 * A row with the file it came from (a group's rows of several files go in one statement): the row is
 * `cells[at … at + type.columns.length)`.
 */
export interface SourcedRow {
  cells: readonly Cell[];
  at: number;
  sourceKey: string;
  position: number;
}

function* sourced(type: RecordType, cells: readonly Cell[], provenance: { sourceKey: string; position: number }): Generator<SourcedRow> {
  for (let at = 0; at < cells.length; at += type.columns.length) yield { cells, at, sourceKey: provenance.sourceKey, position: provenance.position };
}

/** Rows per `unnest` statement on PostgreSQL (PERFORMANCE-NOTES: 5,000 measured best). */
export const PG_ROWS_PER_STATEMENT = 5000;

/** One file of a group written in shared statements: its rows per table (see ValidatedFile) and provenance. */
export interface GroupFile {
  sourceKey: string;
  /** The file's place in the bucket index: for a key in several files, the latest file's row wins. */
  position: number;
  rows: ReadonlyMap<RecordType, readonly Cell[]>;
}

/**
 * A group's rows of one table, each key once, in key order: row `i` is the row at cell `at[i]` of file `file[i]`
 * (indexes into the group). Two small-integer arrays rather than an object per row: a group holds up to ~20,000 rows,
 * and per-row objects cost the main thread more in garbage collection than the merge itself.
 */
export interface MergedTable {
  type: RecordType;
  file: Int32Array;
  at: Int32Array;
}

/**
 * Merges the group's rows of `type` by key: where files share a key, the row of the file latest in the index wins
 * (of equal positions, the one later in `files`), as the upsert itself would decide, since one statement may not
 * touch a row twice. Sorted by key, so every worker takes row locks in the same order (see upsertGroupRows).
 */
export function mergeTable(type: RecordType, files: readonly GroupFile[]): MergedTable {
  const width = type.columns.length;
  const index = new Map<string, number>();
  const file: number[] = [];
  const at: number[] = [];
  for (let f = 0; f < files.length; f++) {
    const cells = (files[f] as GroupFile).rows.get(type);
    if (cells === undefined) continue;
    const position = (files[f] as GroupFile).position;
    for (let a = 0; a < cells.length; a += width) {
      const key = keyAt(type, cells, a);
      const i = index.get(key);
      if (i === undefined) {
        index.set(key, file.length);
        file.push(f);
        at.push(a);
      } else if ((files[file[i] as number] as GroupFile).position <= position) {
        file[i] = f;
        at[i] = a;
      }
    }
  }
  const keys = [...index.keys()].sort();
  const merged: MergedTable = { type, file: new Int32Array(keys.length), at: new Int32Array(keys.length) };
  for (let j = 0; j < keys.length; j++) {
    const i = index.get(keys[j] as string) as number;
    merged.file[j] = file[i] as number;
    merged.at[j] = at[i] as number;
  }
  return merged;
}

/**
 * Upserts a group's rows, merged by key (mergeTable), in one order for every worker: tables by name,
 * each table's rows by key. Two workers committing groups that share keys then wait for each other; in the order their
 * files happened to list them, each could hold a row the other needs next (a deadlock, and a retry of both groups).
 */
export async function upsertGroupRows(trx: Knex.Transaction, compiler: UpsertCompiler, files: readonly GroupFile[], loadedAt: string): Promise<void> {
  const types = new Map<string, RecordType>();
  for (const f of files) for (const [type, cells] of f.rows) if (cells.length > 0) types.set(type.table, type);
  const order = [...types.keys()].sort();
  function* tables(): Generator<MergedTable> {
    for (const table of order) yield mergeTable(types.get(table) as RecordType, files);
  }
  if (compiler.dialect !== 'postgres') {
    for (const merged of tables()) await upsertSourcedRows(trx, compiler, merged.type, sourcedRows(merged, files), loadedAt);
    return;
  }
  // Every table's statements, in this order, one after another on the transaction's connection: the server runs each
  // while the next is built, the next table's merge included (waiting for each table left it idle between them).
  const pg = (await trx.client.acquireConnection()) as PgConnection;
  await runInOrder(pg, (function* () {
    for (const merged of tables()) yield* unnestStatements(compiler, merged.type, mergedRows(merged, files), loadedAt);
  })());
}

function* sourcedRows(merged: MergedTable, files: readonly GroupFile[]): Generator<SourcedRow> {
  for (let i = 0; i < merged.file.length; i++) {
    const f = files[merged.file[i] as number] as GroupFile;
    yield { cells: f.rows.get(merged.type) as readonly Cell[], at: merged.at[i] as number, sourceKey: f.sourceKey, position: f.position };
  }
}

/** A merged table's rows, read in place from the files' cells (no per-row objects, no column arrays). */
function mergedRows(merged: MergedTable, files: readonly GroupFile[]): UnnestRows {
  const cellsOf = files.map((f) => f.rows.get(merged.type) ?? []);
  const fileOf = (i: number): number => merged.file[i] as number;
  return {
    count: merged.file.length,
    cell: (i, c) => (cellsOf[fileOf(i)] as readonly Cell[])[(merged.at[i] as number) + c],
    sourceKey: (i) => (files[fileOf(i)] as GroupFile).sourceKey,
    position: (i) => (files[fileOf(i)] as GroupFile).position,
  };
}

/**
 * Upserts rows that each carry their own provenance (a group's rows of several files share statements). The
 * rows must hold each key once (PostgreSQL refuses to update one row twice in a statement). PostgreSQL: batches
 * of PG_ROWS_PER_STATEMENT rows as column arrays through `unnest`; MySQL: multi-row VALUES of ROWS_PER_STATEMENT.
 */
export async function upsertSourcedRows(trx: Knex.Transaction, compiler: UpsertCompiler, type: RecordType, rows: Iterable<SourcedRow>, loadedAt: string): Promise<void> {
  if (compiler.dialect === 'postgres') return upsertUnnest(trx, compiler, type, rows, loadedAt);
  const width = type.columns.length;
  let bindings: Cell[] = [];
  let count = 0;
  const flush = async (): Promise<void> => {
    if (count === 0) return;
    await trx.raw(compiler.sql(type, count), bindings);
    bindings = [];
    count = 0;
  };
  for (const { cells, at, sourceKey, position } of rows) {
    for (let c = 0; c < width; c++) bindings.push(cells[at + c] ?? null);
    bindings.push(sourceKey, position, loadedAt);
    if (++count === ROWS_PER_STATEMENT) await flush();
  }
  await flush();
}

async function upsertUnnest(trx: Knex.Transaction, compiler: UpsertCompiler, type: RecordType, rows: Iterable<SourcedRow>, loadedAt: string): Promise<void> {
  const pg = (await trx.client.acquireConnection()) as PgConnection;
  const list = [...rows];
  const row = (i: number): SourcedRow => list[i] as SourcedRow;
  await runInOrder(pg, unnestStatements(compiler, type, {
    count: list.length,
    cell: (i, c) => row(i).cells[row(i).at + c],
    sourceKey: (i) => row(i).sourceKey,
    position: (i) => row(i).position,
  }, loadedAt));
}

/** Rows to send as `unnest` arrays, read by index: column `c` of row `i`, and the file row `i` came from. */
interface UnnestRows {
  count: number;
  cell(i: number, c: number): Cell | undefined;
  sourceKey(i: number): string;
  position(i: number): number;
}

/** `rows` as `unnest` upserts of PG_ROWS_PER_STATEMENT rows each, every column's array literal read straight from them. */
function* unnestStatements(compiler: UpsertCompiler, type: RecordType, rows: UnnestRows, loadedAt: string): Generator<PgStatement> {
  const width = type.columns.length;
  const name = `bi_unnest_${type.table}`;
  const text = compiler.unnestSql(type);
  for (const [from, to] of batches(rows.count)) {
    const values: unknown[] = [];
    for (let c = 0; c < width; c++) values.push(arrayLiteral(from, to, (i) => rows.cell(i, c)));
    values.push(arrayLiteral(from, to, rows.sourceKey), arrayLiteral(from, to, rows.position), loadedAt);
    yield { name, text, values };
  }
}

/** `[from, to)` ranges of at most PG_ROWS_PER_STATEMENT over `count` rows. */
function* batches(count: number): Generator<[number, number]> {
  for (let from = 0; from < count; from += PG_ROWS_PER_STATEMENT) yield [from, Math.min(count, from + PG_ROWS_PER_STATEMENT)];
}

/**
 * Runs statements one after another on the connection, each built (by the iterable) while the one before runs on
 * the server, so the server never waits for a build and the connection never holds two: pg 8 warns when a query is
 * issued while another runs (pg 9 will refuse it). Stops at the first failure and throws it, or, if building a
 * statement threw, waits for the one running and throws that.
 */
async function runInOrder(pg: PgConnection, statements: Iterable<PgStatement>): Promise<void> {
  let running: Promise<unknown> | undefined;
  try {
    for (const statement of statements) {
      if (running) await running;
      running = pg.query(statement);
    }
  } catch (err) {
    await running?.catch(() => undefined);
    throw err;
  }
  await running;
}

/**
 * Values `value(from)` … `value(to - 1)` as a PostgreSQL array literal for `$n::T[]`, e.g. `{"a","say \"hi\"",NULL,12,t}`:
 * what pg's own serializer sends, appended to one string as it goes (strings quoted, `\` and `"` escaped only where a
 * value holds them).
 */
function arrayLiteral(from: number, to: number, value: (i: number) => Cell | undefined): string {
  let literal = '{';
  for (let i = from; i < to; i++) {
    if (i > from) literal += ',';
    const v = value(i);
    if (v === null || v === undefined) literal += 'NULL';
    else if (typeof v === 'boolean') literal += v ? 't' : 'f';
    else if (typeof v === 'number') literal += String(v);
    else {
      literal += '"';
      literal += v.includes('"') || v.includes('\\') ? v.replace(ESCAPED, '\\$&') : v;
      literal += '"';
    }
  }
  return `${literal}}`;
}

const ESCAPED = /["\\]/g;

/** The file a rejection came from: its key, and its place in the bucket index (replay orders by it, see replay.ts). */
export interface RejectedFrom {
  sourceKey: string;
  position: number;
}

/**
 * Replaces a file's stored rejections, so reprocessing a file keeps the counts exact. Rejections belong to a key of
 * one bucket (`bucket`, its id): another bucket sharing the database keeps its own, even for a file of the same name.
 */
export async function replaceRejections(trx: Knex.Transaction, bucket: string, from: RejectedFrom, rejections: readonly Rejection[], rejectedAt: string): Promise<void> {
  await deleteRejections(trx, bucket, from.sourceKey);
  await insertRejections(trx, bucket, from, rejections, rejectedAt);
}

export async function deleteRejections(trx: Knex.Transaction, bucket: string, sourceKey: string): Promise<void> {
  const conn = await sqliteConnection(trx);
  if (conn) prepared(conn, `DELETE FROM "${REJECTED_TABLE}" WHERE "bucket" = ? AND "source_key" = ?`).run(bucket, sourceKey);
  else await trx(REJECTED_TABLE).where({ bucket, source_key: sourceKey }).delete();
}

/** Rejections of several files at once (batched group writes on PostgreSQL and MySQL). */
export async function replaceGroupRejections(
  trx: Knex.Transaction, bucket: string, files: ReadonlyArray<RejectedFrom & { rejections: readonly Rejection[] }>, rejectedAt: string,
): Promise<void> {
  if (trx.client.config.client === 'pg') return replaceGroupRejectionsPg(trx, bucket, files, rejectedAt);
  const keys = files.map((f) => f.sourceKey);
  for (let i = 0; i < keys.length; i += ROWS_PER_STATEMENT) {
    await trx(REJECTED_TABLE).where('bucket', bucket).whereIn('source_key', keys.slice(i, i + ROWS_PER_STATEMENT)).delete();
  }
  const rows = files.flatMap((f) => f.rejections.map((r) => ({
    bucket, source_key: f.sourceKey, source_position: f.position, record_index: r.recordIndex, type: r.type, reason: r.reason, raw: r.raw, rejected_at: rejectedAt,
  })));
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) await trx(REJECTED_TABLE).insert(rows.slice(i, i + ROWS_PER_STATEMENT));
}

const PG_DELETE_REJECTIONS = `DELETE FROM "${REJECTED_TABLE}" WHERE "bucket" = $2 AND "source_key" = ANY($1::text[])`;
const PG_INSERT_REJECTIONS = `INSERT INTO "${REJECTED_TABLE}" ("source_key","source_position","record_index","type","reason","raw","rejected_at","bucket") ` +
  'SELECT u.*, $7::text, $8::text FROM unnest($1::text[], $2::int8[], $3::int4[], $4::text[], $5::text[], $6::text[]) AS u';

/**
 * PostgreSQL: one `DELETE … = ANY($1)`, then `unnest` inserts of PG_ROWS_PER_STATEMENT rejections, as named statements
 * (knex's multi-row INSERT built and bound ~3,000 values per 500 rows).
 */
async function replaceGroupRejectionsPg(
  trx: Knex.Transaction, bucket: string, files: ReadonlyArray<RejectedFrom & { rejections: readonly Rejection[] }>, rejectedAt: string,
): Promise<void> {
  const pg = (await trx.client.acquireConnection()) as PgConnection;
  const rows = files.flatMap((f) => f.rejections.map((r) => ({ ...r, sourceKey: f.sourceKey, position: f.position })));
  const row = (i: number): Rejection & RejectedFrom => rows[i] as Rejection & RejectedFrom;
  await runInOrder(pg, (function* () {
    yield { name: 'bi_delete_rejections', text: PG_DELETE_REJECTIONS, values: [arrayLiteral(0, files.length, (i) => files[i]?.sourceKey), bucket] };
    for (const [from, to] of batches(rows.length)) {
      yield {
        name: 'bi_insert_rejections',
        text: PG_INSERT_REJECTIONS,
        values: [
          arrayLiteral(from, to, (i) => row(i).sourceKey),
          arrayLiteral(from, to, (i) => row(i).position),
          arrayLiteral(from, to, (i) => row(i).recordIndex),
          arrayLiteral(from, to, (i) => row(i).type),
          arrayLiteral(from, to, (i) => row(i).reason),
          arrayLiteral(from, to, (i) => row(i).raw),
          rejectedAt,
          bucket,
        ],
      };
    }
  })());
}

export async function insertRejections(trx: Knex.Transaction, bucket: string, from: RejectedFrom, rejections: readonly Rejection[], rejectedAt: string): Promise<void> {
  const { sourceKey, position } = from;
  const conn = await sqliteConnection(trx);
  if (conn) {
    const insert = prepared(conn, `INSERT INTO "${REJECTED_TABLE}" ("bucket","source_key","source_position","record_index","type","reason","raw","rejected_at") VALUES (?,?,?,?,?,?,?,?)`);
    for (const r of rejections) insert.run(bucket, sourceKey, position, r.recordIndex, r.type, r.reason, r.raw, rejectedAt);
    return;
  }
  for (let i = 0; i < rejections.length; i += ROWS_PER_STATEMENT) {
    const batch = rejections.slice(i, i + ROWS_PER_STATEMENT).map((r) => ({
      bucket, source_key: sourceKey, source_position: position, record_index: r.recordIndex, type: r.type, reason: r.reason, raw: r.raw, rejected_at: rejectedAt,
    }));
    await trx(REJECTED_TABLE).insert(batch);
  }
}
