import type { Knex } from 'knex';
import type { PlanItem } from '../plan.js';
import type { Source } from '../sources/types.js';
import type { RegistryEntry } from './entry.js';

/**
 * What the pipeline needs from a registry. Two implementations:
 *
 * - `JsonRegistry` (REGISTRY=json, the default with SQLite): a file beside the database, written after the
 *   commit that holds the files' rows (at-least-once, made exact by idempotent upserts). One daemon.
 * - `DbRegistry` (REGISTRY=database, the default with PostgreSQL/MySQL): a table written inside the same
 *   transaction as the files' rows (exactly-once effect), with claims and leases so several daemons share
 *   one bucket.
 *
 * The pipeline claims the files it is about to fetch several at a time (`claim`), and per group calls, inside the
 * transaction: `lockEntries` for the group's files, then `stage` with their new entries; after the commit:
 * `committed`. Each of these is one or a few statements for the whole batch, never one per file: on a server
 * every statement is a round trip, and every claim outside a transaction a commit.
 */
export interface Registry {
  readonly mode: 'json' | 'database';
  readonly description: string;
  /**
   * Entries found that are not about this database and bucket, set aside (never planned from): why, how many, and
   * where they were moved (JSON registry), or null when every entry read is trusted.
   */
  readonly untrusted: Untrusted | null;
  /**
   * The entries stored now for these keys (a key without one is left out): what a page of the listing is planned
   * from. The database registry asks its table, a few hundred keys per query, and holds no entry in memory: a
   * bucket of a million done keys is planned in the memory of one page (README, S3 buckets at scale).
   */
  lookup(keys: readonly string[]): Promise<Map<string, RegistryEntry>>;
  /**
   * The entries matching `filter`, read a page at a time (never all at once from the database registry). In key
   * order when `filter.ordered` (always, from the database: its primary key's), so `after` pages through them.
   */
  entries(filter?: EntryFilter): AsyncIterableIterator<[string, RegistryEntry]>;
  /** How many entries match `filter` (all: the files the registry knows). */
  count(filter?: EntryFilter): Promise<number>;
  /** What `status` and the dashboard sum up, summed where the entries are (one aggregate query for the database registry). */
  totals(): Promise<RegistryTotals>;
  /** Start of a cycle: the database registry frees claims of dead local workers; the JSON one applies reprocess requests. */
  refresh(): Promise<void>;
  /** The index keys for this cycle; the database registry shares one listing between workers. */
  listKeys(source: Source, signal: AbortSignal): Promise<string[]>;
  /**
   * Takes the right to process planned keys; returns the keys it took. A key is left out when another worker
   * holds it or finished it since it was planned.
   */
  claim(items: readonly PlanItem[]): Promise<Set<string>>;
  /** Gives back claims of files abandoned at shutdown. */
  release(keys: readonly string[]): Promise<void>;
  /**
   * Inside the group transaction: the keys' entries as stored now, in one query for the whole group (each
   * round trip waits behind the files being parsed meanwhile); throws `LeaseLostError` if one is no longer ours.
   */
  lockEntries(trx: Knex.Transaction, keys: readonly string[]): Promise<Map<string, RegistryEntry | undefined>>;
  /** Inside the group transaction: the keys' new entries; throws `LeaseLostError` if one is no longer ours. */
  stage(trx: Knex.Transaction, entries: ReadonlyMap<string, RegistryEntry>): Promise<void>;
  /** After the commit: make the group's entries durable (JSON) and visible to `get`. */
  committed(changes: ReadonlyMap<string, RegistryEntry>): Promise<void>;
  /**
   * After AFTER_LOAD actions (src/load/after-load.ts), outside any group transaction: the keys' entries with their new
   * `afterLoad` state (and `reprocess`, for a file found changed before its action), durable when this resolves. An
   * entry whose action is no longer pending, or whose file was loaded again meanwhile (another `doneAt`), is left as
   * it is: the action was about a version that is not the one recorded now.
   */
  recordAfterLoad(changes: ReadonlyMap<string, RegistryEntry>): Promise<void>;
  /** Marks keys so the next cycle processes them again; returns how many entries it marked. */
  markReprocess(keys: readonly string[]): Promise<number>;
  close(): Promise<void>;
}

/** Which entries `entries` and `count` take. */
export interface EntryFilter {
  status?: 'done' | 'failed';
  /** Only keys after this one, in key order (implies `ordered`). */
  after?: string;
  /** Done files whose AFTER_LOAD action is still to do. */
  afterLoadPending?: boolean;
  /** Marked to be processed again. */
  reprocess?: boolean;
  /** In key order (the JSON registry sorts its keys for it). */
  ordered?: boolean;
}

/** The registry summed up: files by status; records, last done time and AFTER_LOAD actions of done files. */
export interface RegistryTotals {
  files: { total: number; done: number; failed: number };
  records: { loaded: number; rejected: number; skipped: number };
  lastDoneAt: string | null;
  afterLoad: { done: number; pending: number };
}

/** Totals of entries held in memory (the JSON registry's). */
export function sumEntries(entries: Iterable<RegistryEntry>): RegistryTotals {
  const t: RegistryTotals = { files: { total: 0, done: 0, failed: 0 }, records: { loaded: 0, rejected: 0, skipped: 0 }, lastDoneAt: null, afterLoad: { done: 0, pending: 0 } };
  for (const e of entries) {
    t.files.total++;
    t.files[e.status]++;
    if (e.status !== 'done') continue;
    t.records.loaded += e.loaded;
    t.records.rejected += e.rejected;
    t.records.skipped += e.skipped;
    if (e.doneAt && (t.lastDoneAt === null || e.doneAt > t.lastDoneAt)) t.lastDoneAt = e.doneAt;
    if (e.afterLoad?.state === 'done') t.afterLoad.done++;
    else if (e.afterLoad?.state === 'pending') t.afterLoad.pending++;
  }
  return t;
}

/** Whether an entry passes a filter's conditions on the entry (not `after`, which is about the key). */
export function entryMatches(entry: RegistryEntry, filter: EntryFilter): boolean {
  if (filter.status !== undefined && entry.status !== filter.status) return false;
  if (filter.afterLoadPending && (entry.status !== 'done' || entry.afterLoad?.state !== 'pending')) return false;
  if (filter.reprocess && !entry.reprocess) return false;
  return true;
}

export interface Untrusted {
  reason: string;
  entries: number;
  movedTo: string | null;
}

export class LeaseLostError extends Error {
  constructor(key: string) {
    super(`${key}: claim lost to another worker (lease expired); leaving the file to it`);
    this.name = 'LeaseLostError';
  }
}
