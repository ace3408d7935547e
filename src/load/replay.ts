import type { Knex } from 'knex';
import picomatch from 'picomatch';
import { describeError, IngestError } from '../errors.js';
import { reasonPattern } from '../inspect/reasons.js';
import { classifyRecord, type RecordTypes } from '../records/classify.js';
import type { Cell, RecordType } from '../records/types.js';
import type { Catalog } from '../schemas/catalog.js';
import { withRetries } from '../sources/retry.js';
import { keyAt } from '../validate.js';
import { isTransientDbError } from './commit.js';
import type { Dialect } from './database.js';
import { FILES_TABLE, REJECTED_TABLE } from './schema.js';
import { UpsertCompiler, upsertSourcedRows, type SourcedRow } from './upsert.js';

/**
 * Replay of stored rejections after a schema fix (`reprocess --rejected`): each stored raw record of the bucket is
 * validated again against the current schemas, and those that now pass are written as their file would write them
 * (the upsert rules, and the ordering rule of files: a record never overwrites a row of a file later in the index)
 * and leave `rejected_records`, in the same transaction. Nothing is fetched from the bucket.
 *
 * Next to a running daemon: each batch is one short transaction that first locks the rejections it replays (SQLite:
 * the database's write lock; elsewhere `FOR UPDATE` on those rows) and writes only those still there. A daemon
 * loading one of their files replaces that file's rejections in its own transaction, so either it waits for the
 * batch (and then replaces the replayed rows by its own, at the same position) or the batch finds the rejections
 * gone, leaves them to it, and meets the load's own rejections, if any, later in the same run (their ids are
 * higher). No row is written twice or lost either way, and a second run finds nothing to do.
 */

export interface ReplayOptions {
  db: Knex;
  dialect: Dialect;
  catalog: Catalog;
  /** The bucket's id (`bucketId` of its identity): only its rejections are replayed. */
  bucket: string;
  /** Only rejections of this record type. */
  type?: string | undefined;
  /** Only rejections whose reason matches this glob (picomatch, e.g. `year: expected*`; `*` matches `/` too, as reasons hold dates). */
  reason?: string | undefined;
  /** Read and validate, write nothing: the report says what a run would do. */
  dryRun?: boolean | undefined;
  /** Rejections per transaction. */
  batchSize?: number;
  /** The load time replayed rows get (their `loaded_at` and load-time derived columns). */
  now?: () => Date;
}

/**
 * What became of the rejections of one type and reason: the reason they were stored with, its values left out as
 * `inspect` groups them (`year: expected SafeInteger, got …`), so the groups stay few however many values failed.
 */
export interface ReplayGroup {
  type: string | null;
  reason: string;
  /** Now valid: the row was written (or, in a dry run, would be). */
  loaded: number;
  /** Now valid, but a file later in the index holds the key: its row stays, the rejection goes (as a load would). */
  superseded: number;
  /** Still invalid: left as they are, stored reason included. */
  stillRejected: number;
  /** The reasons the current schemas give the still invalid ones, where they differ from the stored one (a few). */
  reasonsNow: string[];
  /** Now valid but left as they are: see `ReplayReport.skipped`. */
  skipped: number;
  /** Replaced meanwhile by a load of their file, and left to it. */
  replaced: number;
}

/** A now-valid rejection left in place, and why. */
export interface SkippedRejection {
  sourceKey: string;
  recordIndex: number;
  why: 'no-position' | 'same-file';
}

export interface ReplayReport {
  dryRun: boolean;
  /** Rejections of the bucket that matched the filters. */
  matched: number;
  groups: ReplayGroup[];
  /** Now-valid rejections not replayed (at most MAX_SKIPPED listed; `skippedTotal` counts them all). */
  skipped: SkippedRejection[];
  skippedTotal: number;
  /** Rejections a concurrent load of their file replaced while the run read them: left to that load. */
  replacedMeanwhile: number;
}

const MAX_SKIPPED = 20;
const MAX_REASONS_NOW = 3;

interface StoredRejection {
  id: number;
  source_key: string;
  source_position: number | null;
  record_index: number;
  type: string | null;
  reason: string;
  raw: string;
  rejected_at: string;
}

/** A stored rejection that passes the current schemas: its row, in `type.columns` order. */
interface Candidate {
  rejection: StoredRejection;
  type: RecordType;
  cells: Cell[];
  position?: number;
}

/**
 * Replays the bucket's stored rejections that match the filters (see the module comment) and reports what became
 * of them per type and reason. Batches go in `id` order, so of two rejections of one file with the same key the later
 * record wins, as in the file.
 */
export async function replayRejections(opts: ReplayOptions): Promise<ReplayReport> {
  const { db } = opts;
  const batchSize = opts.batchSize ?? 1000;
  const matches = opts.reason === undefined ? () => true : picomatch(opts.reason, { dot: true, bash: true });
  const report: ReplayReport = { dryRun: Boolean(opts.dryRun), matched: 0, groups: [], skipped: [], skippedTotal: 0, replacedMeanwhile: 0 };
  const groups = new Map<string, ReplayGroup>();
  const groupOf = (r: StoredRejection): ReplayGroup => {
    const reason = reasonPattern(r.reason);
    const id = JSON.stringify([r.type, reason]);
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { type: r.type, reason, loaded: 0, superseded: 0, stillRejected: 0, reasonsNow: [], skipped: 0, replaced: 0 }));
    return g;
  };
  // Rejections stored before migration 007 have no position; a dry run on a database not yet migrated reads none.
  const hasPosition = await db.schema.hasColumn(REJECTED_TABLE, 'source_position');
  const compiler = new UpsertCompiler(opts.dialect);
  // Records as their rejections stored them: personal values are hashes already (RecordType.stored).
  const storedTypes: RecordTypes = { typeFor: (type) => { const rt = opts.catalog.typeFor(type); return rt?.stored ?? rt; } };
  for (let after = 0; ;) {
    let page = db(REJECTED_TABLE)
      .select('id', 'source_key', 'record_index', 'type', 'reason', 'raw', 'rejected_at', ...(hasPosition ? ['source_position'] : []))
      .where('bucket', opts.bucket).andWhere('id', '>', after);
    if (opts.type !== undefined) page = page.andWhere('type', opts.type);
    const rows = (await page.orderBy('id').limit(batchSize)) as StoredRejection[];
    if (rows.length === 0) break;
    after = Number((rows[rows.length - 1] as StoredRejection).id);
    const now = (opts.now?.() ?? new Date()).toISOString();
    const candidates: Candidate[] = [];
    for (const r of rows) {
      r.id = Number(r.id);
      r.source_position = r.source_position === null || r.source_position === undefined ? null : Number(r.source_position);
      if (!matches(r.reason)) continue;
      report.matched++;
      const personal = personalFailure(opts.catalog, r);
      if (personal !== null) {
        // Its personal value failed and is stored only as its hash: nothing can check it again. It stays.
        const g = groupOf(r);
        g.stillRejected++;
        if (g.reasonsNow.length < MAX_REASONS_NOW && !g.reasonsNow.includes(personal)) g.reasonsNow.push(personal);
        continue;
      }
      const result = classifyRecord(storedTypes, parse(r.raw), now);
      if (result.kind !== 'row') {
        // Still invalid, or (a type no longer declared) a skip: both stay stored, untouched (reason too: it is what the
        // file was rejected with), to be fixed later. The report says what the current schemas say.
        const g = groupOf(r);
        g.stillRejected++;
        const now = result.kind === 'reject' ? reasonPattern(result.reason) : `type ${JSON.stringify(result.type)} is not declared in the schemas`;
        if (now !== g.reason && g.reasonsNow.length < MAX_REASONS_NOW && !g.reasonsNow.includes(now)) g.reasonsNow.push(now);
        continue;
      }
      candidates.push({ rejection: r, type: result.type, cells: result.type.columns.map((c) => result.row[c.name] ?? null) });
    }
    if (candidates.length === 0) continue;
    const outcome = opts.dryRun
      ? await decide(db, opts, candidates, false)
      : await withRetries({ maxAttempts: 8, baseDelayMs: 250, maxDelayMs: 5_000 }, () => writeBatch(db, opts, compiler, candidates, now), () => undefined);
    report.replacedMeanwhile += outcome.gone.length;
    for (const c of outcome.gone) groupOf(c.rejection).replaced++;
    for (const c of outcome.loaded) groupOf(c.rejection).loaded++;
    for (const c of outcome.superseded) groupOf(c.rejection).superseded++;
    for (const s of outcome.skipped) {
      groupOf(s.candidate.rejection).skipped++;
      report.skippedTotal++;
      if (report.skipped.length < MAX_SKIPPED) report.skipped.push({ sourceKey: s.candidate.rejection.source_key, recordIndex: s.candidate.rejection.record_index, why: s.why });
    }
  }
  report.groups = [...groups.values()].sort((a, b) => (a.type ?? '').localeCompare(b.type ?? '') || a.reason.localeCompare(b.reason));
  return report;
}

/**
 * Why a rejection cannot be validated again, or null: its reason names a personal (`x-pii`) property, whose value the
 * rejection holds only as its hash (the raw value is never stored), so a relaxed rule cannot be applied to it.
 */
function personalFailure(catalog: Catalog, r: StoredRejection): string | null {
  const type = r.type === null ? undefined : catalog.typeFor(r.type);
  if (type?.stored === undefined) return null;
  const failed = r.reason.split('; ').map((part) => part.slice(0, part.indexOf(':')));
  const field = type.spec.properties.find((p) => p.pii && failed.includes(p.name));
  return field === undefined ? null : `${field.name} is personal data, stored only as its hash: it cannot be validated again`;
}

/** The stored raw JSON as a record; text that is not JSON (none is stored so) classifies as a record that is not an object. */
function parse(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

interface BatchOutcome {
  loaded: Candidate[];
  superseded: Candidate[];
  skipped: Array<{ candidate: Candidate; why: SkippedRejection['why'] }>;
  /** Candidates whose rejection was no longer stored (a concurrent load of the file replaced it). */
  gone: Candidate[];
}

/** One batch in one transaction: lock the rejections, decide, write the rows, delete the rejections replayed. */
async function writeBatch(db: Knex, opts: ReplayOptions, compiler: UpsertCompiler, candidates: Candidate[], now: string): Promise<BatchOutcome> {
  try {
    return await db.transaction(async (trx) => {
      // SQLite: take the write lock before reading, so no load commits between what this batch reads and writes (a
      // deferred transaction that read first could not take it afterwards, and would fail rather than wait).
      if (opts.dialect === 'sqlite') await trx.raw(`DELETE FROM "${REJECTED_TABLE}" WHERE 0`);
      const ids = candidates.map((c) => c.rejection.id);
      let still = trx(REJECTED_TABLE).select('id').whereIn('id', ids);
      if (opts.dialect !== 'sqlite') still = still.forUpdate();
      const present = new Set(((await still) as Array<{ id: number | string }>).map((r) => Number(r.id)));
      const outcome = await decide(trx, opts, candidates.filter((c) => present.has(c.rejection.id)), true);
      outcome.gone = candidates.filter((c) => !present.has(c.rejection.id));
      const loadedAt = now;
      for (const [type, rows] of winners(outcome.loaded)) await upsertSourcedRows(trx, compiler, type, rows, loadedAt);
      const done = [...outcome.loaded, ...outcome.superseded].map((c) => c.rejection.id);
      for (let i = 0; i < done.length; i += 500) await trx(REJECTED_TABLE).whereIn('id', done.slice(i, i + 500)).delete();
      return outcome;
    });
  } catch (err) {
    throw new IngestError('BI_DATABASE', `replay of ${candidates.length} rejected record(s) failed: ${describeError(err)}`, { retriable: isTransientDbError(err), cause: err });
  }
}

/**
 * Sorts a batch's now-valid rejections into loaded, superseded and skipped, reading (in `q`, the batch's transaction
 * when writing) their files' positions and the rows in place for their keys.
 */
async function decide(q: Knex | Knex.Transaction, opts: ReplayOptions, candidates: Candidate[], writing: boolean): Promise<BatchOutcome> {
  const out: BatchOutcome = { loaded: [], superseded: [], skipped: [], gone: [] };
  await resolvePositions(q, opts, candidates);
  const placed: Candidate[] = [];
  for (const c of candidates) {
    if (c.position === undefined) out.skipped.push({ candidate: c, why: 'no-position' });
    else placed.push(c);
  }
  const byType = new Map<RecordType, Candidate[]>();
  for (const c of placed) {
    const list = byType.get(c.type);
    if (list) list.push(c);
    else byType.set(c.type, [c]);
  }
  for (const [type, list] of byType) {
    const inPlace = await rowsInPlace(q, type, list, writing);
    list.forEach((c, i) => {
      const row = inPlace[i];
      const position = c.position as number;
      if (row === undefined || position > row.position) out.loaded.push(c);
      else if (position < row.position) out.superseded.push(c);
      else if (row.sourceKey === c.rejection.source_key && row.loadedAt === c.rejection.rejected_at) {
        // The row was loaded with this rejection, from another record of the same file with the same key: which of
        // the two came later in the file (and wins) is not stored. Reprocessing the file decides it exactly.
        out.skipped.push({ candidate: c, why: 'same-file' });
      } else {
        out.loaded.push(c); // the same position, as a reload of the file would replace its own row
      }
    });
  }
  return out;
}

/** Positions of the candidates' files: stored with the rejection (since 007), else the registry's, else the file's rows'. */
async function resolvePositions(q: Knex | Knex.Transaction, opts: ReplayOptions, candidates: Candidate[]): Promise<void> {
  const missing = new Set<string>();
  for (const c of candidates) {
    if (c.rejection.source_position !== null) c.position = c.rejection.source_position;
    else missing.add(c.rejection.source_key);
  }
  if (missing.size === 0) return;
  const found = new Map<string, number>();
  const keys = [...missing];
  // The database registry's entry (REGISTRY=database); the JSON registry keeps no positions.
  for (let i = 0; i < keys.length; i += 500) {
    const rows = (await q(FILES_TABLE).select('key', 'position').where('bucket', opts.bucket).whereIn('key', keys.slice(i, i + 500))) as Array<{ key: string; position: number | string }>;
    for (const r of rows) found.set(r.key, Number(r.position));
  }
  // Else the rows the file loaded carry its position (a scan of each table: source_key has no index, and only
  // rejections stored before migration 007 come here).
  for (const type of opts.catalog.types) {
    const left = keys.filter((k) => !found.has(k));
    if (left.length === 0) break;
    if (!(await q.schema.hasTable(type.table))) continue;
    for (let i = 0; i < left.length; i += 500) {
      const rows = (await q(type.table).select('source_key').max({ position: 'source_position' }).whereIn('source_key', left.slice(i, i + 500)).groupBy('source_key')) as Array<{
        source_key: string; position: number | string;
      }>;
      for (const r of rows) found.set(r.source_key, Number(r.position));
    }
  }
  for (const c of candidates) if (c.position === undefined && found.has(c.rejection.source_key)) c.position = found.get(c.rejection.source_key) as number;
}

interface RowInPlace { sourceKey: string; position: number; loadedAt: string }

/** Candidates per statement when looking up the rows in place. */
const LOOKUPS_PER_STATEMENT = 100;

/**
 * The row in place for each candidate's key (undefined where there is none), looked up by the table's unique key with
 * the candidate's own key values bound, so the database compares them exactly as the upsert will: one `UNION ALL` of
 * tagged lookups per LOOKUPS_PER_STATEMENT candidates, the same statement on every dialect.
 */
async function rowsInPlace(q: Knex | Knex.Transaction, type: RecordType, list: readonly Candidate[], writing: boolean): Promise<Array<RowInPlace | undefined>> {
  const out: Array<RowInPlace | undefined> = new Array(list.length);
  if (!writing && !(await q.schema.hasTable(type.table))) return out; // a dry run before the table is made
  const dialect = String(q.client.config.client);
  const id = (n: string): string => (dialect === 'mysql2' ? `\`${n}\`` : `"${n}"`);
  const where = type.key.map((k) => `${id(k)} = ?`).join(' AND ');
  for (let from = 0; from < list.length; from += LOOKUPS_PER_STATEMENT) {
    const part = list.slice(from, from + LOOKUPS_PER_STATEMENT);
    const sql = part.map((_, i) => `SELECT ${from + i} AS i, ${id('source_key')}, ${id('source_position')}, ${id('loaded_at')} FROM ${id(type.table)} WHERE ${where}`).join(' UNION ALL ');
    const bindings = part.flatMap((c) => type.keyCells.map((k) => bindable(dialect, c.cells[k] ?? null)));
    const result = (await q.raw(sql, bindings)) as unknown;
    for (const r of rowsOf(dialect, result)) {
      out[Number(r.i)] = { sourceKey: String(r.source_key), position: Number(r.source_position), loadedAt: String(r.loaded_at) };
    }
  }
  return out;
}

/** better-sqlite3 binds no booleans: they are stored as 1 and 0. */
function bindable(dialect: string, v: Cell): Cell {
  return dialect === 'better-sqlite3' && typeof v === 'boolean' ? (v ? 1 : 0) : v;
}

/** The rows of a `raw` result, whatever the driver's shape. */
function rowsOf(dialect: string, result: unknown): Array<Record<string, unknown>> {
  if (dialect === 'pg') return (result as { rows: Array<Record<string, unknown>> }).rows;
  if (dialect === 'mysql2') return (result as [Array<Record<string, unknown>>])[0];
  return result as Array<Record<string, unknown>>;
}

/**
 * The rows to write per table, each key once: of candidates with the same key, the one of the later file, and of the
 * same file the later record (higher id), as the upsert and a file's own validation would decide. In key order, so
 * concurrent writers take row locks in one order (see upsertGroupRows).
 */
function winners(loaded: readonly Candidate[]): Map<RecordType, SourcedRow[]> {
  const byKey = new Map<RecordType, Map<string, Candidate>>();
  for (const c of loaded) {
    let table = byKey.get(c.type);
    if (!table) byKey.set(c.type, (table = new Map()));
    const key = keyAt(c.type, c.cells, 0);
    const held = table.get(key);
    const position = c.position as number;
    if (held === undefined || (held.position as number) < position || ((held.position as number) === position && held.rejection.id < c.rejection.id)) table.set(key, c);
  }
  const out = new Map<RecordType, SourcedRow[]>();
  for (const [type, table] of byKey) {
    const rows = [...table.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, c]) => ({ cells: c.cells, at: 0, sourceKey: c.rejection.source_key, position: c.position as number }));
    out.set(type, rows);
  }
  return out;
}
