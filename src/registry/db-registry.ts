import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { FILES_TABLE, LISTING_TABLE } from '../load/schema.js';
import type { Dialect } from '../load/database.js';
import type { PlanItem } from '../plan.js';
import type { Source } from '../sources/types.js';
import type { RegistryEntry } from './entry.js';
import { LeaseLostError, type EntryFilter, type Registry, type RegistryTotals, type Untrusted } from './types.js';
import { isAlive } from './pid.js';
import { bucketId } from './binding.js';

interface FileRow {
  key: string;
  position: number;
  status: string;
  etag: string | null;
  size: number | null;
  attempts: number;
  failures: number;
  loaded: number;
  rejected: number;
  skipped: number;
  error: string | null;
  first_seen_at: string;
  updated_at: string;
  done_at: string | null;
  checked_at: string | null;
  next_attempt_at: string | null;
  reprocess: boolean | number;
  claimed_by: string | null;
  lease_expires_at: number | null;
  after_load_action: string | null;
  after_load_state: string | null;
  after_load_attempts: number;
  after_load_error: string | null;
  after_load_next_at: string | null;
  after_load_done_at: string | null;
}

/** The `afterLoad` of a row: none while `after_load_state` is NULL (AFTER_LOAD=keep, or rows from before migration 008). */
function afterLoadOf(r: FileRow): Pick<RegistryEntry, 'afterLoad'> {
  if (r.after_load_state !== 'pending' && r.after_load_state !== 'done') return {};
  return {
    afterLoad: {
      action: r.after_load_action ?? '', state: r.after_load_state, attempts: Number(r.after_load_attempts), error: r.after_load_error,
      nextAttemptAt: r.after_load_next_at, doneAt: r.after_load_done_at,
    },
  };
}

/** The after-load columns of an entry: all NULL (and no attempts) without one. */
function afterLoadColumns(e: RegistryEntry): Pick<FileRow, 'after_load_action' | 'after_load_state' | 'after_load_attempts' | 'after_load_error' | 'after_load_next_at' | 'after_load_done_at'> {
  const a = e.afterLoad;
  return {
    after_load_action: a?.action ?? null, after_load_state: a?.state ?? null, after_load_attempts: a?.attempts ?? 0,
    after_load_error: a?.error ?? null, after_load_next_at: a?.nextAttemptAt ?? null, after_load_done_at: a?.doneAt ?? null,
  };
}

function toEntry(r: FileRow): RegistryEntry | undefined {
  if (r.status !== 'done' && r.status !== 'failed') return undefined; // 'pending': claimed, never finished
  return {
    status: r.status, etag: r.etag, size: r.size === null ? null : Number(r.size), attempts: Number(r.attempts), failures: Number(r.failures),
    loaded: Number(r.loaded), rejected: Number(r.rejected), skipped: Number(r.skipped), error: r.error,
    firstSeenAt: r.first_seen_at, updatedAt: r.updated_at, doneAt: r.done_at, checkedAt: r.checked_at, nextAttemptAt: r.next_attempt_at,
    ...(r.reprocess ? { reprocess: true } : {}),
    ...afterLoadOf(r),
  };
}

function toColumns(e: RegistryEntry): Partial<FileRow> {
  return {
    status: e.status, etag: e.etag, size: e.size, attempts: e.attempts, failures: e.failures, loaded: e.loaded, rejected: e.rejected,
    skipped: e.skipped, error: e.error, first_seen_at: e.firstSeenAt, updated_at: e.updatedAt, done_at: e.doneAt, checked_at: e.checkedAt,
    next_attempt_at: e.nextAttemptAt, reprocess: Boolean(e.reprocess), ...afterLoadColumns(e),
  };
}

/** Keys per claim statement (6 bindings each), and entries per staging statement (22 bindings each). */
const CLAIMS_PER_STATEMENT = 500;
const STAGES_PER_STATEMENT = 400;

/** What `stage` writes, with the SQL type each value is cast to inside `VALUES` (PostgreSQL infers none there). */
const STAGED: ReadonlyArray<{ name: keyof FileRow; type: string }> = [
  { name: 'key', type: 'text' }, { name: 'status', type: 'text' }, { name: 'etag', type: 'text' }, { name: 'size', type: 'bigint' },
  { name: 'attempts', type: 'integer' }, { name: 'failures', type: 'integer' }, { name: 'loaded', type: 'bigint' },
  { name: 'rejected', type: 'bigint' }, { name: 'skipped', type: 'bigint' }, { name: 'error', type: 'text' },
  { name: 'first_seen_at', type: 'text' }, { name: 'updated_at', type: 'text' }, { name: 'done_at', type: 'text' },
  { name: 'checked_at', type: 'text' }, { name: 'next_attempt_at', type: 'text' }, { name: 'reprocess', type: 'boolean' },
  // AFTER_LOAD's pending action is written in the file's own transaction: a crash right after the commit leaves it to do.
  { name: 'after_load_action', type: 'text' }, { name: 'after_load_state', type: 'text' }, { name: 'after_load_attempts', type: 'integer' },
  { name: 'after_load_error', type: 'text' }, { name: 'after_load_next_at', type: 'text' }, { name: 'after_load_done_at', type: 'text' },
];

/** What `RETURNING "key"` gives through knex's raw: pg's result object, or better-sqlite3's rows. */
type RawKeys = { rows?: Array<{ key: string }> } | Array<{ key: string }>;

function returnedKeys(result: RawKeys): string[] {
  return (Array.isArray(result) ? result : result.rows ?? []).map((r) => r.key);
}

/** Rows per query when entries are read in key order (see `entries`). */
const PAGE_ROWS = 10_000;

/** The columns an entry is made of (toEntry), and no others: a full listing looks up every key of the bucket. */
const ENTRY_COLUMNS: ReadonlyArray<keyof FileRow> = [
  'key', 'status', 'etag', 'size', 'attempts', 'failures', 'loaded', 'rejected', 'skipped', 'error', 'first_seen_at', 'updated_at', 'done_at',
  'checked_at', 'next_attempt_at', 'reprocess', 'after_load_action', 'after_load_state', 'after_load_attempts', 'after_load_error',
  'after_load_next_at', 'after_load_done_at',
];

/** Keys per query of `lookup` (one binding each). */
const LOOKUP_KEYS = 500;

export interface DbRegistryOptions {
  dialect: Dialect;
  leaseMs: number;
  /** A listing younger than this is reused by the other workers instead of fetching the index again. */
  listingFreshMs: number;
  /** When this process started (default: `performance.timeOrigin`); a listing older than that is not shared with it. */
  startedAt?: number;
  /** This worker's host name in claims; claims of dead processes under the same name are taken over at once. */
  host?: string;
  /** The bucket's identity (binding.ts): this registry reads and writes only that bucket's rows. */
  bucket: string;
}

/**
 * The registry as a table in the target database (REGISTRY=database).
 *
 * - Exactly-once effect: a file's entry is written in the same transaction as its rows.
 * - Scale-out: before fetching a file a worker claims it with a conditional write (`claimed_by`,
 *   `lease_expires_at`; the files entering its window together, one statement for the new keys), which succeeds
 *   only if nobody holds a live lease and the entry is still the version the worker planned from; the lease is
 *   heartbeated while the file is processed. A worker that dies loses its claims after LEASE_SECONDS and another
 *   takes the files over. At commit the entries are re-read `FOR UPDATE`, and a file whose claim was lost is
 *   rolled back and left to the new owner.
 * - One listing: the worker that finds the shared listing stale takes a short lease on it (compare-and-set),
 *   fetches the index and stores it; the others wait for it and reuse it.
 */
export class DbRegistry implements Registry {
  readonly mode = 'database' as const;
  readonly description: string;
  readonly workerId: string;
  private readonly host: string;
  private readonly held = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** The bucket's rows (`bucket` column), and its shared listing row. */
  private readonly bucket: string;
  /** When this process started (ms since the epoch): a listing made before is never shared with it (see listKeys). */
  private readonly startedAt: number;
  untrusted: Untrusted | null = null;

  constructor(private readonly db: Knex, private readonly opts: DbRegistryOptions) {
    this.host = opts.host || hostname();
    this.workerId = `${this.host}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.bucket = bucketId(opts.bucket);
    this.startedAt = opts.startedAt ?? Math.floor(performance.timeOrigin);
    this.description = `table ${FILES_TABLE} of the database, bucket ${opts.bucket}`;
  }

  /** This bucket's rows of the registry table. */
  private rows(db: Knex | Knex.Transaction = this.db): Knex.QueryBuilder {
    return db(FILES_TABLE).where('bucket', this.bucket);
  }

  /**
   * Rows written before registries were bound to a bucket belong to none: said once, and their files are processed
   * again for this bucket (see migration 005).
   */
  async checkUnbound(): Promise<void> {
    const row = (await this.db(FILES_TABLE).where('bucket', '').count({ n: '*' }).first()) as { n: number | string } | undefined;
    const n = Number(row?.n ?? 0);
    this.untrusted = n === 0 ? null : {
      reason: `${n} row(s) of ${FILES_TABLE} were written before registries were bound to a bucket (bucket = ''); their files are processed again ` +
        `for this bucket; once every bucket has run, remove them with DELETE FROM ${FILES_TABLE} WHERE bucket = ''`,
      entries: n,
      movedTo: null,
    };
  }

  async lookup(keys: readonly string[]): Promise<Map<string, RegistryEntry>> {
    const found = new Map<string, RegistryEntry>();
    for (let i = 0; i < keys.length; i += LOOKUP_KEYS) {
      const rows = await this.lookupRows(keys.slice(i, i + LOOKUP_KEYS));
      for (const row of rows) {
        const entry = toEntry(row);
        if (entry) found.set(row.key, entry);
      }
    }
    return found;
  }

  /**
   * The rows of `keys`, by the primary key alone. A condition on `status` too lets SQLite pick the (bucket, status)
   * index and read every row of the bucket for each query; a row only claimed (pending) gives no entry (toEntry).
   * PostgreSQL planned `key IN (…)` as a scan of the bucket's rows through another index whenever its statistics
   * did not show the bucket holding most of the table (never analyzed: autovacuum off; or a new bucket): 25 ms a
   * query over 100,000 rows, and growing with the table. A LIMIT 1 lateral lookup per key cannot be planned as
   * anything but one probe of the primary key each: 5 ms, with or without statistics.
   */
  private async lookupRows(keys: readonly string[]): Promise<FileRow[]> {
    if (this.opts.dialect !== 'postgres') return (await this.rows().whereIn('key', keys).select(ENTRY_COLUMNS)) as FileRow[];
    const result = (await this.db.raw(
      `SELECT f.* FROM json_array_elements_text(?::json) AS k("key") CROSS JOIN LATERAL (SELECT ${ENTRY_COLUMNS.map((c) => `"${c}"`).join(', ')} FROM ?? ` +
        'WHERE "bucket" = ? AND "key" = k."key" LIMIT 1) AS f',
      [JSON.stringify(keys), FILES_TABLE, this.bucket], // one text binding: knex spreads an array into a list
    )) as { rows: FileRow[] };
    return result.rows;
  }

  /**
   * PAGE_ROWS rows a query, in the primary key's order (the column's collation: byte order on SQLite and MySQL), each
   * page after the last key of the one before: a million rows read as one array of row objects, beside the entries
   * they become, took 1.85 GB at the peak.
   */
  async *entries(filter: EntryFilter = {}): AsyncIterableIterator<[string, RegistryEntry]> {
    // Without a condition on the entry, by the primary key alone (see `lookup`); pending rows are left out below.
    const any = filter.status === undefined && !filter.afterLoadPending && !filter.reprocess;
    for (let after = filter.after ?? null; ;) {
      const page = (any ? this.rows() : this.filtered(filter)).orderBy('key').limit(PAGE_ROWS);
      const rows = (await (after === null ? page : page.andWhere('key', '>', after)).select()) as FileRow[];
      for (const row of rows) {
        const entry = toEntry(row);
        if (entry) yield [row.key, entry];
      }
      if (rows.length < PAGE_ROWS) return;
      after = (rows[rows.length - 1] as FileRow).key;
    }
  }

  async count(filter: EntryFilter = {}): Promise<number> {
    let query = this.filtered(filter);
    if (filter.after !== undefined) query = query.andWhere('key', '>', filter.after);
    const row = (await query.count({ n: '*' }).first()) as { n: number | string } | undefined;
    return Number(row?.n ?? 0);
  }

  /** One aggregate query: the table is summed where it is, never read into memory. */
  async totals(): Promise<RegistryTotals> {
    const done = (expr: string): Knex.Raw => this.db.raw(`sum(case when status = 'done' then ${expr} else 0 end)`);
    const row = (await this.filtered({}).first({
      total: this.db.raw('count(*)'), done: done('1'), failed: this.db.raw("sum(case when status = 'failed' then 1 else 0 end)"),
      loaded: done('loaded'), rejected: done('rejected'), skipped: done('skipped'),
      lastDoneAt: this.db.raw("max(case when status = 'done' then done_at end)"),
      afterLoadDone: done("case when after_load_state = 'done' then 1 else 0 end"),
      afterLoadPending: done("case when after_load_state = 'pending' then 1 else 0 end"),
    })) as Record<string, number | string | null> | undefined;
    const n = (name: string): number => Number(row?.[name] ?? 0);
    return {
      files: { total: n('total'), done: n('done'), failed: n('failed') },
      records: { loaded: n('loaded'), rejected: n('rejected'), skipped: n('skipped') },
      lastDoneAt: (row?.lastDoneAt as string | null | undefined) ?? null,
      afterLoad: { done: n('afterLoadDone'), pending: n('afterLoadPending') },
    };
  }

  /** This bucket's finished rows (not those only claimed) that `filter` takes, `after` aside. */
  private filtered(filter: EntryFilter): Knex.QueryBuilder {
    let query = this.rows();
    // Pending actions through their index (migration 009): few rows, however large the table.
    if (filter.afterLoadPending) query = query.andWhere({ status: 'done', after_load_state: 'pending' });
    else if (filter.status !== undefined) query = query.andWhere('status', filter.status);
    else query = query.whereIn('status', ['done', 'failed']);
    if (filter.afterLoadPending && filter.status === 'failed') query = query.andWhereRaw('1 = 0');
    if (filter.reprocess) query = query.andWhere('reprocess', true);
    return query;
  }

  /**
   * Frees the claims of dead workers of this host. Nothing else is read ahead: `lookup` asks the table for each page
   * of the listing, so what other workers wrote is always seen as it is now.
   */
  async refresh(): Promise<void> {
    const claimers = (await this.rows().distinct('claimed_by').whereNotNull('claimed_by')) as Array<{ claimed_by: string }>;
    const dead = deadLocalClaimers(claimers.map((r) => r.claimed_by), this.workerId, this.host);
    if (dead.length > 0) {
      // Claims of a daemon on this host that is gone (killed, or this very process before a restart): no need
      // to wait out their lease.
      await this.rows().whereIn('claimed_by', dead).update({ claimed_by: null, lease_expires_at: null });
    }
  }

  async listKeys(source: Source, signal: AbortSignal): Promise<string[]> {
    const name = this.bucket;
    for (const deadline = Date.now() + 120_000; ;) {
      const row = (await this.db(LISTING_TABLE).where({ name }).first()) as { listed_at: number | string; lease_until?: number | string; keys: string } | undefined;
      const listedAt = Number(row?.listed_at ?? 0);
      // Shared when fresh, and made since this process started: workers started together share one listing, but a
      // run started after it (`run --once` right after another) lists again, and sees files added meanwhile.
      if (row && Date.now() - listedAt < this.opts.listingFreshMs && listedAt >= this.startedAt) return JSON.parse(row.keys) as string[];
      const won = await this.takeListingLease(name, row === undefined, listedAt);
      if (won) {
        try {
          const keys = await source.listKeys(signal);
          await this.db(LISTING_TABLE).where({ name }).update({ listed_at: Date.now(), listed_by: this.workerId, lease_until: 0, keys: JSON.stringify(keys) });
          return keys;
        } catch (err) {
          await this.db(LISTING_TABLE).where({ name, listed_by: this.workerId }).update({ lease_until: 0 }).catch(() => undefined);
          throw err;
        }
      }
      if (Date.now() > deadline || signal.aborted) return source.listKeys(signal); // never wait forever on a stuck peer
      await sleep(100 + Math.random() * 100);
    }
  }

  /** Compare-and-set on the listing row: only one worker lists at a time; a dead lister's lease runs out. */
  private async takeListingLease(name: string, missing: boolean, seenListedAt: number): Promise<boolean> {
    const now = Date.now();
    if (missing) {
      await this.insertIgnore(LISTING_TABLE, { name, listed_at: 0, listed_by: '', lease_until: 0, keys: '[]' }, ['name']);
    }
    const updated = await this.db(LISTING_TABLE)
      .where({ name })
      .andWhere('listed_at', seenListedAt)
      .andWhere('lease_until', '<', now)
      .update({ lease_until: now + 30_000, listed_by: this.workerId });
    return Number(updated) === 1;
  }

  async claim(items: readonly PlanItem[]): Promise<Set<string>> {
    const now = Date.now();
    const byKey = new Map(items.map((item) => [item.key, item]));
    const fresh = [...byKey.values()].filter((item) => item.entry === undefined);
    const claimed = new Set<string>();
    // Held (heartbeated, and given back by `release`) as soon as taken: if a later statement fails, the caller
    // releases the batch, and a claim already taken must not sit out its lease.
    const took = (key: string): void => {
      claimed.add(key);
      this.held.add(key);
      this.startHeartbeat();
    };
    for (let i = 0; i < fresh.length; i += CLAIMS_PER_STATEMENT) {
      const batch = fresh.slice(i, i + CLAIMS_PER_STATEMENT);
      const taken = this.opts.dialect === 'mysql' ? await this.claimNewMysql(batch, now) : await this.claimNew(batch, now);
      for (const key of taken) took(key);
    }
    // Keys done or failed before (retries, rechecks, reprocess requests): few, and each must still be the version
    // it was planned from, so one conditional UPDATE each.
    for (const item of byKey.values()) {
      if (item.entry && (await this.claimPlanned(item, item.entry, now))) took(item.key);
    }
    return claimed;
  }

  /** A key with an entry: taken if nobody holds a live lease and nobody finished it since it was planned. */
  private async claimPlanned(item: PlanItem, planned: RegistryEntry, now: number): Promise<boolean> {
    const updated = await this.claimable(this.rows().where('key', item.key), now)
      .andWhere('updated_at', planned.updatedAt)
      .update({ claimed_by: this.workerId, lease_expires_at: now + this.opts.leaseMs, position: item.index });
    return Number(updated) === 1;
  }

  /** Rows nobody holds a live lease on (or this worker does). */
  private claimable(query: Knex.QueryBuilder, now: number): Knex.QueryBuilder {
    return query.andWhere((q) => {
      void q.whereNull('claimed_by').orWhere('lease_expires_at', '<', now).orWhere('claimed_by', this.workerId);
    });
  }

  /**
   * Keys this worker has not seen done or failed, claimed in one statement (PostgreSQL, SQLite): inserted as
   * pending and ours, or, where another worker inserted a key first, taken under the same conditions as
   * `claimPlanned`'s UPDATE. On a first load this was one statement (and one commit) per file.
   */
  private async claimNew(items: readonly PlanItem[], now: number): Promise<string[]> {
    const iso = new Date(now).toISOString();
    const values: Knex.Value[] = [];
    for (const item of items) values.push(this.bucket, item.key, item.index, iso, iso, this.workerId, now + this.opts.leaseMs);
    const result = (await this.db.raw(
      `INSERT INTO ?? (??, ??, ??, ??, ??, ??, ??, ??) VALUES ${items.map(() => "(?, ?, ?, 'pending', ?, ?, ?, ?)").join(', ')}
       ON CONFLICT (??, ??) DO UPDATE SET ?? = excluded.??, ?? = excluded.??, ?? = excluded.??
       WHERE (??.?? IS NULL OR ??.?? < ? OR ??.?? = ?) AND ??.?? = 'pending'
       RETURNING ??`,
      [
        FILES_TABLE, 'bucket', 'key', 'position', 'status', 'first_seen_at', 'updated_at', 'claimed_by', 'lease_expires_at',
        ...values,
        'bucket', 'key', 'claimed_by', 'claimed_by', 'lease_expires_at', 'lease_expires_at', 'position', 'position',
        FILES_TABLE, 'claimed_by', FILES_TABLE, 'lease_expires_at', now, FILES_TABLE, 'claimed_by', this.workerId, FILES_TABLE, 'status',
        'key',
      ],
    )) as RawKeys;
    return returnedKeys(result);
  }

  /**
   * MySQL has no RETURNING: insert the missing keys as pending, take the pending ones nobody holds, then read which
   * are ours (a live lease cannot be taken from us in between).
   */
  private async claimNewMysql(items: readonly PlanItem[], now: number): Promise<string[]> {
    const iso = new Date(now).toISOString();
    const keys = items.map((item) => item.key);
    await this.db(FILES_TABLE)
      .insert(items.map((item) => ({ bucket: this.bucket, key: item.key, position: item.index, status: 'pending', first_seen_at: iso, updated_at: iso })))
      .onConflict(['bucket', 'key'])
      .ignore();
    await this.claimable(this.rows().whereIn('key', keys).andWhere('status', 'pending'), now)
      .update({ claimed_by: this.workerId, lease_expires_at: now + this.opts.leaseMs });
    const rows = (await this.rows().select('key').whereIn('key', keys).andWhere('claimed_by', this.workerId)) as Array<{ key: string }>;
    return rows.map((r) => r.key);
  }

  async release(keys: readonly string[]): Promise<void> {
    const mine = keys.filter((k) => this.held.delete(k));
    for (let i = 0; i < mine.length; i += 500) {
      await this.rows().whereIn('key', mine.slice(i, i + 500)).andWhere('claimed_by', this.workerId).update({ claimed_by: null, lease_expires_at: null });
    }
  }

  async lockEntries(trx: Knex.Transaction, keys: readonly string[]): Promise<Map<string, RegistryEntry | undefined>> {
    const found = new Map<string, FileRow>();
    const sorted = [...keys].sort(); // one lock order for every worker
    for (let i = 0; i < sorted.length; i += 500) {
      let query = this.rows(trx).whereIn('key', sorted.slice(i, i + 500)).orderBy('key');
      if (this.opts.dialect !== 'sqlite') query = query.forUpdate();
      for (const row of (await query) as FileRow[]) found.set(row.key, row);
    }
    const entries = new Map<string, RegistryEntry | undefined>();
    for (const key of keys) {
      const row = found.get(key);
      if (!row || row.claimed_by !== this.workerId) throw new LeaseLostError(key);
      entries.set(key, toEntry(row));
    }
    return entries;
  }

  /**
   * The group's entries, STAGES_PER_STATEMENT keys per statement, each only where the claim is still ours:
   * `WITH v AS (VALUES …) UPDATE … FROM v … RETURNING` on PostgreSQL and SQLite, `UPDATE … JOIN (SELECT … UNION
   * ALL …)` on MySQL (no RETURNING there: every row it updates goes from our claim to none, so the count of
   * updated rows tells). A key not updated has lost its claim.
   */
  async stage(trx: Knex.Transaction, entries: ReadonlyMap<string, RegistryEntry>): Promise<void> {
    const all = [...entries];
    for (let i = 0; i < all.length; i += STAGES_PER_STATEMENT) {
      const batch = all.slice(i, i + STAGES_PER_STATEMENT);
      const bindings: Knex.Value[] = [];
      for (const [key, entry] of batch) {
        const columns: Record<string, unknown> = { ...toColumns(entry), key };
        for (const c of STAGED) bindings.push(c.name === 'reprocess' ? (columns.reprocess ? 1 : 0) : (columns[c.name] as Knex.Value | undefined) ?? null);
      }
      bindings.push(this.bucket, this.workerId);
      if (this.opts.dialect === 'mysql') await this.stageMysql(trx, batch.map(([key]) => key), bindings);
      else await this.stageReturning(trx, batch.map(([key]) => key), bindings);
    }
  }

  private async stageReturning(trx: Knex.Transaction, keys: readonly string[], bindings: Knex.Value[]): Promise<void> {
    const t = `"${FILES_TABLE}"`;
    const row = `(${STAGED.map((c) => `CAST(? AS ${c.type})`).join(', ')})`;
    const result = (await trx.raw(
      `WITH v(${STAGED.map((c) => `"${c.name}"`).join(', ')}) AS (VALUES ${keys.map(() => row).join(', ')}) ` +
        `UPDATE ${t} SET ${STAGED.filter((c) => c.name !== 'key').map((c) => `"${c.name}" = v."${c.name}"`).join(', ')}, ` +
        `"claimed_by" = NULL, "lease_expires_at" = NULL FROM v WHERE ${t}."key" = v."key" AND ${t}."bucket" = ? AND ${t}."claimed_by" = ? ` +
        `RETURNING ${t}."key"`,
      bindings,
    )) as RawKeys;
    const done = new Set(returnedKeys(result));
    for (const key of keys) if (!done.has(key)) throw new LeaseLostError(key);
  }

  private async stageMysql(trx: Knex.Transaction, keys: readonly string[], bindings: Knex.Value[]): Promise<void> {
    const first = `SELECT ${STAGED.map((c) => `? AS \`${c.name}\``).join(', ')}`;
    const rest = ` UNION ALL SELECT ${STAGED.map(() => '?').join(', ')}`;
    const [result] = (await trx.raw(
      `UPDATE \`${FILES_TABLE}\` AS f JOIN (${first}${rest.repeat(keys.length - 1)}) AS v ON f.\`key\` = v.\`key\` ` +
        `SET ${STAGED.filter((c) => c.name !== 'key').map((c) => `f.\`${c.name}\` = v.\`${c.name}\``).join(', ')}, ` +
        'f.`claimed_by` = NULL, f.`lease_expires_at` = NULL WHERE f.`bucket` = ? AND f.`claimed_by` = ?',
      bindings,
    )) as [{ affectedRows: number }];
    if (result.affectedRows === keys.length) return;
    // Someone else's claim, most likely; failing that, the first key (the transaction rolls back either way).
    const other = (await this.rows(trx).select('key').whereIn('key', keys).whereNotNull('claimed_by').first()) as { key: string } | undefined;
    throw new LeaseLostError(other?.key ?? (keys[0] as string));
  }

  async committed(changes: ReadonlyMap<string, RegistryEntry>): Promise<void> {
    for (const key of changes.keys()) this.held.delete(key);
    if (this.held.size === 0) this.stopHeartbeat();
  }

  /**
   * One conditional UPDATE per key (AFTER_LOAD acts on files one at a time anyway): only where the row still holds
   * the loaded version the action was about (`done_at`) and its action is pending. `updated_at` moves, so the other
   * workers' refresh sees the change.
   */
  async recordAfterLoad(changes: ReadonlyMap<string, RegistryEntry>): Promise<void> {
    for (const [key, entry] of changes) {
      await this.rows()
        .where({ key, status: 'done', done_at: entry.doneAt, after_load_state: 'pending' })
        .update({ ...afterLoadColumns(entry), updated_at: entry.updatedAt, reprocess: Boolean(entry.reprocess) });
    }
  }

  async markReprocess(keys: readonly string[]): Promise<number> {
    let marked = 0;
    for (let i = 0; i < keys.length; i += 500) {
      marked += Number(await this.rows().whereIn('key', keys.slice(i, i + 500)).whereIn('status', ['done', 'failed']).update({ reprocess: true }));
    }
    return marked;
  }

  async close(): Promise<void> {
    this.stopHeartbeat();
    await this.release([...this.held]).catch(() => undefined);
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      const keys = [...this.held];
      if (keys.length === 0) return;
      const until = Date.now() + this.opts.leaseMs;
      void (async () => {
        for (let i = 0; i < keys.length; i += 500) {
          await this.rows().whereIn('key', keys.slice(i, i + 500)).andWhere('claimed_by', this.workerId).update({ lease_expires_at: until });
        }
      })().catch(() => undefined); // a missed beat is retried at the next; the lease has slack for that
    }, Math.max(50, Math.floor(this.opts.leaseMs / 3)));
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** INSERT that does nothing when the key exists, in each dialect's words. */
  private async insertIgnore(table: string, row: Record<string, unknown>, key: string[]): Promise<void> {
    await this.db(table).insert(row).onConflict(key).ignore();
  }
}

/**
 * Claimers named `<this host>:<pid>:<nonce>` whose process is gone: the pid is not running, or it is our own
 * pid with another nonce (a container restarted under the same hostname and pid 1). Workers on other hosts are
 * left to their leases.
 */
export function deadLocalClaimers(claimers: ReadonlyArray<string | null>, me: string, host: string): string[] {
  const dead = new Set<string>();
  for (const c of claimers) {
    if (c === null || c === me || dead.has(c)) continue;
    const m = /^(.*):(\d+):[0-9a-f]+$/.exec(c);
    if (!m || m[1] !== host) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || !isAlive(pid)) dead.add(c);
  }
  return [...dead];
}
