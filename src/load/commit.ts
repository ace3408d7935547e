import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import type { Knex } from 'knex';
import { DatabaseReplacedError, describeError, IngestError, isRetriable } from '../errors.js';
import { failedBackoffMs } from '../plan.js';
import type { RegistryEntry } from '../registry/entry.js';
import { LeaseLostError, type Registry } from '../registry/types.js';
import { withRetries } from '../sources/retry.js';
import type { Prepared } from '../pipeline.js';
import { decodeStream, DEFAULT_RULES, validateBatch, type FormatRules } from '../formats/index.js';
import type { ValidatedFile } from '../validate.js';
import type { Catalog } from '../schemas/catalog.js';
import { erasuresIn, type ErasureList } from './erasures.js';
import { deleteRejections, insertRejections, replaceGroupRejections, replaceRejections, upsertGroupRows, upsertRows, type UpsertCompiler } from './upsert.js';

export interface CommitContext {
  db: Knex;
  /** The declared record types (streamed files are validated here, batch by batch). */
  catalog: Catalog;
  /** How a streamed file's format is told (FORMAT, FORMAT_OVERRIDES, MAX_FILE_MB); default: by extension or content. */
  rules?: FormatRules;
  /** The bucket's id (binding.ts): a file's rejections are those of its key in this bucket. */
  bucket: string;
  /** Throws when the database is not the one opened any more; run before every commit (see app.ts). */
  verifyTarget?: () => void;
  /** Write a group's rows in shared statements (PostgreSQL, MySQL); SQLite's prepared path is faster per row. */
  batchGroups: boolean;
  registry: Registry;
  compiler: UpsertCompiler;
  maxAttempts: number;
  retryFailedMs: number;
  /** AFTER_LOAD's action as text (`delete`, `move:PREFIX`), recorded pending with each file done; null for `keep`. */
  afterLoad?: string | null;
  firstSeen(key: string): number;
  onRetry(info: { attempt: number; delayMs: number; reason: string }): void;
}

/** What became of one file of a group, once its transaction committed. */
export type Outcome =
  /** `erased`: records not stored because they carry a value of the erasure list (erasures.ts). */
  | { kind: 'done'; p: Prepared; entry: RegistryEntry; startedAt: number; erased: number }
  | { kind: 'failed'; p: Prepared; entry: RegistryEntry; error: string }
  | { kind: 'unchanged'; p: Prepared; entry: RegistryEntry }
  /** A recheck failed: the loaded version stays loaded and is asked about again at the next recheck. */
  | { kind: 'recheck-failed'; p: Prepared; entry: RegistryEntry; error: string }
  /** Another worker owns the file now (lease lost): nothing written. */
  | { kind: 'lost'; p: Prepared };

/**
 * Writes a group of files in one transaction and returns what became of each. If the database refuses a file,
 * the group is written again with each file in its own savepoint, so that file is recorded failed without taking
 * the others down. The registry entry of every file is staged in the same transaction (database registry) or
 * written right after the commit (JSON registry), so a file is never marked done before its rows are durable.
 * Transient database errors (lost connection, server restart, lock timeouts) retry the whole group with backoff;
 * nothing is marked until a commit succeeds.
 */
export async function commitGroup(ctx: CommitContext, group: readonly Prepared[], more?: () => Promise<Prepared | null>): Promise<Outcome[]> {
  const work = group.filter((p) => p.kind !== 'cancelled' && p.kind !== 'elsewhere');
  if (work.length === 0) return [];
  const outcomes = await withRetries(
    { maxAttempts: Math.max(ctx.maxAttempts, 8), baseDelayMs: 500, maxDelayMs: 15_000 },
    async () => {
      try {
        if (more || work.filter((p) => p.kind === 'load').length > 1) {
          try {
            return await transaction(ctx, async (trx) => writeGroupTogether(ctx, trx, work, more, await erasuresIn(trx, ctx.db)));
          } catch (err) {
            if (isTransientDbError(err) || err instanceof DatabaseReplacedError) throw err;
            // Some file was refused or lost its claim, and the transaction rolled back: write the group again file
            // by file, each in its own savepoint, so that file alone is recorded failed (or left to its new owner).
          }
        }
        return await transaction(ctx, async (trx) => writeGroupFileByFile(ctx, trx, work, await erasuresIn(trx, ctx.db)));
      } catch (err) {
        if (err instanceof DatabaseReplacedError) throw err;
        throw new IngestError('BI_DATABASE', `commit of ${work.length} file(s) failed: ${describeError(err)}`, { retriable: isTransientDbError(err), cause: err });
      }
    },
    ctx.onRetry,
  );
  const changes = new Map<string, RegistryEntry>();
  for (const o of outcomes) if (o.kind !== 'lost') changes.set(o.p.item.key, o.entry);
  await ctx.registry.committed(changes);
  return outcomes;
}

/** `fn` in a transaction that commits only if the database is still the one opened (`verifyTarget`). */
function transaction<T>(ctx: CommitContext, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  return ctx.db.transaction(async (trx) => {
    const result = await fn(trx);
    ctx.verifyTarget?.();
    return result;
  });
}

/**
 * The whole group in one go, without a savepoint per file: on a server in shared statements (writeGroupBatched),
 * on SQLite file after file (two statements fewer per file, ~8% of a load). No savepoint for the group either: on
 * SQLite one would hold the original of every page the group touches in memory (temp_store=MEMORY) until the
 * commit (3,000-file bench: 206 MB peak RSS with it, 191 MB without); the caller rolls the transaction back instead.
 */
function writeGroupTogether(
  ctx: CommitContext, trx: Knex.Transaction, work: Prepared[], more: (() => Promise<Prepared | null>) | undefined, erasures: ErasureList,
): Promise<Outcome[]> {
  const now = new Date();
  return ctx.batchGroups ? writeGroupBatched(ctx, trx, work, now, erasures) : writeGroupInOne(ctx, trx, work, now, more, erasures);
}

/** Each file in its own savepoint: a file the database refuses is recorded failed, and the others commit. */
async function writeGroupFileByFile(ctx: CommitContext, trx: Knex.Transaction, work: readonly Prepared[], erasures: ErasureList): Promise<Outcome[]> {
  const now = new Date();
  const outcomes: Outcome[] = [];
  for (const p of work) {
    await setImmediatePromise(); // see writeGroupInOne
    let outcome: Outcome;
    try {
      outcome = await trx.transaction(async (sp) => {
        const o = await writeFile(ctx, sp, p, await lockEntry(ctx, sp, p.item.key), now, erasures);
        await stage(ctx, sp, [o]);
        return o;
      });
    } catch (err) {
      if (err instanceof LeaseLostError) {
        outcome = { kind: 'lost', p };
      } else if (isTransientDbError(err)) {
        throw err; // the whole group is retried
      } else {
        // The database refused this file's rows (e.g. a constraint): record it failed, keep the others.
        outcome = await trx.transaction(async (sp) => {
          const prev = await lockEntry(ctx, sp, p.item.key);
          const o = decide(ctx, p, prev, `BI_DATABASE: ${describeError(err)}`, now);
          await stage(ctx, sp, [o]);
          return o;
        }).catch((e: unknown) => {
          if (e instanceof LeaseLostError) return { kind: 'lost', p } as const;
          throw e;
        });
      }
    }
    outcomes.push(outcome);
  }
  return outcomes;
}

/**
 * SQLite: the group's files one after another, in the caller's transaction. With `more`, files that become ready
 * meanwhile join the group (and `work`, so a retry or the file-by-file fallback covers them too) until `more`
 * says the group is full: the writer starts on the first file instead of idling while the group fills.
 */
async function writeGroupInOne(
  ctx: CommitContext, trx: Knex.Transaction, work: Prepared[], now: Date, more: (() => Promise<Prepared | null>) | undefined, erasures: ErasureList,
): Promise<Outcome[]> {
  const prevs = await ctx.registry.lockEntries(trx, work.map((p) => p.item.key));
  const outcomes: Outcome[] = [];
  for (let i = 0; ; i++) {
    if (i === work.length) {
      const next = more ? await more() : null;
      if (next === null) break;
      work.push(next);
      prevs.set(next.item.key, await lockEntry(ctx, trx, next.item.key));
    }
    const p = work[i] as Prepared;
    // SQLite writes synchronously: let fetches and decoding threads hand on their results between files, or they
    // starve while a whole group is written and the writer then starves waiting for them.
    await setImmediatePromise();
    outcomes.push(await writeFile(ctx, trx, p, prevs.get(p.item.key), now, erasures));
  }
  await stage(ctx, trx, outcomes);
  return outcomes;
}

/** One file's rejections and rows, in `trx`, and the outcome its registry entry is to record. */
async function writeFile(ctx: CommitContext, trx: Knex.Transaction, p: Prepared, prev: RegistryEntry | undefined, now: Date, erasures: ErasureList): Promise<Outcome> {
  const loadedAt = now.toISOString();
  if (p.kind !== 'load') return decide(ctx, p, prev, null, now);
  const { file, erased } = erasures.apply(p.file);
  await replaceRejections(trx, ctx.bucket, { sourceKey: p.item.key, position: p.item.index }, file.rejections, loadedAt);
  for (const [type, cells] of file.rows) {
    await upsertRows(trx, ctx.compiler, type, cells, { sourceKey: p.item.key, position: p.item.index, loadedAt });
  }
  return decide(ctx, p, prev, null, now, loadedOf(p, file), erased);
}

/** The registry entries of the outcomes, in `trx` (the database registry writes them all in one statement). */
async function stage(ctx: CommitContext, trx: Knex.Transaction, outcomes: readonly Outcome[]): Promise<void> {
  const entries = new Map<string, RegistryEntry>();
  for (const o of outcomes) if (o.kind !== 'lost') entries.set(o.p.item.key, o.entry);
  if (entries.size > 0) await ctx.registry.stage(trx, entries);
}

async function lockEntry(ctx: CommitContext, trx: Knex.Transaction, key: string): Promise<RegistryEntry | undefined> {
  return (await ctx.registry.lockEntries(trx, [key])).get(key);
}

interface Loaded { loaded: number; rejected: number; skipped: number; etag: string | null; size: number | null; startedAt: number }

/** What a loaded file stored: `file` is what was written of it (without erased records), by default all of it. */
function loadedOf(p: Prepared, file = p.kind === 'load' ? p.file : undefined): Loaded | null {
  return p.kind === 'load' && file
    ? { loaded: file.loaded, rejected: file.rejections.length, skipped: file.skipped, etag: p.etag, size: p.size, startedAt: p.startedAt }
    : null;
}

/**
 * The whole group in a few statements per table instead of several per file: on a server each statement is a
 * round trip, and per-file statements of a few hundred rows left PostgreSQL mostly waiting. Rows of the same
 * key from several files are merged first (the later file in the index wins, as the upsert itself would
 * decide), since one statement may not touch a row twice.
 */
async function writeGroupBatched(ctx: CommitContext, trx: Knex.Transaction, work: readonly Prepared[], now: Date, erasures: ErasureList): Promise<Outcome[]> {
  const loadedAt = now.toISOString();
  const prevs = await ctx.registry.lockEntries(trx, work.map((p) => p.item.key));
  const loads = work.filter((p): p is Extract<Prepared, { kind: 'load' }> => p.kind === 'load');
  const kept = new Map(loads.map((p) => [p, erasures.apply(p.file)]));
  const fileOf = (p: Extract<Prepared, { kind: 'load' }>): ValidatedFile => (kept.get(p) as { file: ValidatedFile }).file;
  await replaceGroupRejections(trx, ctx.bucket, loads.map((p) => ({ sourceKey: p.item.key, position: p.item.index, rejections: fileOf(p).rejections })), loadedAt);
  await upsertGroupRows(trx, ctx.compiler, loads.map((p) => ({ sourceKey: p.item.key, position: p.item.index, rows: fileOf(p).rows })), loadedAt);
  const outcomes = work.map((p) => {
    const k = p.kind === 'load' ? kept.get(p) : undefined;
    return decide(ctx, p, prevs.get(p.item.key), null, now, loadedOf(p, k?.file), k?.erased ?? 0);
  });
  await stage(ctx, trx, outcomes);
  return outcomes;
}

/** The registry entry a processed file gets, from the entry it had. Pure. */
function decide(ctx: CommitContext, p: Prepared, prev: RegistryEntry | undefined, loadError: string | null, now: Date, loaded = loadedOf(p), erased = 0): Outcome {
  const nowIso = now.toISOString();
  const base: RegistryEntry = prev ?? {
    status: 'failed', etag: null, size: null, attempts: 0, failures: 0, loaded: 0, rejected: 0, skipped: 0, error: null,
    firstSeenAt: new Date(ctx.firstSeen(p.item.key)).toISOString(), updatedAt: nowIso, doneAt: null, checkedAt: null, nextAttemptAt: null,
  };
  const { reprocess: _served, afterLoad, ...rest } = base;
  void _served;
  // The loaded version's AFTER_LOAD action stays with it while that version stays loaded (unchanged, or a recheck
  // that failed); a failed file has none, and a file loaded again gets the action AFTER_LOAD names now.
  const kept = afterLoad ? { afterLoad } : {};
  if (p.kind === 'unchanged') return { kind: 'unchanged', p, entry: { ...rest, ...kept, checkedAt: nowIso, updatedAt: nowIso } };
  const error = p.kind === 'failed' ? p.error : loadError;
  if (error !== null) {
    if (p.item.reason === 'recheck' && prev?.status === 'done') {
      return { kind: 'recheck-failed', p, error, entry: { ...rest, ...kept, checkedAt: nowIso, updatedAt: nowIso } };
    }
    const failures = base.failures + 1;
    const nextAttemptAt = new Date(now.getTime() + failedBackoffMs(ctx.retryFailedMs, failures)).toISOString();
    return { kind: 'failed', p, error, entry: { ...rest, status: 'failed', attempts: base.attempts + 1, failures, error, updatedAt: nowIso, nextAttemptAt } };
  }
  if (loaded === null) throw new Error(`unexpected ${p.kind} outcome for ${p.item.key}`);
  const action = ctx.afterLoad ?? null;
  return {
    kind: 'done', p, startedAt: loaded.startedAt, erased,
    entry: {
      ...rest, status: 'done', etag: loaded.etag, size: loaded.size, attempts: base.attempts + 1, failures: 0,
      loaded: loaded.loaded, rejected: loaded.rejected, skipped: loaded.skipped, error: null,
      updatedAt: nowIso, doneAt: nowIso, checkedAt: nowIso, nextAttemptAt: null,
      ...(action === null ? {} : { afterLoad: { action, state: 'pending', attempts: 0, error: null, nextAttemptAt: null, doneAt: null } }),
    },
  };
}

/** Records per batch of a streamed file, and bytes of the file after which a batch is cut anyway. */
const STREAM_BATCH = { batchRecords: 5000, batchBytes: 4 << 20 };

/**
 * Loads a file too large to hold: its records are read in batches as the body arrives and written inside one
 * transaction of its own, so memory stays bounded by the batch and the file is still all-or-nothing. A body
 * that breaks off, or a database error, rolls the file back and records it failed (retried on a later cycle:
 * the body cannot be read twice).
 */
export async function commitStream(ctx: CommitContext, p: Extract<Prepared, { kind: 'stream' }>): Promise<Outcome[]> {
  const key = p.item.key;
  const now = new Date();
  const loadedAt = now.toISOString();
  let outcome: Outcome;
  try {
    outcome = await transaction(ctx, async (trx) => {
      const erasures = await erasuresIn(trx, ctx.db);
      const prev = await lockEntry(ctx, trx, key);
      await deleteRejections(trx, ctx.bucket, key);
      const counts: Loaded = { loaded: 0, rejected: 0, skipped: 0, etag: p.etag, size: p.size, startedAt: p.startedAt };
      let erased = 0;
      let bytes = 0;
      const counted = (async function* () {
        for await (const chunk of p.stream) {
          bytes += chunk.length;
          yield chunk;
        }
      })();
      for await (const records of decodeStream(key, counted, ctx.rules ?? DEFAULT_RULES, STREAM_BATCH)) {
        const kept = erasures.apply(validateBatch(ctx.catalog, records, loadedAt));
        const batch = kept.file;
        erased += kept.erased;
        for (const [type, cells] of batch.rows) await upsertRows(trx, ctx.compiler, type, cells, { sourceKey: key, position: p.item.index, loadedAt });
        await insertRejections(trx, ctx.bucket, { sourceKey: key, position: p.item.index }, batch.rejections, loadedAt);
        counts.loaded += batch.loaded;
        counts.rejected += batch.rejections.length;
        counts.skipped += batch.skipped;
      }
      counts.size ??= bytes;
      const o = decide(ctx, p, prev, null, now, counts, erased);
      await stage(ctx, trx, [o]);
      return o;
    });
  } catch (err) {
    p.stream.destroy();
    if (err instanceof LeaseLostError) return [{ kind: 'lost', p }];
    if (err instanceof DatabaseReplacedError) throw err;
    const error = describeError(err);
    outcome = await transaction(ctx, async (trx) => {
      const prev = await lockEntry(ctx, trx, key);
      const label = err instanceof IngestError ? error : isRetriable(err) ? `BI_NETWORK: ${key}: ${error}` : `BI_DATABASE: ${error}`;
      const o = decide(ctx, p, prev, label, now);
      await stage(ctx, trx, [o]);
      return o;
    }).catch((e: unknown) => {
      if (e instanceof LeaseLostError) return { kind: 'lost', p } as const;
      throw e;
    });
  }
  const changes = new Map<string, RegistryEntry>();
  if (outcome.kind !== 'lost') changes.set(key, outcome.entry);
  await ctx.registry.committed(changes);
  return [outcome];
}

// PostgreSQL SQLSTATEs: 57P01-03 shutdown/crash, 08xxx connection, 40001/40P01 serialization/deadlock, 55P03 lock
// not available. MySQL: lost connection, deadlock, lock wait. SQLite: busy/locked, I/O, a read snapshot another
// process's commit made stale (the transaction cannot write: done again, it reads afresh).
const TRANSIENT_DB_CODES = new Set([
  'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_LOCKED', 'SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_CANTOPEN',
  '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '40001', '40P01', '55P03', '53300',
  'PROTOCOL_CONNECTION_LOST', 'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN',
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT',
]);

/** The database, not the data, is the problem: the same write may succeed later. */
export function isTransientDbError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; name?: unknown } | null;
  if (isRetriable(err) || TRANSIENT_DB_CODES.has(String(e?.code ?? ''))) return true;
  if (e?.name === 'KnexTimeoutError') return true; // pool could not get a connection
  return /Connection terminated|terminating connection|connection is closed|Client has encountered a connection error|Connection lost|server has gone away|Cannot enqueue/i.test(String(e?.message ?? ''));
}
