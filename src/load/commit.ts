import type { Knex } from 'knex';
import { describeError, IngestError, isRetriable } from '../errors.js';
import { failedBackoffMs } from '../plan.js';
import type { RegistryEntry } from '../registry/entry.js';
import { LeaseLostError, type Registry } from '../registry/types.js';
import { withRetries } from '../sources/retry.js';
import type { Prepared } from '../pipeline.js';
import { replaceRejections, upsertRows, type UpsertCompiler } from './upsert.js';

export interface CommitContext {
  db: Knex;
  registry: Registry;
  compiler: UpsertCompiler;
  maxAttempts: number;
  retryFailedMs: number;
  firstSeen(key: string): number;
  onRetry(info: { attempt: number; delayMs: number; reason: string }): void;
}

/** What became of one file of a group, once its transaction committed. */
export type Outcome =
  | { kind: 'done'; p: Extract<Prepared, { kind: 'load' }>; entry: RegistryEntry }
  | { kind: 'failed'; p: Prepared; entry: RegistryEntry; error: string }
  | { kind: 'unchanged'; p: Prepared; entry: RegistryEntry }
  /** A recheck failed: the loaded version stays loaded and is asked about again at the next recheck. */
  | { kind: 'recheck-failed'; p: Prepared; entry: RegistryEntry; error: string }
  /** Another worker owns the file now (lease lost): nothing written. */
  | { kind: 'lost'; p: Prepared };

/**
 * Writes a group of files in one transaction and returns what became of each. Each file sits in its own
 * savepoint, so a file the database refuses is recorded failed without taking the others down. The registry
 * entry of every file is staged in the same transaction (database registry) or written right after the commit
 * (JSON registry), so a file is never marked done before its rows are durable. Transient database errors
 * (lost connection, server restart, lock timeouts) retry the whole group with backoff; nothing is marked
 * until a commit succeeds.
 */
export async function commitGroup(ctx: CommitContext, group: readonly Prepared[]): Promise<Outcome[]> {
  const work = group.filter((p) => p.kind !== 'cancelled' && p.kind !== 'elsewhere');
  if (work.length === 0) return [];
  const outcomes = await withRetries(
    { maxAttempts: Math.max(ctx.maxAttempts, 8), baseDelayMs: 500, maxDelayMs: 15_000 },
    async () => {
      try {
        return await ctx.db.transaction((trx) => writeGroup(ctx, trx, work));
      } catch (err) {
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

async function writeGroup(ctx: CommitContext, trx: Knex.Transaction, work: readonly Prepared[]): Promise<Outcome[]> {
  const now = new Date();
  const loadedAt = now.toISOString();
  const outcomes: Outcome[] = [];
  for (const p of work) {
    let outcome: Outcome;
    try {
      outcome = await trx.transaction(async (sp) => {
        const prev = await ctx.registry.lockEntry(sp, p.item.key);
        if (p.kind === 'load') {
          await replaceRejections(sp, p.item.key, p.file.rejections, loadedAt);
          for (const [type, rows] of p.file.rows) {
            await upsertRows(sp, ctx.compiler, type, rows.values(), { sourceKey: p.item.key, position: p.item.index, loadedAt });
          }
        }
        const o = decide(ctx, p, prev, null, now);
        if (o.kind !== 'lost') await ctx.registry.stage(sp, p.item.key, o.entry);
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
          const prev = await ctx.registry.lockEntry(sp, p.item.key);
          const o = decide(ctx, p, prev, `BI_DATABASE: ${describeError(err)}`, now);
          if (o.kind !== 'lost') await ctx.registry.stage(sp, p.item.key, o.entry);
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

/** The registry entry a processed file gets, from the entry it had. Pure. */
function decide(ctx: CommitContext, p: Prepared, prev: RegistryEntry | undefined, loadError: string | null, now: Date): Outcome {
  const nowIso = now.toISOString();
  const base: RegistryEntry = prev ?? {
    status: 'failed', etag: null, size: null, attempts: 0, failures: 0, loaded: 0, rejected: 0, skipped: 0, error: null,
    firstSeenAt: new Date(ctx.firstSeen(p.item.key)).toISOString(), updatedAt: nowIso, doneAt: null, checkedAt: null, nextAttemptAt: null,
  };
  const { reprocess: _served, ...rest } = base;
  void _served;
  if (p.kind === 'unchanged') return { kind: 'unchanged', p, entry: { ...rest, checkedAt: nowIso, updatedAt: nowIso } };
  const error = p.kind === 'failed' ? p.error : loadError;
  if (error !== null) {
    if (p.item.reason === 'recheck' && prev?.status === 'done') {
      return { kind: 'recheck-failed', p, error, entry: { ...rest, checkedAt: nowIso, updatedAt: nowIso } };
    }
    const failures = base.failures + 1;
    const nextAttemptAt = new Date(now.getTime() + failedBackoffMs(ctx.retryFailedMs, failures)).toISOString();
    return { kind: 'failed', p, error, entry: { ...rest, status: 'failed', attempts: base.attempts + 1, failures, error, updatedAt: nowIso, nextAttemptAt } };
  }
  if (p.kind !== 'load') throw new Error(`unexpected ${p.kind} outcome for ${p.item.key}`);
  const f = p.file;
  return {
    kind: 'done', p,
    entry: {
      ...rest, status: 'done', etag: p.etag, size: p.size, attempts: base.attempts + 1, failures: 0,
      loaded: f.loaded, rejected: f.rejections.length, skipped: f.skipped, error: null,
      updatedAt: nowIso, doneAt: nowIso, checkedAt: nowIso, nextAttemptAt: null,
    },
  };
}

// PostgreSQL SQLSTATEs: 57P01-03 shutdown/crash, 08xxx connection, 40001/40P01 serialization/deadlock, 55P03 lock
// not available. MySQL: lost connection, deadlock, lock wait. SQLite: busy/locked, I/O.
const TRANSIENT_DB_CODES = new Set([
  'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_CANTOPEN',
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
