import type { RegistryEntry } from './registry/entry.js';
import type { ObjectVersion } from './sources/types.js';

/** Why a key is processed this cycle, or why not. */
export type PlanReason =
  | 'new'            // never seen
  | 'forced'         // --force
  | 'reprocess'      // marked by `reprocess`
  | 'retry'          // failed before, backoff elapsed
  | 'recheck'        // done, time to ask the bucket whether it changed
  | 'changed'        // done, but the listing names another ETag or size
  | 'up-to-date'     // done, checked recently
  | 'backoff';       // failed, next attempt not due yet

export interface PlanItem {
  key: string;
  /** Position in the bucket index: files are committed in this order, so the last writer of a key is stable. */
  index: number;
  reason: PlanReason;
  /**
   * The registry's entry the key was planned from (none: a new key). A claim takes the key only if the entry is still
   * that one (nobody finished the file since), and a recheck asks the bucket about the version it names.
   */
  entry?: RegistryEntry;
}

export interface Plan {
  todo: PlanItem[];
  upToDate: number;
  backoff: number;
}

export interface PlanOptions {
  force: boolean;
  now: number;
  recheckDoneMs: number;
}

/**
 * Decides what one key needs. Pure, so `explain` and the cycle agree by construction. `listed` is the version a
 * listing gave (S3): a done file is then up to date or changed by it, with no request and no recheck timer.
 */
export function planKey(entry: RegistryEntry | undefined, opts: PlanOptions, listed?: ObjectVersion): PlanReason {
  if (opts.force) return 'forced';
  if (!entry) return 'new';
  if (entry.reprocess) return 'reprocess';
  if (entry.status === 'failed') {
    return entry.nextAttemptAt === null || Date.parse(entry.nextAttemptAt) <= opts.now ? 'retry' : 'backoff';
  }
  if (listed !== undefined && listed.etag !== null && listed.size !== null && entry.etag !== null) {
    return listed.etag === entry.etag && listed.size === entry.size ? 'up-to-date' : 'changed';
  }
  const checked = entry.checkedAt ?? entry.doneAt;
  return checked === null || Date.parse(checked) + opts.recheckDoneMs <= opts.now ? 'recheck' : 'up-to-date';
}

/** Plans one listed key, with the registry's entry for it (if any), into `plan`; returns its reason. */
export function planInto(
  plan: Plan, key: string, index: number, entry: RegistryEntry | undefined, opts: PlanOptions, listed?: ObjectVersion,
): PlanReason {
  const reason = planKey(entry, opts, listed);
  if (reason === 'up-to-date') plan.upToDate++;
  else if (reason === 'backoff') plan.backoff++;
  else plan.todo.push(entry === undefined ? { key, index, reason } : { key, index, reason, entry });
  return reason;
}

/** Wait before a failed file is tried again: base × 2^(failures-1), at most an hour. */
export function failedBackoffMs(baseMs: number, failures: number): number {
  return Math.min(3_600_000, baseMs * 2 ** Math.max(0, failures - 1));
}
