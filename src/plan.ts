import type { RegistryEntry } from './registry/entry.js';

/** Why a key is processed this cycle, or why not. */
export type PlanReason =
  | 'new'            // never seen
  | 'forced'         // --force
  | 'reprocess'      // marked by `reprocess`
  | 'retry'          // failed before, backoff elapsed
  | 'recheck'        // done, time to ask the bucket whether it changed
  | 'up-to-date'     // done, checked recently
  | 'backoff';       // failed, next attempt not due yet

export interface PlanItem {
  key: string;
  /** Position in the bucket index: files are committed in this order, so the last writer of a key is stable. */
  index: number;
  reason: PlanReason;
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

/** Decides what one key needs. Pure, so `explain` and the cycle agree by construction. */
export function planKey(entry: RegistryEntry | undefined, opts: PlanOptions): PlanReason {
  if (opts.force) return 'forced';
  if (!entry) return 'new';
  if (entry.reprocess) return 'reprocess';
  if (entry.status === 'failed') {
    return entry.nextAttemptAt === null || Date.parse(entry.nextAttemptAt) <= opts.now ? 'retry' : 'backoff';
  }
  const checked = entry.checkedAt ?? entry.doneAt;
  return checked === null || Date.parse(checked) + opts.recheckDoneMs <= opts.now ? 'recheck' : 'up-to-date';
}

/** Plans a cycle over the listed keys: which to process, in bucket order, and how many wait. */
export function planCycle(keys: readonly string[], lookup: (key: string) => RegistryEntry | undefined, opts: PlanOptions): Plan {
  const plan: Plan = { todo: [], upToDate: 0, backoff: 0 };
  for (let index = 0; index < keys.length; index++) {
    const key = keys[index] as string;
    const reason = planKey(lookup(key), opts);
    if (reason === 'up-to-date') plan.upToDate++;
    else if (reason === 'backoff') plan.backoff++;
    else plan.todo.push({ key, index, reason });
  }
  return plan;
}

/** Wait before a failed file is tried again: base × 2^(failures-1), at most an hour. */
export function failedBackoffMs(baseMs: number, failures: number): number {
  return Math.min(3_600_000, baseMs * 2 ** Math.max(0, failures - 1));
}
