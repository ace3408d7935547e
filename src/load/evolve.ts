import type { Knex } from 'knex';
import type { Cell, ColumnSpec } from '../records/types.js';
import type { Catalog } from '../schemas/catalog.js';
import type { SchemaRecordType } from '../schemas/compile.js';
import { addColumn, dialectOf, keyIndexName, PROVENANCE, recordTableDefinition, tableOptions } from './schema.js';
import { readTableState, storageTypeOf, type ColumnState, type StorageType, type TableState } from './table-state.js';

/**
 * Schema evolution, planned: how each record table differs from its schema, and the DDL that makes it match. A
 * change that loses nothing (a new optional or defaulted column, a wider type, NOT NULL relaxed) is `safe` and runs
 * at start-up; one that could lose or corrupt data (a column removed, a type narrowed, NULL made NOT NULL, a new
 * required column, a key changed) is not, and runs only through `bucket-ingest schema apply`. Where the rows stored
 * would not survive a change (values too long for the narrower column, NULLs, duplicates under the new key, rows
 * with no value for a new required column), it is `blocked`: nothing runs it, the schema or the rows must change.
 *
 * Only the catalogue is read, except for a change that depends on the rows: then one aggregate query per change
 * (never a scan at an ordinary start, where nothing changed). Running the statements is evolve-apply.ts.
 */

export interface Change {
  /** `add`, `drop` a column, `alter` one (`type` when its storage type changes, else only its nullability), or the `key`. */
  readonly kind: 'add' | 'drop' | 'alter' | 'type' | 'key';
  readonly table: string;
  /** The column, or `key` for the key index. */
  readonly column: string;
  /** What changes, in words: `added (NULL in existing rows)`, `narrowed from text to varchar(512)`. */
  readonly what: string;
  readonly safe: boolean;
  /** Why the rows stored forbid it (then neither start-up nor `schema apply` runs it), else null. */
  readonly blocked: string | null;
}

export interface Statement {
  readonly sql: string;
  /** False for a statement of an unsafe change (or of a table rebuilt for one): only `schema apply` runs it. */
  readonly safe: boolean;
}

/** One column as the table has it and as the schema wants it (null: absent on that side). */
export interface ColumnComparison {
  readonly name: string;
  readonly table: { readonly type: StorageType; readonly nullable: boolean } | null;
  readonly schema: { readonly type: StorageType; readonly nullable: boolean } | null;
}

export interface TablePlan {
  readonly table: string;
  readonly type: string;
  readonly file: string;
  readonly exists: boolean;
  readonly columns: readonly ColumnComparison[];
  readonly key: { readonly table: readonly string[] | null; readonly schema: readonly string[] };
  readonly changes: readonly Change[];
  readonly statements: readonly Statement[];
}

export interface EvolutionPlan {
  readonly tables: readonly TablePlan[];
}

/** Every change of the plan, in table order. */
export function changesOf(plan: EvolutionPlan): Change[] {
  return plan.tables.flatMap((t) => [...t.changes]);
}

type Comparison = 'same' | 'wider' | 'narrower' | 'other';

function varcharLength(type: StorageType): number | null {
  const m = /^varchar\((\d+)\)$/.exec(type);
  return m ? Number(m[1]) : null;
}

/** How `to` relates to `from`: the same, one that holds every value of `from`, one that holds fewer, or another kind. */
function compareTypes(from: StorageType, to: StorageType): Comparison {
  if (from === to) return 'same';
  const n = varcharLength(from);
  const m = varcharLength(to);
  if (n !== null) return m !== null ? (m > n ? 'wider' : 'narrower') : to === 'text' ? 'wider' : 'other';
  if (from === 'text') return m !== null ? 'narrower' : 'other';
  // 64-bit integers the daemon stores are safe integers (the codecs refuse others): a double holds each exactly.
  const numbers: Record<string, number> = { integer: 0, bigint: 1, float: 2 };
  const a = numbers[from];
  const b = numbers[to];
  if (a !== undefined && b !== undefined) return b > a ? 'wider' : 'narrower';
  return 'other';
}

/** The value a new NOT NULL column takes in existing rows: its property's `default` (or what derives from it). */
function defaultOf(type: SchemaRecordType, column: string): Cell | undefined {
  const derived = type.spec.derived.find((d) => d.name === column);
  if (derived?.derive === 'load-time') return undefined;
  const source = type.spec.properties.find((p) => p.name === (derived === undefined ? column : derived.from));
  if (source === undefined || !source.hasDefault || source.default === null) return undefined;
  const defaults = Object.fromEntries(type.spec.properties.filter((p) => p.hasDefault).map((p) => [p.name, p.default]));
  const value = type.toRow(defaults, '')[column];
  return value === null ? undefined : value;
}

const LENGTH_FUNCTION: Record<string, string> = { 'better-sqlite3': 'length', pg: 'char_length', mysql2: 'char_length' };

/** One number from an aggregate query (`n`). */
async function count(db: Knex, sql: string, bindings: readonly Knex.RawBinding[]): Promise<number> {
  const r = (await db.raw(sql, bindings)) as unknown;
  const rows = dialectOf(db) === 'pg' ? (r as { rows: Array<{ n: unknown }> }).rows : dialectOf(db) === 'mysql2' ? (r as [Array<{ n: unknown }>])[0] : (r as Array<{ n: unknown }>);
  return Number(rows[0]?.n ?? 0);
}

const INT32 = [-(2 ** 31), 2 ** 31 - 1] as const;
const SAFE = [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER] as const;

/**
 * Why the stored values of `column` do not fit `to` (null: they all do). Lengths are the database's own count of
 * characters (SQLite length, PostgreSQL and MySQL char_length: code points), the measure its VARCHAR(N) enforces; the
 * daemon's limits count UTF-16 code units, never fewer, so a value it accepted under the old limit is never cut here.
 */
async function narrowingBlocked(db: Knex, table: string, column: string, to: StorageType): Promise<string | null> {
  const m = varcharLength(to);
  if (m !== null) {
    const fn = LENGTH_FUNCTION[dialectOf(db)] as string;
    const n = await count(db, `SELECT COUNT(*) AS n FROM ?? WHERE ${fn}(??) > ?`, [table, column, m]);
    return n === 0 ? null : `${n} stored value(s) are longer than ${m} characters`;
  }
  const [lo, hi] = to === 'integer' ? INT32 : SAFE;
  const n = await count(db, 'SELECT COUNT(*) AS n FROM ?? WHERE ?? < ? OR ?? > ? OR ?? <> ROUND(??)', [table, column, lo, column, hi, column, column]);
  return n === 0 ? null : `${n} stored value(s) are not ${to === 'integer' ? '32-bit' : 'safe'} integers`;
}

function describeKey(key: readonly string[] | null): string {
  return key === null ? 'none' : `(${key.join(', ')})`;
}

function storageOf(spec: ColumnSpec, type: SchemaRecordType, provenance: boolean): { type: StorageType; nullable: boolean } {
  return { type: storageTypeOf(provenance ? null : type, spec), nullable: spec.nullable === true };
}

/** The changes that make `state` (null: no table) the table of `type`, with what stops each, if anything. */
async function compareTable(db: Knex, type: SchemaRecordType, state: TableState): Promise<{ columns: ColumnComparison[]; changes: Change[] }> {
  const wanted = [...type.columns.map((c) => ({ spec: c, provenance: false })), ...PROVENANCE.map((c) => ({ spec: c, provenance: true }))];
  const have = new Map<string, ColumnState>(state.columns.map((c) => [c.name, c]));
  const columns: ColumnComparison[] = [];
  const changes: Change[] = [];
  const change = (kind: Change['kind'], column: string, what: string, safe: boolean, blocked: string | null = null): void => {
    changes.push({ kind, table: type.table, column, what, safe, blocked });
  };
  let rows: number | undefined;
  const rowCount = async (): Promise<number> => (rows ??= await count(db, 'SELECT COUNT(*) AS n FROM ??', [type.table]));
  const key = state.key;
  const keyChanged = key === null || key.length !== type.key.length || key.some((k, i) => k !== type.key[i]);
  if (keyChanged) {
    let blocked: string | null = null;
    // A key column not in the table yet is a new required column: what stops it is said there.
    if (type.key.every((k) => have.has(k))) {
      const groups = await count(db, 'SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM ?? GROUP BY ?? HAVING COUNT(*) > 1) d', [type.table, [...type.key]]);
      if (groups > 0) blocked = `${groups} key value(s) are held by more than one row under the new key`;
    }
    change('key', 'key', `key changed from ${describeKey(key)} to ${describeKey(type.key)}`, false, blocked);
  }
  for (const { spec, provenance } of wanted) {
    const schema = storageOf(spec, type, provenance);
    const current = have.get(spec.name);
    columns.push({ name: spec.name, table: current === undefined ? null : { type: current.type, nullable: current.nullable }, schema });
    if (current === undefined) {
      const value = schema.nullable ? undefined : defaultOf(type, spec.name);
      if (schema.nullable) change('add', spec.name, 'added (NULL in existing rows)', true);
      else if (value !== undefined) change('add', spec.name, `added (${JSON.stringify(value)}, its default, in existing rows)`, true);
      else {
        const n = await rowCount();
        change('add', spec.name, 'added, required and without a default', false,
          n === 0 ? null : `the ${n} existing row(s) have no value for it (make it optional, or give it a default)`);
      }
      continue;
    }
    const parts: string[] = [];
    let safe = true;
    let blocked: string | null = null;
    const relation = compareTypes(current.type, schema.type);
    if (relation === 'wider') parts.push(`widened from ${current.type} to ${schema.type}`);
    else if (relation === 'narrower') {
      parts.push(`narrowed from ${current.type} to ${schema.type}`);
      safe = false;
      blocked = await narrowingBlocked(db, type.table, spec.name, schema.type);
    } else if (relation === 'other') {
      parts.push(`changed from ${current.type} to ${schema.type}`);
      safe = false;
      blocked = `no conversion from ${current.type} to ${schema.type} keeps every value (change the schema back, or remove the property, apply, and add it again as a new column)`;
    }
    if (current.nullable && !schema.nullable) {
      parts.push('made NOT NULL');
      safe = false;
      const nulls = await count(db, 'SELECT COUNT(*) AS n FROM ?? WHERE ?? IS NULL', [type.table, spec.name]);
      if (nulls > 0 && blocked === null) blocked = `${nulls} stored row(s) hold NULL in it`;
    } else if (!current.nullable && schema.nullable) parts.push('made nullable');
    if (parts.length > 0) change(relation === 'same' ? 'alter' : 'type', spec.name, parts.join(', '), safe, blocked);
  }
  const known = new Set(wanted.map((w) => w.spec.name));
  for (const c of state.columns) {
    if (known.has(c.name)) continue;
    columns.push({ name: c.name, table: { type: c.type, nullable: c.nullable }, schema: null });
    const values = await count(db, 'SELECT COUNT(??) AS n FROM ??', [c.name, type.table]);
    change('drop', c.name, `removed from the schema (dropping it deletes its ${values} stored value(s))`, false);
  }
  return { columns, changes };
}

function sqlOf(builder: Knex.SchemaBuilder, safe: boolean): Statement[] {
  return builder.toSQL().map((s) => ({ sql: s.sql, safe }));
}

/**
 * The statements of `changes` on `state`, made with knex's schema builder (so what is printed is what runs). SQLite
 * alters little in place: anything beyond adding a nullable or defaulted column rebuilds the table (a new table
 * made from the schema, the rows copied, the old one dropped, the new one renamed), inside the transaction.
 */
function statementsFor(db: Knex, type: SchemaRecordType, state: TableState, changes: readonly Change[]): Statement[] {
  if (changes.length === 0) return [];
  const byName = new Map<string, ColumnSpec & { provenance: boolean }>([
    ...type.columns.map((c) => [c.name, { ...c, provenance: false }] as const),
    ...PROVENANCE.map((c) => [c.name, { ...c, provenance: true }] as const),
  ]);
  const defaults = new Map<string, Cell>();
  for (const c of type.columns) {
    const value = defaultOf(type, c.name);
    if (value !== undefined && state.columns.every((s) => s.name !== c.name)) defaults.set(c.name, value);
  }
  const allSafe = changes.every((c) => c.safe);
  const onlyAdds = changes.every((c) => c.kind === 'add' && c.safe);
  const add = (c: Change): Statement[] => sqlOf(db.schema.alterTable(type.table, (t) => {
    const spec = byName.get(c.column) as ColumnSpec & { provenance: boolean };
    const b = addColumn(t, spec.provenance ? null : type, spec);
    const value = defaults.get(c.column);
    if (value !== undefined) b.defaultTo(value);
  }), c.safe);
  if (dialectOf(db) === 'better-sqlite3' && !onlyAdds) {
    const next = `_evolve_${type.table}`;
    const kept = [...byName.keys()].filter((name) => state.columns.some((c) => c.name === name));
    const quoted = (sql: string, bindings: readonly Knex.RawBinding[]): Statement => ({ sql: db.raw(sql, bindings).toQuery(), safe: allSafe });
    return [
      quoted('DROP INDEX IF EXISTS ??', [keyIndexName(type.table)]),
      ...sqlOf(db.schema.createTable(next, recordTableDefinition(type, () => undefined, defaults)), allSafe),
      quoted('INSERT INTO ?? (??) SELECT ?? FROM ??', [next, kept, kept, type.table]),
      quoted('DROP TABLE ??', [type.table]),
      quoted('ALTER TABLE ?? RENAME TO ??', [next, type.table]),
    ];
  }
  const out: Statement[] = [];
  const keyChange = changes.find((c) => c.kind === 'key');
  if (keyChange !== undefined && state.key !== null) {
    const old = state.key;
    out.push(...sqlOf(db.schema.alterTable(type.table, (t) => { t.dropUnique([...old], keyIndexName(type.table)); }), false));
  }
  for (const c of changes) {
    if (c.kind === 'key') continue;
    const spec = byName.get(c.column);
    if (c.kind === 'drop' || spec === undefined) out.push(...sqlOf(db.schema.alterTable(type.table, (t) => { t.dropColumn(c.column); }), c.safe));
    else if (c.kind === 'add') out.push(...add(c));
    else {
      out.push(...sqlOf(db.schema.alterTable(type.table, (t) => {
        addColumn(t, spec.provenance ? null : type, spec).alter(c.kind === 'type' ? undefined : { alterType: false });
      }), c.safe));
    }
  }
  if (keyChange !== undefined) {
    out.push(...sqlOf(db.schema.alterTable(type.table, (t) => { t.unique([...type.key], { indexName: keyIndexName(type.table) }); }), false));
  }
  return out;
}

/**
 * Compares every record table of `catalog` with its schema and plans the statements that make them match. Reads
 * only; `db` may be a transaction (schema apply plans again inside its own).
 */
export async function planEvolution(db: Knex, catalog: Catalog): Promise<EvolutionPlan> {
  const options = await tableOptions(db);
  const tables: TablePlan[] = [];
  for (const type of catalog.types) {
    const state = await readTableState(db, type.table);
    const base = { table: type.table, type: type.type, file: type.file };
    if (state === null) {
      const statements = sqlOf(db.schema.createTable(type.table, recordTableDefinition(type, options)), true);
      const columns = [...type.columns.map((c) => ({ c, p: false })), ...PROVENANCE.map((c) => ({ c, p: true }))]
        .map(({ c, p }) => ({ name: c.name, table: null, schema: storageOf(c, type, p) }));
      tables.push({ ...base, exists: false, columns, key: { table: null, schema: type.key }, changes: [], statements });
      continue;
    }
    const { columns, changes } = await compareTable(db, type, state);
    tables.push({ ...base, exists: true, columns, key: { table: state.key, schema: type.key }, changes, statements: statementsFor(db, type, state, changes) });
  }
  return { tables };
}
