import type { Knex } from 'knex';
import pLimit from 'p-limit';
import type { Settings } from './config/schema.js';
import { decodeBody } from './decode.js';
import { describeError, IngestError, isRetriable } from './errors.js';
import { failedBackoffMs, planCycle, type PlanItem } from './plan.js';
import type { RegistryEntry } from './registry/entry.js';
import type { JsonRegistry } from './registry/json-registry.js';
import { replaceRejections, upsertRows, type UpsertCompiler } from './load/upsert.js';
import { withRetries } from './sources/retry.js';
import type { Source } from './sources/types.js';
import type { CycleSummary, Telemetry } from './telemetry.js';
import { validateRecords, type ValidatedFile } from './validate.js';

export interface PipelineContext {
  settings: Settings;
  source: Source;
  db: Knex;
  compiler: UpsertCompiler;
  registry: JsonRegistry;
  telemetry: Telemetry;
  /** When this process first saw each key that the registry does not know yet (ms since epoch). */
  firstListed: Map<string, number>;
}

export interface CycleOptions {
  cycle: number;
  force: boolean;
  /** Soft stop: start no new file; files in flight are finished and committed. */
  stop: AbortSignal;
  /** Hard stop: abandon files in flight (they stay as they were in the registry). */
  abort: AbortSignal;
}

/** The outcome of fetching, decoding and validating one planned file. */
export type Prepared =
  | { kind: 'load'; item: PlanItem; etag: string | null; size: number; file: ValidatedFile; startedAt: number }
  | { kind: 'unchanged'; item: PlanItem; etag: string | null; size: number | null }
  | { kind: 'failed'; item: PlanItem; error: string }
  | { kind: 'cancelled'; item: PlanItem };

/**
 * One cycle: list → plan → fetch/decode/validate (p-limit, CONCURRENCY at once) → load in bucket order,
 * several files per transaction → mark them in the registry after the commit.
 *
 * Files are committed in index order through a bounded window, so when two files hold the same key the later
 * one in the index wins, whatever order the fetches finish in, and a restart converges to the same tables.
 */
export async function runCycle(ctx: PipelineContext, opts: CycleOptions): Promise<CycleSummary> {
  const started = performance.now();
  let keys: string[];
  try {
    keys = await ctx.source.listKeys(opts.abort);
  } catch (err) {
    ctx.telemetry.listingFailed(describeError(err));
    throw err;
  }
  const now = Date.now();
  const behind = pendingSince(ctx, keys, now);
  const plan = planCycle(keys, (k) => ctx.registry.get(k), {
    force: opts.force,
    now,
    recheckDoneMs: ctx.settings.RECHECK_DONE_SECONDS * 1000,
  });
  const summary: CycleSummary = {
    listed: keys.length, planned: plan.todo.length, filesDone: 0, filesFailed: 0, filesUnchanged: 0,
    filesUpToDate: plan.upToDate, filesBackoff: plan.backoff, filesCancelled: 0,
    recordsLoaded: 0, recordsRejected: 0, recordsSkipped: 0, bytes: 0, seconds: 0,
  };
  ctx.telemetry.cycleStarted({ cycle: opts.cycle, listed: keys.length, planned: plan.todo.length, upToDate: plan.upToDate, backoff: plan.backoff, pending: behind });

  const todo = plan.todo;
  const limit = pLimit(ctx.settings.CONCURRENCY);
  const window = ctx.settings.CONCURRENCY * 2;
  const pending: Array<Promise<Prepared>> = [];
  const settled: Array<Prepared | undefined> = [];
  const startUpTo = (committed: number): void => {
    while (pending.length < todo.length && pending.length < committed + window) {
      const i = pending.length;
      const item = todo[i] as PlanItem;
      pending.push(
        limit(() => (opts.stop.aborted || opts.abort.aborted ? { kind: 'cancelled', item } as const : prepare(ctx, item, opts.abort)))
          .then((p) => (settled[i] = p)),
      );
    }
  };

  let next = 0;
  startUpTo(0);
  while (next < todo.length) {
    const group: Prepared[] = [await (pending[next] as Promise<Prepared>)];
    next++;
    while (next < todo.length && group.length < ctx.settings.COMMIT_MAX_FILES && settled[next] !== undefined) {
      group.push(settled[next] as Prepared);
      next++;
    }
    await commitGroup(ctx, group, summary, opts.abort);
    startUpTo(next);
  }
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

export async function prepare(ctx: Pick<PipelineContext, "source" | "registry">, item: PlanItem, abort: AbortSignal): Promise<Prepared> {
  const startedAt = performance.now();
  const entry = ctx.registry.get(item.key);
  const known = item.reason === 'recheck' && entry ? { etag: entry.etag, size: entry.size } : undefined;
  try {
    const fetched = await ctx.source.fetch(item.key, { known, signal: abort });
    if ('notModified' in fetched) return { kind: 'unchanged', item, etag: fetched.etag, size: fetched.size };
    const records = decodeBody(item.key, fetched.body);
    const file = validateRecords(records, new Date().toISOString());
    return { kind: 'load', item, etag: fetched.etag, size: fetched.size ?? fetched.body.length, file, startedAt };
  } catch (err) {
    if (abort.aborted || (err instanceof IngestError && err.code === 'BI_SHUTDOWN')) return { kind: 'cancelled', item };
    return { kind: 'failed', item, error: describeError(err) };
  }
}

/**
 * Writes a group of files in one transaction, each file inside its own savepoint so one bad file does not
 * take the others down, then records the group in the registry. Only after the commit returns (durable:
 * synchronous=FULL) are files marked done.
 */
async function commitGroup(ctx: PipelineContext, group: Prepared[], summary: CycleSummary, abort: AbortSignal): Promise<void> {
  const loads = group.filter((p): p is Extract<Prepared, { kind: 'load' }> => p.kind === 'load');
  const loadErrors = new Map<string, string>();
  if (loads.length > 0) {
    const loadedAt = new Date().toISOString();
    await withRetries(
      { maxAttempts: ctx.settings.MAX_ATTEMPTS, baseDelayMs: 500, maxDelayMs: 30_000 },
      async () => {
        loadErrors.clear();
        try {
          await ctx.db.transaction(async (trx) => {
            for (const p of loads) {
              try {
                await trx.transaction(async (sp) => writeFile(ctx, sp, p, loadedAt));
              } catch (err) {
                loadErrors.set(p.item.key, `BI_DATABASE: ${describeError(err)}`);
              }
            }
          });
        } catch (err) {
          throw new IngestError('BI_DATABASE', `commit of ${loads.length} file(s) failed: ${describeError(err)}`, { retriable: isTransientDbError(err), cause: err });
        }
      },
      (info) => ctx.telemetry.databaseRetry(info),
      abort,
    );
  }

  const nowIso = new Date().toISOString();
  const changes = new Map<string, RegistryEntry>();
  for (const p of group) {
    const key = p.item.key;
    const prev = ctx.registry.get(key);
    const base: RegistryEntry = prev ?? {
      status: 'failed', etag: null, size: null, attempts: 0, failures: 0, loaded: 0, rejected: 0, skipped: 0,
      error: null, firstSeenAt: new Date(ctx.firstListed.get(key) ?? Date.now()).toISOString(), updatedAt: nowIso, doneAt: null, checkedAt: null, nextAttemptAt: null,
    };
    const { reprocess: _dropped, ...rest } = base;
    void _dropped;
    if (p.kind === 'cancelled') {
      summary.filesCancelled++;
      ctx.telemetry.fileCancelled(key);
      continue;
    }
    if (p.kind === 'unchanged') {
      summary.filesUnchanged++;
      ctx.telemetry.fileUnchanged(key);
      changes.set(key, { ...rest, checkedAt: nowIso, updatedAt: nowIso });
      continue;
    }
    const error = p.kind === 'failed' ? p.error : loadErrors.get(key);
    if (error !== undefined) {
      if (p.item.reason === 'recheck' && prev?.status === 'done') {
        // The loaded version stays loaded; ask again at the next recheck instead of marking it failed.
        ctx.telemetry.fileFailed({ key, error: `recheck: ${error}`, attempts: prev.attempts, nextAttemptAt: null });
        changes.set(key, { ...rest, checkedAt: nowIso, updatedAt: nowIso });
        continue;
      }
      const failures = base.failures + 1;
      const nextAttemptAt = new Date(Date.now() + failedBackoffMs(ctx.settings.RETRY_FAILED_SECONDS * 1000, failures)).toISOString();
      summary.filesFailed++;
      changes.set(key, { ...rest, status: 'failed', attempts: base.attempts + 1, failures, error, updatedAt: nowIso, nextAttemptAt });
      ctx.telemetry.fileFailed({ key, error, attempts: base.attempts + 1, nextAttemptAt });
      continue;
    }
    if (p.kind !== 'load') continue;
    const f = p.file;
    summary.filesDone++;
    summary.recordsLoaded += f.loaded;
    summary.recordsRejected += f.rejections.length;
    summary.recordsSkipped += f.skipped;
    summary.bytes += p.size;
    changes.set(key, {
      ...rest, status: 'done', etag: p.etag, size: p.size, attempts: base.attempts + 1, failures: 0,
      loaded: f.loaded, rejected: f.rejections.length, skipped: f.skipped, error: null,
      updatedAt: nowIso, doneAt: nowIso, checkedAt: nowIso, nextAttemptAt: null,
    });
    ctx.telemetry.fileDone({ key, loaded: f.loaded, rejected: f.rejections.length, skipped: f.skipped, bytes: p.size, ms: Math.round(performance.now() - p.startedAt) });
  }
  await ctx.registry.commit(changes);
  for (const key of changes.keys()) ctx.firstListed.delete(key);
}

/**
 * Listed keys that are not done (new, failed, marked for reprocessing), with when each was first seen:
 * what "how far behind" means for the pending-files gauges.
 */
function pendingSince(ctx: PipelineContext, keys: readonly string[], now: number): Map<string, number> {
  const pending = new Map<string, number>();
  for (const key of keys) {
    const entry = ctx.registry.get(key);
    if (entry === undefined) {
      let first = ctx.firstListed.get(key);
      if (first === undefined) ctx.firstListed.set(key, (first = now));
      pending.set(key, first);
    } else if (entry.status === 'failed' || entry.reprocess) {
      pending.set(key, Date.parse(entry.firstSeenAt));
    }
  }
  return pending;
}

async function writeFile(ctx: PipelineContext, trx: Knex.Transaction, p: Extract<Prepared, { kind: 'load' }>, loadedAt: string): Promise<void> {
  const provenance = { sourceKey: p.item.key, loadedAt };
  await replaceRejections(trx, p.item.key, p.file.rejections, loadedAt);
  for (const [type, rows] of p.file.rows) await upsertRows(trx, ctx.compiler, type, rows.values(), provenance);
}

/** Lock contention and lost connections pass; constraint and schema errors do not. */
function isTransientDbError(err: unknown): boolean {
  const code = String((err as { code?: unknown }).code ?? '');
  return isRetriable(err) || ['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_CANTOPEN', 'ECONNREFUSED', 'ECONNRESET', '57P01', '57P02', '57P03', '08006', '08001', 'PROTOCOL_CONNECTION_LOST', 'ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', '40001', '40P01'].includes(code);
}
