import { setTimeout as sleep } from 'node:timers/promises';
import type { App } from './app.js';
import { readLastCycle, writeLastCycle, type LastCycle } from './registry/last-cycle.js';
import { bindingMismatch, type Binding } from './registry/binding.js';
import { appendCycleHistory } from './registry/cycle-history.js';
import { sideFilesBase } from './registry/side-files.js';
import { describeError } from './errors.js';
import { runCycle, type CycleOptions } from './pipeline.js';
import type { RegistryEntry } from './registry/entry.js';
import { AmqpNotifications, type Delivery } from './sources/notifications/amqp.js';
import { unquoted, type ObjectEvent } from './sources/notifications/s3-event.js';
import type { CycleSummary } from './telemetry.js';
import type { TimeWindow } from './listing.js';

export interface DaemonOptions {
  once: boolean;
  force: boolean;
  /** Soft stop (first SIGTERM/SIGINT): no new files, finish those in flight, then return. */
  stop: AbortSignal;
  /** Hard stop (second signal): abandon files in flight. */
  abort: AbortSignal;
  /** `--since` / `--until`, for every cycle. */
  window?: TimeWindow;
}

export interface DaemonResult {
  cycles: number;
  last: CycleSummary | null;
  /** Files of the last listing that are recorded failed (keys dropped from the index do not count). */
  failedListed: number;
}

/**
 * Runs cycles until stopped (or once). The first cycle's errors are fatal, since they mean bad settings
 * (unreachable bucket, broken database); later ones are logged and the next poll tries again, so a flaky
 * bucket never kills or spins the daemon.
 */
export async function runDaemon(app: App, opts: DaemonOptions): Promise<DaemonResult> {
  if (app.settings.NOTIFY_URL !== '' && !opts.once) return runNotified(app, opts);
  const result: DaemonResult = { cycles: 0, last: null, failedListed: 0 };
  const firstCycle = (await previousCycle(app)) + 1;
  for (let cycle = firstCycle; !opts.stop.aborted; cycle++) {
    const first = cycle === firstCycle;
    // --force applies to the first cycle only: afterwards everything is current.
    await runOne(app, result, { cycle, force: opts.force && first, stop: opts.stop, abort: opts.abort, window: opts.window }, first || opts.once);
    if (opts.once) break;
    await sleep(app.settings.POLL_INTERVAL_SECONDS * 1000, undefined, { signal: opts.stop }).catch(() => undefined);
  }
  result.failedListed = result.last?.failedListed ?? 0;
  return result;
}

/** One cycle, counted and recorded; its error is thrown when `fatal`, else logged. Whether it finished. */
async function runOne(app: App, result: DaemonResult, cycleOpts: CycleOptions, fatal: boolean): Promise<boolean> {
  const { cycle } = cycleOpts;
  try {
    const summary = await runCycle(app, cycleOpts);
    result.last = cycleOpts.keys === undefined ? summary : { ...summary, failedListed: result.last?.failedListed ?? 0 };
    result.cycles++;
    app.telemetry.cycleFinished(cycle, summary);
    await recordCycle(app, { cycle, finishedAt: new Date().toISOString(), ok: true, error: null, summary, binding: app.binding });
    return true;
  } catch (err) {
    await recordCycle(app, { cycle, finishedAt: new Date().toISOString(), ok: false, error: describeError(err), summary: null, binding: app.binding });
    if (fatal) throw err;
    app.telemetry.cycleFailed(cycle, describeError(err));
    return false;
  }
}

/** After the first notification of a batch, how long more are gathered into the same cycle. */
const GATHER_MS = 100;

/**
 * The daemon with NOTIFY_URL: a listing first, then cycles over the keys bucket notifications name as they arrive
 * (gathered for GATHER_MS), and a listing again every RECONCILE_SECONDS, which finds what notifications missed
 * (the broker down, events lost). A message is acknowledged once each of its files is committed or recorded failed
 * (or is another worker's); a file abandoned at shutdown leaves its message to be delivered again. A cycle that
 * fails (the database away) keeps its messages and tries them again, waiting longer each time.
 */
async function runNotified(app: App, opts: DaemonOptions): Promise<DaemonResult> {
  const { settings, telemetry } = app;
  const result: DaemonResult = { cycles: 0, last: null, failedListed: 0 };
  telemetry.state.notifications = 'not connected yet';
  const notifications = new AmqpNotifications({
    url: settings.NOTIFY_URL, queue: settings.NOTIFY_QUEUE, exchange: settings.NOTIFY_EXCHANGE, routingKey: settings.NOTIFY_ROUTING_KEY,
    prefetch: Math.min(1000, Math.max(settings.COMMIT_MAX_FILES, settings.CONCURRENCY * 4)),
    hooks: {
      connected: () => telemetry.notificationsConnected(settings.NOTIFY_QUEUE),
      disconnected: (error) => telemetry.notificationsDisconnected(error),
      malformed: (error, bytes) => telemetry.notificationRejected(error, bytes),
    },
  });
  await notifications.start();
  try {
    let cycle = (await previousCycle(app)) + 1;
    await runOne(app, result, { cycle: cycle++, force: opts.force, stop: opts.stop, abort: opts.abort, window: opts.window }, true);
    let nextListing = Date.now() + Math.max(1, settings.RECONCILE_SECONDS) * 1000;
    let held: Delivery[] = [];
    let failures = 0;
    while (!opts.stop.aborted) {
      const retryMs = held.length > 0 ? Math.min(30_000, 500 * 2 ** failures) : Infinity;
      const fresh = await notifications.take(Math.min(Math.max(0, nextListing - Date.now()), retryMs), GATHER_MS, opts.stop);
      const deliveries = [...held.splice(0), ...fresh];
      if (deliveries.length > 0 && !opts.stop.aborted) {
        const ok = await notifiedCycle(app, result, cycle++, deliveries, opts);
        if (ok) failures = 0;
        else {
          failures++;
          held = deliveries;
        }
      }
      if (Date.now() >= nextListing && !opts.stop.aborted) {
        await runOne(app, result, { cycle: cycle++, force: false, stop: opts.stop, abort: opts.abort, window: opts.window }, false);
        nextListing = Date.now() + Math.max(1, settings.RECONCILE_SECONDS) * 1000;
      }
    }
  } finally {
    await notifications.close();
  }
  result.failedListed = result.last?.failedListed ?? 0;
  return result;
}

/**
 * One cycle over the objects of some notifications: those of another bucket left out, removals logged, versions
 * already done (same ETag and size: a duplicate delivery) acknowledged at once, the rest processed. Whether the cycle
 * ran (false: its messages are to be tried again).
 */
async function notifiedCycle(app: App, result: DaemonResult, cycle: number, deliveries: readonly Delivery[], opts: DaemonOptions): Promise<boolean> {
  const keyOf = (e: ObjectEvent): string | null => (app.source.keyOfObject ? app.source.keyOfObject(e.bucket, e.key) : e.key);
  let known: Map<string, RegistryEntry>;
  try {
    await app.registry.refresh();
    // As stored now, what other workers did included: a duplicate they finished is one here too.
    const asked = deliveries.flatMap((d) => d.events.filter((e) => e.kind !== 'removed').map(keyOf)).filter((k): k is string => k !== null);
    known = await app.registry.lookup([...new Set(asked)]);
  } catch (err) {
    app.telemetry.cycleFailed(cycle, describeError(err));
    return false;
  }
  const counts = { created: 0, duplicate: 0, ignored: 0, removed: [] as string[] };
  const wanted = new Map<Delivery, string[]>();
  for (const d of deliveries) {
    const keys: string[] = [];
    for (const e of d.events) {
      const key = keyOf(e);
      if (key === null) counts.ignored++;
      else if (e.kind === 'removed') counts.removed.push(key);
      else if (isDone(known.get(key), e)) counts.duplicate++;
      else {
        counts.created++;
        keys.push(key);
      }
    }
    wanted.set(d, keys);
  }
  app.telemetry.notificationsReceived(counts);
  const named = [...new Set([...wanted.values()].flat())];
  let expanded: Map<string, string[]>;
  try {
    expanded = new Map(await Promise.all(named.map(async (k) => [k, app.source.expand ? await app.source.expand([k], opts.abort) : [k]] as [string, string[]])));
  } catch (err) {
    app.telemetry.cycleFailed(cycle, describeError(err));
    return false;
  }
  const keys = [...new Set([...expanded.values()].flat())];
  const outcomes = new Map<string, string>();
  if (keys.length > 0) {
    const ran = await runOne(app, result, { cycle, force: true, stop: opts.stop, abort: opts.abort, keys, settled: (k, o) => outcomes.set(k, o) }, false);
    if (!ran) return false;
  }
  for (const [d, ks] of wanted) {
    const settled = ks.flatMap((k) => expanded.get(k) ?? [k]).every((k) => outcomes.has(k) && outcomes.get(k) !== 'cancelled');
    if (settled) d.ack();
  }
  return true;
}

/** Whether the registry holds this very version of the object done: an event delivered again is then nothing to do. */
function isDone(entry: RegistryEntry | undefined, e: ObjectEvent): boolean {
  if (!entry || entry.status !== 'done' || entry.reprocess === true || e.etag === null || entry.etag === null) return false;
  return unquoted(entry.etag) === e.etag && (e.size === null || entry.size === e.size);
}

/**
 * The number of the last cycle recorded for this registry (its database and bucket), so numbers go on across
 * restarts; 0 when none was, or the one recorded ran on another database or bucket.
 */
async function previousCycle(app: App): Promise<number> {
  try {
    const last = await readLastCycle(sideFilesBase(app.settings, app.registry.mode));
    return last !== null && bindingMismatch(last.binding, app.binding) === null ? last.cycle : 0;
  } catch (err) {
    app.telemetry.cycleRecordFailed(describeError(err));
    return 0;
  }
}

/** Keeps the last cycle for `status`, and in the history the dashboard plots; losing them is not worth stopping the daemon for. */
async function recordCycle(app: App, cycle: LastCycle & { binding: Binding }): Promise<void> {
  try {
    const base = sideFilesBase(app.settings, app.registry.mode);
    await writeLastCycle(base, cycle);
    await appendCycleHistory(base, cycle);
  } catch (err) {
    app.telemetry.cycleRecordFailed(describeError(err));
  }
}
