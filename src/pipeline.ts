import { Readable } from 'node:stream';
import type { Knex } from 'knex';
import pLimit from 'p-limit';
import type { Settings } from './config/schema.js';
import { formatRules } from './formats/index.js';
import { wholeBody } from './formats/whole.js';
import type { Decoder } from './formats/threads/pool.js';
import type { Catalog } from './schemas/catalog.js';
import { describeError, IngestError } from './errors.js';
import { commitGroup, commitStream, isTransientDbError, type CommitContext, type Outcome } from './load/commit.js';
import { AfterLoader, pendingAfterLoad } from './load/after-load.js';
import { afterLoadText } from './config/schema.js';
import { withRetries } from './sources/retry.js';
import type { UpsertCompiler } from './load/upsert.js';
import { planInto, type Plan, type PlanItem } from './plan.js';
import { PlanFeed } from './plan-feed.js';
import { listingFilter, listingPages, PLAN_SLICE, withEntries, type ListingCursor, type TimeWindow } from './listing.js';
import { bucketId, type Binding } from './registry/binding.js';
import type { Registry } from './registry/types.js';
import type { RegistryEntry } from './registry/entry.js';
import type { ListedObject, Source, StreamedObject } from './sources/types.js';
import type { CycleSummary, Telemetry } from './telemetry.js';
import type { ValidatedFile } from './validate.js';

export interface PipelineContext {
  settings: Settings;
  /** The declared record types. */
  catalog: Catalog;
  source: Source;
  db: Knex;
  compiler: UpsertCompiler;
  registry: Registry;
  /** Parses and validates whole bodies (a pool of threads, or this one). */
  decoder: Decoder;
  telemetry: Telemetry;
  /** When this process first saw each key that the registry does not know yet (ms since epoch). */
  firstListed: Map<string, number>;
  /** The database and bucket the registry (and its side files) are bound to. */
  binding: Binding;
  /** Throws when the database is no longer the one opened (SQLite file deleted or replaced); run before each commit. */
  verifyTarget?: () => void;
  /** LISTING=ordered: where the next listing starts (kept between cycles); absent: every cycle lists everything. */
  cursor?: ListingCursor;
  /**
   * Where notified files stand in the bucket's order (source_position, which decides between two files holding one
   * record key): after every key of the last listing, in the order their notifications came.
   */
  notifiedPosition?: { next: number };
}

export interface CycleOptions {
  cycle: number;
  force: boolean;
  /** Soft stop: start no new file; files in flight are finished and committed. */
  stop: AbortSignal;
  /** Hard stop: abandon files in flight (they stay as they were in the registry). */
  abort: AbortSignal;
  /**
   * Notifications: these keys instead of a listing, each processed whatever the registry says (a notification means
   * a new version; duplicates are left out before).
   */
  keys?: readonly string[];
  /** Told what became of each planned key once its group is committed (or it was left: cancelled, elsewhere). */
  settled?: (key: string, outcome: 'done' | 'failed' | 'unchanged' | 'cancelled' | 'elsewhere') => void;
  /** `--since` / `--until`: only objects last written in this window. */
  window?: TimeWindow | undefined;
}

/** The outcome of fetching, decoding and validating one planned file. */
export type Prepared =
  | { kind: 'load'; item: PlanItem; etag: string | null; size: number; file: ValidatedFile; startedAt: number }
  /** `emptied`: the key is empty because AFTER_LOAD deleted or moved the version loaded (that action, as text). */
  | { kind: 'unchanged'; item: PlanItem; etag: string | null; size: number | null; emptied?: string }
  | { kind: 'failed'; item: PlanItem; error: string }
  /** A file too large to hold: loaded in batches as it arrives, in a transaction of its own. */
  | { kind: 'stream'; item: PlanItem; etag: string | null; size: number | null; stream: StreamedObject['stream']; startedAt: number }
  | { kind: 'cancelled'; item: PlanItem }
  /** Another worker holds the file (database registry): not ours this cycle. */
  | { kind: 'elsewhere'; item: PlanItem };

/**
 * One cycle: list → plan → claim, fetch, decode, validate (p-limit, CONCURRENCY at once) → load as files become
 * ready, several per transaction → mark them in the registry with (database) or right after (JSON) the commit.
 */
export async function runCycle(ctx: PipelineContext, opts: CycleOptions): Promise<CycleSummary> {
  const started = performance.now();
  // Takes in what changed outside this process: reprocess requests (JSON), claims of dead local workers (database).
  await retryDb(ctx, 'reading the registry', () => ctx.registry.refresh(), opts.abort);
  const via = opts.keys === undefined ? 'listing' : 'notification';
  const now = Date.now();
  // Notified keys are each a new version (duplicates were left out before): processed whatever the registry says.
  const planOpts = { force: opts.force || via === 'notification', now, recheckDoneMs: ctx.settings.RECHECK_DONE_SECONDS * 1000 };
  // Keys that may be recorded failed once the cycle is over: those planned or waiting (a key up to date stays done).
  // Those whose outcome settles it (done, unchanged, failed) are counted and dropped as their group commits, so the
  // set holds the files in the window and those waiting, not every key of a first load.
  const watched = new Set<string>();
  const resolved = (key: string, failed: boolean): void => {
    if (watched.delete(key) && failed) summary.failedListed++;
  };
  const considered = listingFilter(ctx.settings, opts.window);
  const totals = { listed: 0, planned: 0, upToDate: 0, backoff: 0, discovered: 0 };
  const summary: CycleSummary = {
    listed: 0, planned: 0, filesDone: 0, filesFailed: 0, filesUnchanged: 0, filesUpToDate: 0, filesBackoff: 0, filesCancelled: 0,
    filesElsewhere: 0, failedListed: 0, recordsLoaded: 0, recordsRejected: 0, recordsSkipped: 0, bytes: 0, seconds: 0,
  };
  // Planned slice by slice as the listing arrives, into the feed the loader takes from. Loading starts once the
  // listing is read, or as soon as PLAN_AHEAD_FILES files wait: the listing then goes on beside the loading, and waits
  // whenever that many are planned ahead. Only the keys to process are kept, never the whole listing.
  const feed = new PlanFeed(ctx.settings.PLAN_AHEAD_FILES);
  let begun = false;
  let begin: () => void = () => undefined;
  const begins = new Promise<void>((resolve) => (begin = resolve));
  const start = (pending: ReadonlyMap<string, number>, listing: 'done' | 'continuing'): void => {
    begun = true;
    ctx.telemetry.cycleStarted({ cycle: opts.cycle, ...totals, pending, via, listing });
    begin();
  };
  const planning = (async (): Promise<void> => {
    let behind = new Map<string, number>();
    try {
      const readIndex = (): Promise<string[]> => retryDb(ctx, 'reading the shared listing', () => ctx.registry.listKeys(ctx.source, opts.abort), opts.abort);
      const notified = (ctx.notifiedPosition ??= { next: 0 });
      const listing = opts.keys !== undefined ? { first: notified.next, pages: givenKeys(opts.keys) } : listingPages(ctx.source, readIndex, opts.abort, ctx.cursor ?? null);
      let position = listing.first;
      const lookup = (keys: readonly string[]) => retryDb(ctx, 'reading the registry', () => ctx.registry.lookup(keys), opts.abort);
      const counted = (async function* () { // every listed key moves the position, considered or not
        for await (const page of listing.pages) {
          position += page.length;
          yield page;
        }
      })();
      let stopped = false;
      for await (const slice of withEntries(counted, listing.first, (o) => considered(o, now), lookup)) {
        // A soft stop plans nothing more: what is planned is cancelled, what is not is left to the next start.
        if (opts.stop.aborted || feed.abandoned) {
          stopped = true;
          break;
        }
        const plan: Plan = { todo: [], upToDate: 0, backoff: 0 };
        for (const { o, index, entry } of slice) {
          const reason = planInto(plan, o.key, index, entry, planOpts, o);
          if (reason !== 'up-to-date') watched.add(o.key);
          notePending(ctx, behind, o.key, entry, now);
        }
        const grown = {
          listed: slice.length, planned: plan.todo.length, upToDate: plan.upToDate, backoff: plan.backoff,
          discovered: via === 'notification' ? plan.todo.length : plan.todo.filter((p) => p.reason === 'new').length,
        };
        for (const k of Object.keys(totals) as Array<keyof typeof totals>) totals[k] += grown[k];
        feed.push(plan.todo);
        if (begun) {
          ctx.telemetry.cycleGrew({ ...grown, pending: behind });
          behind = new Map();
        } else if (feed.waiting >= ctx.settings.PLAN_AHEAD_FILES) {
          start(behind, 'continuing');
          behind = new Map();
        }
        if (begun) await feed.room();
      }
      notified.next = Math.max(notified.next, position);
      if (!begun) start(behind, 'done');
      else if (!stopped) ctx.telemetry.listingFinished({ cycle: opts.cycle, ...totals });
    } catch (err) {
      ctx.telemetry.listingFailed(describeError(err));
      throw err;
    } finally {
      Object.assign(summary, { listed: totals.listed, planned: totals.planned, filesUpToDate: totals.upToDate, filesBackoff: totals.backoff });
      feed.close();
    }
  })();
  // A listing that fails before loading begins fails the cycle at once, as it always did.
  await Promise.race([begins, planning]);

  const after = new AfterLoader({
    setting: ctx.settings.AFTER_LOAD, source: ctx.source, registry: ctx.registry, telemetry: ctx.telemetry,
    concurrency: ctx.settings.CONCURRENCY, retryFailedMs: ctx.settings.RETRY_FAILED_SECONDS * 1000,
  }, opts.abort);
  try {
    await loadAsReady(ctx, opts, feed, summary, after, resolved);
    // A listing that failed once loading had begun: what it planned is loaded, and the cycle fails with its error.
    await planning;
    // Then the actions earlier cycles left pending (failed, or cut short by a crash), unless we are stopping.
    if (!opts.stop.aborted) await after.retryDue();
  } catch (err) {
    // Nothing left running behind the cycle's own error: neither the listing nor an action.
    feed.abandon();
    await planning.catch(() => undefined);
    await after.drain();
    throw err;
  }
  const recordError = await after.drain();
  if (recordError !== undefined) throw recordError;
  if (ctx.settings.AFTER_LOAD.kind !== 'keep') {
    summary.afterLoadDone = after.done;
    summary.afterLoadFailed = after.failed;
  }
  ctx.telemetry.afterLoadPending(await retryDb(ctx, 'counting pending actions', () => pendingAfterLoad(ctx.registry), opts.abort));
  const unsettled = [...watched];
  for (let i = 0; i < unsettled.length; i += PLAN_SLICE) {
    const stored = await retryDb(ctx, 'reading the registry', () => ctx.registry.lookup(unsettled.slice(i, i + PLAN_SLICE)), opts.abort);
    for (const entry of stored.values()) if (entry.status === 'failed') summary.failedListed++;
  }
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

/**
 * Claims a batch of planned files in one go (a few statements, not one per file) and tells which to fetch. Never
 * throws: files that could not be claimed are left for a later cycle, the registry unchanged.
 */
async function claimAll(ctx: PipelineContext, items: readonly PlanItem[], opts: CycleOptions): Promise<(item: PlanItem) => 'claimed' | 'cancelled' | 'elsewhere'> {
  if (opts.stop.aborted || opts.abort.aborted) return () => 'cancelled';
  try {
    const claimed = await retryDb(ctx, `claiming ${items.length} file(s)`, () => ctx.registry.claim(items), opts.abort);
    return (item) => (claimed.has(item.key) ? 'claimed' : 'elsewhere');
  } catch (err) {
    ctx.telemetry.claimFailed(items.map((item) => item.key), describeError(err));
    return () => 'cancelled';
  }
}

/**
 * How long a group takes in more files once its first is ready: fewer, larger commits (one fsync each). On a server
 * the group waits this long to fill before it is written; SQLite writes each file as it comes, for at most this long.
 */
const GROUP_FILL_MS = 300;
/**
 * Rows after which a group commits without waiting for more files (a group's files stay in memory until it commits,
 * for a retry). About what 32 files of 1,000 records hold: 25,000 and 50,000 raised the 3,000-file bench's peak RSS
 * by 4–8 MB (README, Performance).
 */
const GROUP_MAX_ROWS = 20_000;
/**
 * Beyond 2 × CONCURRENCY files, more files enter the window (claimed, fetched, decoded, waiting for the loader) only
 * while the window holds fewer rows than this: the rows of its decoded files, and its files in flight at the mean
 * rows per file of this cycle so far.
 */
export const WINDOW_MAX_ROWS = 16_000;

/** What the window holds (see loadAsReady): files in flight, and decoded files waiting for the loader. */
export interface WindowState {
  inFlight: number;
  waiting: number;
  waitingRows: number;
  /** Files of this cycle decoded so far, and their rows: the mean stands in for the files still in flight. */
  decodedFiles: number;
  decodedRows: number;
}

/**
 * Whether one more file may enter the window: at most `maxInFlight` (2 × CONCURRENCY) in flight; below that many in
 * all, always; beyond, up to `maxFiles` (COMMIT_MAX_FILES) while the window's rows (those of the waiting files, and
 * the files in flight at the mean so far) stay under WINDOW_MAX_ROWS.
 */
export function windowHasRoom(w: WindowState, limits: { maxInFlight: number; maxFiles: number }): boolean {
  if (w.inFlight >= limits.maxInFlight) return false;
  const files = w.inFlight + w.waiting;
  if (files < limits.maxInFlight) return true;
  if (files >= limits.maxFiles || w.decodedFiles === 0) return false;
  return w.waitingRows + (w.inFlight * w.decodedRows) / w.decodedFiles < WINDOW_MAX_ROWS;
}

/** Rows a prepared file brings to its group. */
const rowsOf = (p: Prepared): number => (p.kind === 'load' ? p.file.loaded : 0);

/**
 * Rows a prepared file counts for in the window: a file to be streamed as a whole window's worth (its rows are still
 * to come, and it holds a connection open), so one waiting closes the window to 2 × CONCURRENCY files.
 */
export const windowRowsOf = (p: Prepared): number => (p.kind === 'stream' ? WINDOW_MAX_ROWS : rowsOf(p));

/**
 * Prepares CONCURRENCY files at once and commits them as they become ready, several per transaction. The order
 * does not matter for the result (upserts keep the row of the later file in the index), so a slow file holds up
 * nobody.
 *
 * Memory is bounded by settings, not by the bucket. The window (files claimed but not yet taken into a group) holds
 * 2 × CONCURRENCY files, and up to COMMIT_MAX_FILES while its files are small (WINDOW_MAX_ROWS); a group holds at
 * most COMMIT_MAX_FILES files and about GROUP_MAX_ROWS rows. So a bucket of small files commits hundreds of files
 * at a time (one fsync each group), and a bucket of large files keeps the window it would have had.
 */
async function loadAsReady(
  ctx: PipelineContext, opts: CycleOptions, feed: PlanFeed, summary: CycleSummary, after: AfterLoader, resolved: (key: string, failed: boolean) => void,
): Promise<void> {
  const limit = pLimit(ctx.settings.CONCURRENCY);
  const maxFiles = ctx.settings.COMMIT_MAX_FILES;
  const maxInFlight = ctx.settings.CONCURRENCY * 2;
  const commitContext: CommitContext = {
    db: ctx.db, catalog: ctx.catalog, rules: formatRules(ctx.settings), registry: ctx.registry, compiler: ctx.compiler, maxAttempts: ctx.settings.MAX_ATTEMPTS,
    bucket: bucketId(ctx.binding.bucket), ...(ctx.verifyTarget ? { verifyTarget: ctx.verifyTarget } : {}),
    batchGroups: ctx.compiler.dialect !== 'sqlite',
    retryFailedMs: ctx.settings.RETRY_FAILED_SECONDS * 1000,
    afterLoad: ctx.settings.AFTER_LOAD.kind === 'keep' ? null : afterLoadText(ctx.settings.AFTER_LOAD),
    firstSeen: (key) => ctx.firstListed.get(key) ?? Date.now(),
    onRetry: (info) => ctx.telemetry.databaseRetry(info),
  };
  const ready: Prepared[] = [];
  let readyRows = 0; // rows of the files in `ready`
  let readyWindowRows = 0; // and what they count for in the window (windowRowsOf)
  let decodedFiles = 0; // files of this cycle that have arrived, and their window rows: the mean sizes the window
  let decodedRows = 0;
  let inFlight = 0;
  let wake: (() => void) | null = null;
  const arrived = (p: Prepared): void => {
    inFlight--;
    ready.push(p);
    readyRows += rowsOf(p);
    readyWindowRows += windowRowsOf(p);
    decodedFiles++;
    decodedRows += windowRowsOf(p);
    const w = wake;
    wake = null;
    w?.();
  };
  const prepareClaimed = (item: PlanItem): Promise<Prepared> =>
    opts.stop.aborted || opts.abort.aborted ? Promise.resolve({ kind: 'cancelled', item }) : prepare(ctx, item, opts.abort);
  // Files are claimed as they enter the window, all of those at once, and fetched CONCURRENCY at a time.
  const startMore = (): void => {
    const batch: PlanItem[] = [];
    const limits = { maxInFlight, maxFiles };
    while (feed.waiting > 0 && windowHasRoom({ inFlight, waiting: ready.length, waitingRows: readyWindowRows, decodedFiles, decodedRows }, limits)) {
      batch.push(feed.take() as PlanItem);
      inFlight++;
    }
    if (batch.length === 0) return;
    void claimAll(ctx, batch, opts).then((claim) => {
      for (const item of batch) {
        const state = claim(item);
        if (state !== 'claimed') arrived({ kind: state, item });
        else void limit(() => prepareClaimed(item)).then(arrived, (err: unknown) => arrived({ kind: 'failed', item, error: describeError(err) }));
      }
    });
  };
  /** Takes `count` files from `ready` at `at`. */
  const take = (at: number, count: number): Prepared[] => {
    const taken = ready.splice(at, count);
    for (const p of taken) {
      readyRows -= rowsOf(p);
      readyWindowRows -= windowRowsOf(p);
    }
    return taken;
  };
  const waitForArrival = (ms: number): Promise<void> => new Promise((resolve) => {
    const timer = ms === Infinity ? undefined : setTimeout(resolve, ms);
    wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });

  // Files the planner adds while the listing goes on enter the window as it has room.
  feed.listen(() => {
    startMore();
    const w = wake;
    wake = null;
    w?.();
  });
  startMore();
  for (;;) {
    if (ready.length === 0) {
      if (inFlight === 0 && feed.closed && feed.waiting === 0) break; // everything planned is committed
      await waitForArrival(Infinity);
      continue;
    }
    const deadline = performance.now() + GROUP_FILL_MS;
    const full = (files: number, rows: number): boolean =>
      files >= maxFiles || rows >= GROUP_MAX_ROWS || opts.stop.aborted || performance.now() >= deadline;
    let rows = readyRows;
    // On a server the group's rows go in shared statements, so let it fill until it is full (files or rows), nothing
    // more can arrive, or the deadline passes. SQLite starts writing at once and takes files in as they come (`more`).
    while (commitContext.batchGroups && !full(ready.length, rows) && inFlight > 0) {
      await waitForArrival(Math.max(1, deadline - performance.now()));
      rows = readyRows;
    }
    let n = 0;
    for (rows = 0; n < ready.length && n < maxFiles && rows < GROUP_MAX_ROWS; n++) rows += rowsOf(ready[n] as Prepared);
    const group = take(0, n);
    startMore();
    const more = async (): Promise<Prepared | null> => {
      for (;;) {
        if (full(group.length, rows)) return null;
        const i = ready.findIndex((p) => p.kind !== 'stream');
        if (i < 0) {
          if (inFlight === 0) return null;
          await waitForArrival(Math.max(1, deadline - performance.now()));
          continue;
        }
        const p = take(i, 1)[0] as Prepared;
        group.push(p);
        rows += rowsOf(p);
        startMore();
        if (p.kind !== 'cancelled' && p.kind !== 'elsewhere') return p; // those only need reporting
      }
    };
    const outcomes = await commitGroup(commitContext, group.filter((p) => p.kind !== 'stream'), commitContext.batchGroups ? undefined : more);
    for (const p of group) if (p.kind === 'stream') outcomes.push(...(await commitStream(commitContext, p)));
    await ctx.registry.release(group.filter((p) => p.kind === 'cancelled').map((p) => p.item.key));
    report(ctx, group, outcomes, summary, opts.settled, resolved);
    // AFTER_LOAD, once the group's entries are recorded: the loader goes on with the next group meanwhile.
    after.start(outcomes.filter((o) => o.kind === 'done').map((o) => o.p.item.key));
  }
}

/** Notified keys, as a listing's one page of objects with no version (a notification's ETag was compared before). */
async function* givenKeys(keys: readonly string[]): AsyncGenerator<ListedObject[]> {
  yield keys.map((key) => ({ key, etag: null, size: null, lastModified: null }));
}

/** Runs a registry operation, retrying while the database (not the data) is the problem. */
function retryDb<T>(ctx: PipelineContext, what: string, fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
  return withRetries(
    { maxAttempts: Math.max(ctx.settings.MAX_ATTEMPTS, 8), baseDelayMs: 500, maxDelayMs: 15_000 },
    async () => {
      try {
        return await fn();
      } catch (err) {
        if (!isTransientDbError(err)) throw err;
        throw new IngestError('BI_DATABASE', `${what}: ${describeError(err)}`, { retriable: true, cause: err });
      }
    },
    (info) => ctx.telemetry.databaseRetry(info),
    signal,
  );
}

/**
 * Fetches, decodes and validates one file. Never throws: a failure is an outcome like the others. A body read whole
 * that holds more than STREAM_ABOVE_MB once decoded (gzip, Parquet: see wholeBody) is streamed as a large file is.
 */
export async function prepare(ctx: Pick<PipelineContext, 'source' | 'decoder' | 'settings'>, item: PlanItem, abort: AbortSignal): Promise<Prepared> {
  const startedAt = performance.now();
  const { entry } = item;
  const known = item.reason === 'recheck' && entry ? { etag: entry.etag, size: entry.size } : undefined;
  try {
    const fetched = await ctx.source.fetch(item.key, { known, signal: abort });
    if ('notModified' in fetched) return { kind: 'unchanged', item, etag: fetched.etag, size: fetched.size };
    if ('stream' in fetched) return { kind: 'stream', item, etag: fetched.etag, size: fetched.size, stream: fetched.stream, startedAt };
    const size = fetched.size ?? fetched.body.length; // before decoding: a pool takes the body's buffer away
    const body = await wholeBody(item.key, fetched.body, formatRules(ctx.settings), ctx.settings.STREAM_ABOVE_MB * 1024 * 1024);
    if (body === null) return { kind: 'stream', item, etag: fetched.etag, size, stream: Readable.from([fetched.body]), startedAt };
    const file = await ctx.decoder.decode(item.key, body, new Date().toISOString());
    return { kind: 'load', item, etag: fetched.etag, size, file, startedAt };
  } catch (err) {
    if (abort.aborted || (err instanceof IngestError && err.code === 'BI_SHUTDOWN')) return { kind: 'cancelled', item };
    // AFTER_LOAD deleted or moved the loaded version (or is about to): a recheck, `--force` or `reprocess` that finds
    // the key empty finds nothing new to load, and the rows of the version loaded stay.
    if (err instanceof IngestError && err.code === 'BI_NOT_FOUND' && entry?.status === 'done' && entry.afterLoad) {
      return { kind: 'unchanged', item, etag: entry.etag, size: entry.size, emptied: entry.afterLoad.action };
    }
    return { kind: 'failed', item, error: describeError(err) };
  }
}

/** Counts and reports what became of a committed group. */
function report(
  ctx: PipelineContext, group: readonly Prepared[], outcomes: readonly Outcome[], summary: CycleSummary, settled: CycleOptions['settled'],
  resolved: (key: string, failed: boolean) => void,
): void {
  for (const p of group) {
    if (p.kind === 'cancelled') {
      summary.filesCancelled++;
      ctx.telemetry.fileCancelled(p.item.key);
      settled?.(p.item.key, 'cancelled');
    } else if (p.kind === 'elsewhere') {
      summary.filesElsewhere++;
      settled?.(p.item.key, 'elsewhere');
    }
  }
  for (const o of outcomes) {
    const key = o.p.item.key;
    ctx.firstListed.delete(key);
    settled?.(key, o.kind === 'recheck-failed' ? 'failed' : o.kind === 'lost' ? 'elsewhere' : o.kind);
    switch (o.kind) {
      case 'done': {
        resolved(key, o.entry.status === 'failed');
        const e = o.entry;
        summary.filesDone++;
        summary.recordsLoaded += e.loaded;
        summary.recordsRejected += e.rejected;
        summary.recordsSkipped += e.skipped;
        summary.bytes += e.size ?? 0;
        ctx.telemetry.fileDone({ key, loaded: e.loaded, rejected: e.rejected, skipped: e.skipped, bytes: e.size ?? 0, ms: Math.round(performance.now() - o.startedAt) });
        if (o.erased > 0) ctx.telemetry.recordsErased(key, o.erased);
        break;
      }
      case 'unchanged':
        resolved(key, o.entry.status === 'failed');
        summary.filesUnchanged++;
        ctx.telemetry.fileUnchanged(key);
        // Asked for by name (`reprocess`, `--force`): say why nothing was loaded. A recheck finding it so is routine.
        if (o.p.kind === 'unchanged' && o.p.emptied !== undefined && o.p.item.reason !== 'recheck') ctx.telemetry.fileEmptied(key, o.p.emptied);
        break;
      case 'failed':
        resolved(key, o.entry.status === 'failed');
        summary.filesFailed++;
        ctx.telemetry.fileFailed({ key, error: o.error, attempts: o.entry.attempts, nextAttemptAt: o.entry.nextAttemptAt });
        break;
      case 'recheck-failed':
        ctx.telemetry.fileFailed({ key, error: `recheck: ${o.error}`, attempts: o.entry.attempts, nextAttemptAt: null });
        break;
      case 'lost':
        summary.filesElsewhere++;
        break;
    }
  }
}

/**
 * Notes a listed key in `pending` if it is not done (new, failed, marked for reprocessing), with when it was first
 * seen: what "how far behind" means for the pending-files gauges.
 */
function notePending(ctx: PipelineContext, pending: Map<string, number>, key: string, entry: RegistryEntry | undefined, now: number): void {
  if (entry === undefined) {
    let first = ctx.firstListed.get(key);
    if (first === undefined) ctx.firstListed.set(key, (first = now));
    pending.set(key, first);
  } else if (entry.status === 'failed' || entry.reprocess) {
    pending.set(key, Date.parse(entry.firstSeenAt));
  }
}
