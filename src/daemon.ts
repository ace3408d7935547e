import { setTimeout as sleep } from 'node:timers/promises';
import { resolve } from 'node:path';
import type { App } from './app.js';
import { readLastCycle, writeLastCycle, type LastCycle } from './registry/last-cycle.js';
import { bindingMismatch } from './registry/binding.js';
import { describeError } from './errors.js';
import { runCycle } from './pipeline.js';
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
  const result: DaemonResult = { cycles: 0, last: null, failedListed: 0 };
  const firstCycle = (await previousCycle(app)) + 1;
  for (let cycle = firstCycle; !opts.stop.aborted; cycle++) {
    const first = cycle === firstCycle;
    try {
      // --force applies to the first cycle only: afterwards everything is current.
      const summary = await runCycle(app, { cycle, force: opts.force && first, stop: opts.stop, abort: opts.abort, window: opts.window });
      result.last = summary;
      result.cycles++;
      app.telemetry.cycleFinished(cycle, summary);
      await recordCycle(app, { cycle, finishedAt: new Date().toISOString(), ok: true, error: null, summary, binding: app.binding });
    } catch (err) {
      await recordCycle(app, { cycle, finishedAt: new Date().toISOString(), ok: false, error: describeError(err), summary: null, binding: app.binding });
      if (first || opts.once) throw err;
      app.telemetry.cycleFailed(cycle, describeError(err));
    }
    if (opts.once) break;
    await sleep(app.settings.POLL_INTERVAL_SECONDS * 1000, undefined, { signal: opts.stop }).catch(() => undefined);
  }
  result.failedListed = result.last?.failedListed ?? 0;
  return result;
}

/**
 * The number of the last cycle recorded for this registry (its database and bucket), so numbers go on across
 * restarts; 0 when none was, or the one recorded ran on another database or bucket.
 */
async function previousCycle(app: App): Promise<number> {
  try {
    const last = await readLastCycle(resolve(app.settings.REGISTRY_PATH));
    return last !== null && bindingMismatch(last.binding, app.binding) === null ? last.cycle : 0;
  } catch (err) {
    app.telemetry.cycleRecordFailed(describeError(err));
    return 0;
  }
}

/** Keeps the last cycle for `status`; losing it is not worth stopping the daemon for. */
async function recordCycle(app: App, cycle: LastCycle): Promise<void> {
  try {
    await writeLastCycle(resolve(app.settings.REGISTRY_PATH), cycle);
  } catch (err) {
    app.telemetry.cycleRecordFailed(describeError(err));
  }
}
