import pLimit from 'p-limit';
import { afterLoadText, type AfterLoadSetting } from '../config/schema.js';
import { describeError, IngestError } from '../errors.js';
import { failedBackoffMs } from '../plan.js';
import type { RegistryEntry } from '../registry/entry.js';
import type { Registry } from '../registry/types.js';
import type { Source } from '../sources/types.js';
import type { Telemetry } from '../telemetry.js';

export interface AfterLoadContext {
  setting: AfterLoadSetting;
  source: Source;
  registry: Registry;
  telemetry: Telemetry;
  /** Actions under way at once (CONCURRENCY). */
  concurrency: number;
  /** First wait before a failed action is tried again (RETRY_FAILED_SECONDS); doubles per failure up to an hour. */
  retryFailedMs: number;
}

/** Keys of one registry write: a crash loses at most this many records of actions done (they are done again, idempotently). */
const RECORD_EVERY = 500;

/** Whether a file's AFTER_LOAD action is to be tried now: a done file, its action pending, its backoff over. */
export function afterLoadDue(entry: RegistryEntry, now: number): boolean {
  const a = entry.afterLoad;
  return entry.status === 'done' && a?.state === 'pending' && (a.nextAttemptAt === null || Date.parse(a.nextAttemptAt) <= now);
}

/** Loaded files whose AFTER_LOAD action is still to do. */
export function pendingAfterLoad(registry: Pick<Registry, 'count'>): Promise<number> {
  return registry.count({ afterLoadPending: true });
}

/**
 * AFTER_LOAD, the step after the commit: deletes or moves each loaded file, then records that in the registry.
 *
 * The order is what makes it safe. The commit that holds a file's rows records its action `pending` (in the same
 * transaction with the database registry, right after it with the JSON one), so the action is never done before the
 * rows are durable, and never for a failed file (a failed file has no action). The action comes next, and its
 * record last: a crash in between leaves it pending, and the next cycle does it again, which the source's
 * idempotence makes harmless (a file already gone, or already at its target, is success). A failure stays pending
 * with its error and is tried on a later cycle after a backoff, without loading the file again.
 *
 * Before acting, the file is asked whether it is still the version loaded (a conditional fetch): one rewritten
 * meanwhile is left in place, and marked to be loaded again, instead of being deleted unloaded. A pending action is
 * done as AFTER_LOAD says now; with `keep`, nothing is done to any file (pending actions wait).
 */
export class AfterLoader {
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly running: Array<Promise<void>> = [];
  /** Keys tried this cycle: a failure is not tried again within the cycle, whatever RETRY_FAILED_SECONDS says. */
  private readonly tried = new Set<string>();
  private error: unknown = undefined;
  done = 0;
  failed = 0;

  constructor(private readonly ctx: AfterLoadContext, private readonly signal: AbortSignal) {
    this.limit = pLimit(ctx.concurrency);
  }

  /** Starts the actions of `keys` (files just committed, or due again); `drain` waits for them. */
  start(keys: readonly string[]): void {
    if (this.ctx.setting.kind === 'keep') return;
    for (const key of keys) this.tried.add(key);
    for (let i = 0; i < keys.length; i += RECORD_EVERY) {
      const run = this.run(keys.slice(i, i + RECORD_EVERY)).catch((err: unknown) => {
        this.error ??= err;
      });
      this.running.push(run);
    }
  }

  /** Starts the actions left pending by earlier cycles (failed, or cut short by a crash or a stop) that are due. */
  async retryDue(now = Date.now()): Promise<void> {
    if (this.ctx.setting.kind === 'keep') return;
    let keys: string[] = [];
    for await (const [key, entry] of this.ctx.registry.entries({ afterLoadPending: true })) {
      if (this.tried.has(key) || !afterLoadDue(entry, now)) continue;
      keys.push(key);
      if (keys.length === RECORD_EVERY) {
        this.start(keys);
        keys = [];
      }
    }
    this.start(keys);
  }

  /** Waits for every action started; returns the first error recording them (the actions themselves never throw). */
  async drain(): Promise<unknown> {
    while (this.running.length > 0) await this.running.shift();
    return this.error;
  }

  private async run(keys: readonly string[]): Promise<void> {
    const changes = new Map<string, RegistryEntry>();
    const entries = await this.ctx.registry.lookup(keys);
    await Promise.all(keys.map((key) => this.limit(async () => {
      const entry = entries.get(key);
      if (entry === undefined || entry.status !== 'done' || entry.afterLoad?.state !== 'pending' || this.signal.aborted) return;
      const next = await this.act(key, entry);
      if (next !== null) changes.set(key, next);
    })));
    if (changes.size > 0) await this.ctx.registry.recordAfterLoad(changes);
  }

  /** One file's action; the entry to record, or null when it was cut short by a hard stop (left pending). */
  private async act(key: string, entry: RegistryEntry): Promise<RegistryEntry | null> {
    const action = this.ctx.setting;
    if (action.kind === 'keep' || !this.ctx.source.afterLoad) return null;
    const text = afterLoadText(action);
    const before = entry.afterLoad as NonNullable<RegistryEntry['afterLoad']>;
    const now = new Date();
    const nowIso = now.toISOString();
    try {
      if (await this.changedSince(key, entry)) {
        this.ctx.telemetry.afterLoadSkipped({ key, action: text });
        const { afterLoad: _dropped, ...rest } = entry;
        void _dropped;
        return { ...rest, reprocess: true, updatedAt: nowIso };
      }
      await this.ctx.source.afterLoad(key, action, this.signal);
      this.done++;
      this.ctx.telemetry.afterLoadDone({ key, action: text, target: action.kind === 'move' ? action.prefix + key : null });
      return { ...entry, updatedAt: nowIso, afterLoad: { action: text, state: 'done', attempts: before.attempts + 1, error: null, nextAttemptAt: null, doneAt: nowIso } };
    } catch (err) {
      if (this.signal.aborted) return null;
      const attempts = before.attempts + 1;
      const nextAttemptAt = new Date(now.getTime() + failedBackoffMs(this.ctx.retryFailedMs, attempts)).toISOString();
      const error = describeError(err);
      this.failed++;
      this.ctx.telemetry.afterLoadFailed({ key, action: text, error, attempts, nextAttemptAt });
      return { ...entry, updatedAt: nowIso, afterLoad: { action: text, state: 'pending', attempts, error, nextAttemptAt, doneAt: null } };
    }
  }

  /**
   * Whether the object at `key` is no longer the version loaded (a conditional fetch, which costs a local bucket a
   * stat). Gone is not changed: the action itself tells whether it was done before.
   */
  private async changedSince(key: string, entry: RegistryEntry): Promise<boolean> {
    try {
      const got = await this.ctx.source.fetch(key, { known: { etag: entry.etag, size: entry.size }, signal: this.signal });
      if ('notModified' in got) return false;
      if ('stream' in got) got.stream.destroy();
      return got.etag !== entry.etag || got.size !== entry.size;
    } catch (err) {
      if (err instanceof IngestError && err.code === 'BI_NOT_FOUND') return false;
      throw err;
    }
  }
}
