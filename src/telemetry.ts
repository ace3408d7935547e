import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { redactText } from './redact.js';

export interface CycleSummary {
  listed: number;
  planned: number;
  filesDone: number;
  filesFailed: number;
  filesUnchanged: number;
  filesUpToDate: number;
  filesBackoff: number;
  filesCancelled: number;
  /** Files another worker held or finished (database registry, several daemons). */
  filesElsewhere: number;
  /** Listed files recorded failed once the cycle ended, those waiting out their backoff included. */
  failedListed: number;
  recordsLoaded: number;
  recordsRejected: number;
  recordsSkipped: number;
  bytes: number;
  seconds: number;
  /** AFTER_LOAD actions done this cycle (files deleted or moved), and those that failed (tried again later). */
  afterLoadDone?: number;
  afterLoadFailed?: number;
}

export interface FileDoneEvent { key: string; loaded: number; rejected: number; skipped: number; bytes: number; ms: number }
export interface FileFailedEvent { key: string; error: string; attempts: number; nextAttemptAt: string | null }

/** Who else wants to hear about a cycle as it goes (the progress bar). */
export interface ProgressListener {
  cycleStarted?(planned: number): void;
  /** More files planned while the cycle loads (a listing longer than PLAN_AHEAD_FILES goes on beside the loading). */
  cycleGrew?(planned: number): void;
  fileSettled?(outcome: 'done' | 'failed' | 'unchanged' | 'cancelled', records: number): void;
  cycleEnded?(): void;
}

/** Prometheus metrics, all prefixed `bucket_ingest_`. */
function createMetrics(registry: Registry, pendingAge: () => number) {
  const m = {
    files: new Counter({ name: 'bucket_ingest_files_total', help: 'Files by outcome: done, failed, unchanged (asked again, same version), skipped_unchanged (not asked: up to date)', labelNames: ['outcome'] as const, registers: [registry] }),
    records: new Counter({ name: 'bucket_ingest_records_total', help: 'Records by outcome: loaded, rejected, skipped', labelNames: ['outcome'] as const, registers: [registry] }),
    bytes: new Counter({ name: 'bucket_ingest_bytes_fetched_total', help: 'Bytes of data files fetched and loaded', registers: [registry] }),
    responses: new Counter({ name: 'bucket_ingest_http_responses_total', help: 'Bucket HTTP responses by status class (2xx, 3xx, 4xx, 5xx)', labelNames: ['class'] as const, registers: [registry] }),
    retries: new Counter({ name: 'bucket_ingest_retries_total', help: 'Retries by kind: fetch, database', labelNames: ['kind'] as const, registers: [registry] }),
    cycles: new Counter({ name: 'bucket_ingest_cycles_total', help: 'Cycles by outcome: ok, error', labelNames: ['outcome'] as const, registers: [registry] }),
    cycleSeconds: new Histogram({ name: 'bucket_ingest_cycle_duration_seconds', help: 'Duration of a cycle', buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600], registers: [registry] }),
    fileSeconds: new Histogram({ name: 'bucket_ingest_file_duration_seconds', help: 'Fetch, decode and validate time of one file', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30], registers: [registry] }),
    pending: new Gauge({ name: 'bucket_ingest_pending_files', help: 'Listed files not done yet (new, failed, waiting to retry)', registers: [registry] }),
    oldestPending: new Gauge({
      name: 'bucket_ingest_oldest_pending_age_seconds', help: 'Age of the oldest listed file that is not done yet (0 when none)', registers: [registry],
      collect() { this.set(pendingAge()); },
    }),
    notifications: new Counter({ name: 'bucket_ingest_notifications_total', help: 'Bucket event notifications by outcome: created (to process), duplicate (that version already done), removed (counted, not acted on), ignored (another bucket, or outside it), malformed (not an S3 event)', labelNames: ['outcome'] as const, registers: [registry] }),
    discovered: new Counter({ name: 'bucket_ingest_files_discovered_total', help: 'Files to process found by each path: a notification, or the listing (new keys)', labelNames: ['via'] as const, registers: [registry] }),
    afterLoad: new Counter({ name: 'bucket_ingest_after_load_total', help: 'AFTER_LOAD actions by result: done (file deleted or moved), failed (tried again later), skipped (file changed since it was loaded: left in place, loaded again)', labelNames: ['result'] as const, registers: [registry] }),
    afterLoadPending: new Gauge({ name: 'bucket_ingest_after_load_pending', help: 'Loaded files whose AFTER_LOAD action is still to do (failed, or not reached yet)', registers: [registry] }),
    lastSuccess: new Gauge({ name: 'bucket_ingest_last_success_timestamp_seconds', help: 'Unix time the last cycle finished without error', registers: [registry] }),
  };
  // Start every labelled series at 0, so dashboards and rate() see them before the first event.
  for (const outcome of ['done', 'failed', 'unchanged', 'skipped_unchanged']) m.files.inc({ outcome }, 0);
  for (const outcome of ['loaded', 'rejected', 'skipped']) m.records.inc({ outcome }, 0);
  for (const kind of ['fetch', 'database']) m.retries.inc({ kind }, 0);
  for (const outcome of ['ok', 'error']) m.cycles.inc({ outcome }, 0);
  for (const outcome of ['created', 'duplicate', 'removed', 'ignored', 'malformed']) m.notifications.inc({ outcome }, 0);
  for (const via of ['notification', 'listing']) m.discovered.inc({ via }, 0);
  for (const result of ['done', 'failed', 'skipped']) m.afterLoad.inc({ result }, 0);
  collectDefaultMetrics({ register: registry });
  return m;
}

/**
 * The one place that says what the daemon reports. Every event has a stable name (`<Noun><Verb>[Error]`)
 * and fields; the log line, the metrics and the progress bar all read the same call, so they cannot
 * disagree.
 */
export class Telemetry {
  readonly metrics: Registry = new Registry();
  private readonly m: ReturnType<typeof createMetrics>;
  private readonly listeners: ProgressListener[] = [];
  /** Listed keys not done yet → when first seen (ms). Drives the pending gauges. */
  private readonly pending = new Map<string, number>();
  /** State the readiness probe reads. */
  readonly state = {
    lastListingOk: false, lastListingError: null as string | null, lastCycleAt: null as string | null, cycle: 0,
    /** With NOTIFY_URL: why notifications are not flowing (null: they are); undefined without. */
    notifications: undefined as string | null | undefined,
  };

  constructor(readonly log: Logger) {
    this.m = createMetrics(this.metrics, () => this.pendingFiles().oldestAgeSeconds);
  }

  /** Listed files not done yet, and how long the oldest of them has waited (the pending gauges, for the dashboard). */
  pendingFiles(): { files: number; oldestAgeSeconds: number } {
    let oldest = Infinity;
    for (const t of this.pending.values()) if (t < oldest) oldest = t;
    return { files: this.pending.size, oldestAgeSeconds: oldest === Infinity ? 0 : Math.max(0, (Date.now() - oldest) / 1000) };
  }

  subscribe(listener: ProgressListener): () => void {
    this.listeners.push(listener);
    return () => this.listeners.splice(this.listeners.indexOf(listener), 1);
  }

  listingFailed(error: string): void {
    this.state.lastListingOk = false;
    this.state.lastListingError = redactText(error);
  }

  /**
   * `via`: a cycle over the listing (the default), or over the keys of notifications, which leaves what the listing found
   * as it was. `listing: 'continuing'`: loading begins before the listing is read (PLAN_AHEAD_FILES files planned); the
   * counts are those so far, `cycleGrew` adds the rest and `listingFinished` says the totals.
   */
  cycleStarted(fields: {
    cycle: number; listed: number; planned: number; upToDate: number; backoff: number; pending: ReadonlyMap<string, number>;
    via?: 'listing' | 'notification'; discovered?: number; listing?: 'done' | 'continuing';
  }): void {
    const { pending, via = 'listing', discovered = 0, listing = 'done', ...logged } = fields;
    this.state.cycle = fields.cycle;
    if (via === 'listing') {
      this.state.lastListingOk = true;
      this.state.lastListingError = null;
      this.pending.clear();
    }
    this.grew({ upToDate: fields.upToDate, discovered, pending, via });
    const continuing = listing === 'continuing';
    this.log.info({ event: 'CycleStarted', ...logged, via, ...(continuing ? { listing } : {}) }, via === 'notification'
      ? `cycle ${fields.cycle}: ${fields.planned} file(s) to process from notifications`
      : continuing
        ? `cycle ${fields.cycle}: ${fields.planned} to process in the first ${fields.listed} keys listed; loading them while the listing goes on`
        : `cycle ${fields.cycle}: ${fields.listed} keys listed, ${fields.planned} to process, ${fields.upToDate} up to date, ${fields.backoff} waiting to retry`);
    for (const l of this.listeners) l.cycleStarted?.(fields.planned);
  }

  /** More of a continuing listing planned (see cycleStarted): counted, not logged. */
  cycleGrew(fields: { listed: number; planned: number; upToDate: number; backoff: number; discovered: number; pending: ReadonlyMap<string, number> }): void {
    this.grew({ upToDate: fields.upToDate, discovered: fields.discovered, pending: fields.pending, via: 'listing' });
    if (fields.planned > 0) for (const l of this.listeners) l.cycleGrew?.(fields.planned);
  }

  /** The end of a listing that went on beside the loading: its totals. */
  listingFinished(fields: { cycle: number; listed: number; planned: number; upToDate: number; backoff: number }): void {
    this.log.info({ event: 'ListingFinished', ...fields },
      `cycle ${fields.cycle}: listing finished: ${fields.listed} keys listed, ${fields.planned} to process, ${fields.upToDate} up to date, ${fields.backoff} waiting to retry`);
  }

  private grew(fields: { upToDate: number; discovered: number; pending: ReadonlyMap<string, number>; via: 'listing' | 'notification' }): void {
    for (const [k, t] of fields.pending) this.pending.set(k, t);
    this.m.pending.set(this.pending.size);
    this.m.files.inc({ outcome: 'skipped_unchanged' }, fields.upToDate);
    this.m.discovered.inc({ via: fields.via }, fields.discovered);
  }

  cycleFinished(cycle: number, s: CycleSummary): void {
    this.m.cycles.inc({ outcome: 'ok' });
    this.m.cycleSeconds.observe(s.seconds);
    this.m.lastSuccess.set(Date.now() / 1000);
    this.state.lastCycleAt = new Date().toISOString();
    this.log.info(
      { event: 'CycleFinished', cycle, ...s },
      `cycle ${cycle} finished: files ${s.filesDone} done, ${s.filesFailed} failed, ${s.filesUnchanged + s.filesUpToDate} unchanged` +
        `${s.filesCancelled > 0 ? `, ${s.filesCancelled} abandoned (left for the next run)` : ''}; ` +
        `records ${s.recordsLoaded} loaded, ${s.recordsRejected} rejected, ${s.recordsSkipped} skipped; ` +
        `${s.afterLoadDone === undefined ? '' : `after load ${s.afterLoadDone} done, ${s.afterLoadFailed ?? 0} failed; `}${s.seconds.toFixed(2)} s`,
    );
    for (const l of this.listeners) l.cycleEnded?.();
  }

  cycleFailed(cycle: number, error: string): void {
    this.m.cycles.inc({ outcome: 'error' });
    this.log.error({ event: 'CycleError', cycle, error }, `cycle ${cycle} failed: ${error}`);
    for (const l of this.listeners) l.cycleEnded?.();
  }

  fileDone(f: FileDoneEvent): void {
    this.settle(f.key);
    this.m.files.inc({ outcome: 'done' });
    this.m.records.inc({ outcome: 'loaded' }, f.loaded);
    this.m.records.inc({ outcome: 'rejected' }, f.rejected);
    this.m.records.inc({ outcome: 'skipped' }, f.skipped);
    this.m.bytes.inc(f.bytes);
    this.m.fileSeconds.observe(f.ms / 1000);
    this.log.debug({ event: 'FileDone', ...f }, `${f.key}: ${f.loaded} loaded, ${f.rejected} rejected, ${f.skipped} skipped`);
    for (const l of this.listeners) l.fileSettled?.('done', f.loaded + f.rejected + f.skipped);
  }

  /** Records of a loaded file that were not stored, neither as rows nor as rejections: they carry an erased value. */
  recordsErased(key: string, erased: number): void {
    this.log.info({ event: 'RecordsErased', key, erased }, `${key}: ${erased} record(s) not stored: they carry a value of the erasure list (bucket-ingest erase)`);
  }

  fileUnchanged(key: string): void {
    this.settle(key);
    this.m.files.inc({ outcome: 'unchanged' });
    this.log.debug({ event: 'FileUnchanged', key }, `${key}: unchanged since it was loaded`);
    for (const l of this.listeners) l.fileSettled?.('unchanged', 0);
  }

  fileFailed(f: FileFailedEvent): void {
    this.m.files.inc({ outcome: 'failed' });
    this.log.warn({ event: 'FileError', ...f }, `${f.key}: failed (${f.error})${f.nextAttemptAt ? `; next try after ${f.nextAttemptAt}` : ''}`);
    for (const l of this.listeners) l.fileSettled?.('failed', 0);
  }

  fileCancelled(key: string): void {
    this.log.debug({ event: 'FileCancelled', key }, `${key}: left for the next run (shutting down)`);
    for (const l of this.listeners) l.fileSettled?.('cancelled', 0);
  }

  fileRetry(f: { key: string; attempt: number; delayMs: number; reason: string }): void {
    this.m.retries.inc({ kind: 'fetch' });
    this.log.info({ event: 'FileRetry', ...f }, `${f.key}: attempt ${f.attempt} failed (${f.reason}); retrying in ${f.delayMs} ms`);
  }

  /** AFTER_LOAD deleted a loaded file, or moved it to `target` (debug, as FileDone: the cycle's summary counts them). */
  afterLoadDone(f: { key: string; action: string; target: string | null }): void {
    this.m.afterLoad.inc({ result: 'done' });
    this.log.debug({ event: 'AfterLoadDone', ...f }, f.target === null ? `${f.key}: deleted (AFTER_LOAD=${f.action})` : `${f.key}: moved to ${f.target} (AFTER_LOAD=${f.action})`);
  }

  afterLoadFailed(f: { key: string; action: string; error: string; attempts: number; nextAttemptAt: string }): void {
    this.m.afterLoad.inc({ result: 'failed' });
    this.log.warn({ event: 'AfterLoadError', ...f }, `${f.key}: AFTER_LOAD=${f.action} failed (${f.error}); its rows stay loaded; next try after ${f.nextAttemptAt}`);
  }

  /** The file changed after it was loaded: not deleted or moved, but loaded again at the next cycle. */
  afterLoadSkipped(f: { key: string; action: string }): void {
    this.m.afterLoad.inc({ result: 'skipped' });
    this.log.info({ event: 'AfterLoadSkipped', ...f }, `${f.key}: changed since it was loaded; left in place (not AFTER_LOAD=${f.action}) and loaded again at the next cycle`);
  }

  /** A file processed again (`reprocess`, `--force`) is not at its key: AFTER_LOAD took it away once it was loaded. */
  fileEmptied(key: string, action: string): void {
    this.log.info({ event: 'FileEmptied', key, action }, `${key}: not at its key any more (AFTER_LOAD=${action} after its load); nothing to load again, its rows stay`);
  }

  /** Loaded files whose AFTER_LOAD action is still to do, at the end of a cycle. */
  afterLoadPending(count: number): void {
    this.m.afterLoadPending.set(count);
  }

  daemonStarted(f: { profile: string; bucket: string; once: boolean; pollSeconds: number }): void {
    this.log.info({ event: 'DaemonStarted', profile: f.profile, bucket: f.bucket, once: f.once },
      `bucket-ingest: profile ${f.profile}, bucket ${f.bucket}${f.once ? ', one cycle' : `, every ${f.pollSeconds} s`}`);
  }

  daemonStopped(): void {
    this.log.info({ event: 'DaemonStopped' }, 'stopped');
  }

  httpListening(host: string, port: number): void {
    this.log.info({ event: 'HttpListening', host, port }, `serving the dashboard, /healthz, /readyz, /metrics and /api on http://${host}:${port}/`);
  }

  /** An operator's action from the dashboard (DASHBOARD_TOKEN), with what it did. */
  dashboardAction(action: 'reprocess' | 'replay', outcome: string): void {
    this.log.info({ event: 'DashboardAction', action, outcome: redactText(outcome) }, `dashboard: ${action}: ${redactText(outcome)}`);
  }

  shutdownRequested(signal: string, timeoutSeconds: number): void {
    this.log.info({ event: 'ShutdownRequested', signal }, `${signal}: finishing files in flight (at most ${timeoutSeconds} s), then exiting; send again to stop at once`);
  }

  shutdownForced(cause: { signal: string } | { reason: 'timeout' }): void {
    this.log.warn({ event: 'ShutdownForced', ...cause }, 'signal' in cause
      ? `${cause.signal} again: abandoning files in flight`
      : 'files in flight did not finish within SHUTDOWN_TIMEOUT_SECONDS; abandoning them');
  }

  filesFailed(count: number): void {
    this.log.warn({ event: 'FilesFailed', count }, `${count} file(s) are failed; see \`bucket-ingest status\``);
  }

  cycleRecordFailed(error: string): void {
    this.log.warn({ event: 'CycleRecordError', error }, `could not record the last cycle: ${error}`);
  }

  /** One line for a batch of claims that failed together (they share the database error). */
  claimFailed(keys: readonly string[], error: string): void {
    const what = keys.length === 1 ? `${keys[0]}: could not claim it` : `could not claim ${keys.length} files (${keys[0]}, …)`;
    this.log.warn({ event: 'ClaimError', keys, error }, `${what} (${error}); leaving ${keys.length === 1 ? 'it' : 'them'} for a later cycle`);
  }

  httpResponse(status: number): void {
    this.m.responses.inc({ class: `${Math.floor(status / 100)}xx` });
  }

  /** Start-up waits for a lock another process holds on the database (see migrate). */
  databaseWaiting(database: string, what: string, timeoutSeconds: number): void {
    this.log.warn({ event: 'DatabaseWaiting', database, waitingFor: what, timeoutSeconds },
      `${database}: waiting for ${what} (giving up after ${timeoutSeconds} s, DATABASE_LOCK_TIMEOUT_SECONDS)`);
  }

  /** Start-up changed a record table to follow its schema, losing nothing (load/evolve.ts): one line per column. */
  schemaEvolved(c: { table: string; column: string; what: string }): void {
    this.log.info({ event: 'SchemaEvolved', table: c.table, column: c.column, change: c.what }, `table ${c.table}, column ${c.column}: ${c.what}`);
  }

  /** Registry entries found that are not about this database and bucket: set aside, their files processed again. */
  /** The JSON registry holds more files than it copes with well (see JSON_REGISTRY_WARN_ENTRIES). */
  registryLarge(registry: string, entries: number): void {
    this.log.warn({ event: 'RegistryLarge', registry, entries },
      `${registry}: the JSON registry holds ${entries} files, each in memory (about 1 GB at a million); use REGISTRY=database (a table in the same database) for a bucket this big`);
  }

  registryUntrusted(registry: string, u: { reason: string; entries: number; movedTo: string | null }): void {
    this.log.warn({ event: 'RegistryUntrusted', registry, ...u },
      `registry ${registry} is not trusted: ${u.reason}; ${u.movedTo === null ? `its ${u.entries} entr${u.entries === 1 ? 'y is' : 'ies are'} ignored`
        : `its ${u.entries} entr${u.entries === 1 ? 'y was' : 'ies were'} moved to ${u.movedTo}`}, and every listed file is processed again`);
  }

  databaseRetry(f: { attempt: number; delayMs: number; reason: string }): void {
    this.m.retries.inc({ kind: 'database' });
    this.log.warn({ event: 'DatabaseRetry', ...f }, `database write failed (${f.reason}); retrying in ${f.delayMs} ms`);
  }

  notificationsConnected(queue: string): void {
    this.state.notifications = null;
    this.log.info({ event: 'NotificationsConnected', queue }, `consuming bucket notifications from queue ${queue}`);
  }

  notificationsDisconnected(error: string): void {
    this.state.notifications = redactText(error);
    this.log.warn({ event: 'NotificationsDisconnected', error: redactText(error) }, `bucket notifications: ${redactText(error)}; reconnecting (listing goes on)`);
  }

  /** A message that is not an S3 event: one line, and it is taken off the queue. */
  notificationRejected(error: string, bytes: number): void {
    this.m.notifications.inc({ outcome: 'malformed' });
    this.log.error({ event: 'NotificationRejected', error, bytes }, `bucket notification of ${bytes} bytes dropped: ${error}`);
  }

  /** What a batch of notifications held: objects to process, duplicates, removals (logged, not acted on), and those not of this bucket. */
  notificationsReceived(n: { created: number; duplicate: number; ignored: number; removed: readonly string[] }): void {
    this.m.notifications.inc({ outcome: 'created' }, n.created);
    this.m.notifications.inc({ outcome: 'duplicate' }, n.duplicate);
    this.m.notifications.inc({ outcome: 'ignored' }, n.ignored);
    this.m.notifications.inc({ outcome: 'removed' }, n.removed.length);
    for (const key of n.removed) this.log.info({ event: 'ObjectRemoved', key }, `${key}: removed from the bucket (its rows stay)`);
    if (n.duplicate + n.ignored > 0) this.log.debug({ event: 'NotificationsSkipped', duplicate: n.duplicate, ignored: n.ignored }, `${n.duplicate} notification(s) of versions already done, ${n.ignored} not of this bucket`);
  }

  private settle(key: string): void {
    if (this.pending.delete(key)) this.m.pending.set(this.pending.size);
  }
}
