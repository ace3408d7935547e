import { describeError } from '../errors.js';
import { readLastCycle, type LastCycle } from '../registry/last-cycle.js';
import { readReprocessRequests } from '../registry/requests.js';
import { bindingMismatch, type Binding } from '../registry/binding.js';
import type { Registry, Untrusted } from '../registry/types.js';
import { configFrom, printOut, openRegistryForReading } from './common.js';
import type { CommonArgs } from './options.js';

export interface StatusArgs extends CommonArgs {
  json?: boolean;
}

export interface StatusReport {
  profile: string;
  registry: string;
  /** Entries of the registry that are not about this database and bucket, and so are not counted below. */
  untrusted: Untrusted | null;
  files: { total: number; done: number; failed: number };
  records: { loaded: number; rejected: number; skipped: number };
  failed: Array<{ key: string; error: string | null; attempts: number; nextAttemptAt: string | null }>;
  lastDoneAt: string | null;
  /** The last cycle a daemon recorded (`<registry>.cycle.json`), or null if none was. */
  lastCycle: LastCycle | null;
  /** Why the last-cycle file could not be read, if it could not. */
  lastCycleError: string | null;
  /** Why the recorded last cycle is not shown: it ran on another database or bucket. */
  lastCycleIgnored: string | null;
  /**
   * Files waiting to be processed again: `requested` (in `<registry>.requests`, not yet taken by a daemon; a key
   * the registry does not know is processed anyway as new) or `marked` (`reprocess` set in the registry).
   */
  reprocess: Array<{ key: string; state: 'requested' | 'marked'; requestedAt: string | null }>;
  /**
   * AFTER_LOAD's actions on done files: how many are done, how many still to do (`pending`: not reached yet, or
   * failed), and each that failed with its error and next try.
   */
  afterLoad: {
    done: number;
    pending: number;
    failing: Array<{ key: string; action: string; error: string | null; attempts: number; nextAttemptAt: string | null }>;
  };
}

/** Reads the registry (never writes it, so it is safe next to a running daemon) and sums it up. */
export async function statusReport(args: CommonArgs): Promise<StatusReport> {
  const config = configFrom(args);
  const { registry, path, binding, close } = await openRegistryForReading(config);
  try {
    return await statusOf(config.profile, registry, path, binding);
  } finally {
    await close();
  }
}

/**
 * The report of a registry already open: `status`'s, and the dashboard's from the daemon's own registry, so the two
 * cannot disagree. `path` is the base path of the side files (`registryPathOf`).
 */
export async function statusOf(profile: string, registry: Registry, path: string, binding: Binding): Promise<StatusReport> {
  const report: StatusReport = {
    profile, registry: registry.description, untrusted: registry.untrusted,
    files: { total: 0, done: 0, failed: 0 }, records: { loaded: 0, rejected: 0, skipped: 0 }, failed: [], lastDoneAt: null,
    lastCycle: null, lastCycleError: null, lastCycleIgnored: null, reprocess: [], afterLoad: { done: 0, pending: 0, failing: [] },
  };
  try {
    const last = await readLastCycle(path);
    const mismatch = last === null ? null : bindingMismatch(last.binding, binding);
    if (mismatch === null) report.lastCycle = last;
    else report.lastCycleIgnored = mismatch;
  } catch (err) {
    report.lastCycleError = describeError(err);
  }
  const requested = new Map<string, string>();
  for (const r of await readReprocessRequests(path, binding)) requested.set(r.key, r.requestedAt);
  const totals = await registry.totals();
  report.files = totals.files;
  report.records = totals.records;
  report.lastDoneAt = totals.lastDoneAt;
  report.afterLoad.done = totals.afterLoad.done;
  report.afterLoad.pending = totals.afterLoad.pending;
  // The few entries listed by name, each kind read on its own (never every entry of a large registry).
  for await (const [key, e] of registry.entries({ status: 'failed', ordered: true })) {
    report.failed.push({ key, error: e.error, attempts: e.attempts, nextAttemptAt: e.nextAttemptAt });
  }
  for await (const [key, e] of registry.entries({ afterLoadPending: true, ordered: true })) {
    const a = e.afterLoad;
    if (a && a.attempts > 0) report.afterLoad.failing.push({ key, action: a.action, error: a.error, attempts: a.attempts, nextAttemptAt: a.nextAttemptAt });
  }
  for await (const [key] of registry.entries({ reprocess: true, ordered: true })) {
    report.reprocess.push({ key, state: 'marked', requestedAt: null });
    requested.delete(key);
  }
  for (const [key, requestedAt] of requested) report.reprocess.push({ key, state: 'requested', requestedAt });
  return report;
}

export function formatStatus(r: StatusReport): string {
  const lines = [`profile ${r.profile}, registry ${r.registry}`];
  if (r.untrusted) {
    lines.push(`registry not trusted: ${r.untrusted.reason}; its ${r.untrusted.entries} entr${r.untrusted.entries === 1 ? 'y is' : 'ies are'} not counted below, ` +
      'and the next run processes every listed file again');
  }
  lines.push(
    `files: ${r.files.total} known, ${r.files.done} done, ${r.files.failed} failed`,
    `records in done files: ${r.records.loaded} loaded, ${r.records.rejected} rejected, ${r.records.skipped} skipped`,
    `last file done at: ${r.lastDoneAt ?? 'never'}`,
    `last cycle: ${r.lastCycleError !== null ? `unreadable (${r.lastCycleError})`
      : r.lastCycleIgnored !== null ? `none on this database and bucket (the one recorded is not: ${r.lastCycleIgnored})`
        : r.lastCycle === null ? 'no cycle recorded yet' : formatLastCycle(r.lastCycle)}`,
  );
  if (r.failed.length > 0) {
    lines.push('failed files:');
    for (const f of r.failed) lines.push(`  ${f.key}: ${f.error ?? 'unknown error'} (attempts ${f.attempts}, next try after ${f.nextAttemptAt ?? 'next cycle'})`);
  }
  const a = r.afterLoad;
  if (a.done + a.pending > 0) {
    lines.push(`after load: ${a.pending} pending${a.failing.length > 0 ? ` (${a.failing.length} failed, to be tried again)` : ''}, ${a.done} done`);
    for (const f of a.failing) {
      lines.push(`  ${f.key}: AFTER_LOAD=${f.action} failed: ${f.error ?? 'unknown error'} (attempts ${f.attempts}, next try after ${f.nextAttemptAt ?? 'next cycle'})`);
    }
  }
  if (r.reprocess.length > 0) {
    lines.push(`reprocess pending: ${r.reprocess.length} file(s)`);
    for (const p of r.reprocess) {
      lines.push(p.state === 'marked'
        ? `  ${p.key}: marked; the next cycle processes it again`
        : `  ${p.key}: requested at ${p.requestedAt}; a daemon marks it at the start of its next cycle`);
    }
  }
  return lines.join('\n');
}

/**
 * `#3 ok, finished at …: 6 listed; files 6 done, …`; `#3 finished with 2 failed file(s), …` when files failed; or
 * `#3 failed, finished at …: error: …` when the cycle itself failed.
 */
export function formatLastCycle(c: LastCycle): string {
  const failedFiles = c.summary?.filesFailed ?? 0;
  const state = !c.ok ? 'failed' : failedFiles > 0 ? `finished with ${failedFiles} failed file(s)` : 'ok';
  const head = `#${c.cycle} ${state}, finished at ${c.finishedAt}`;
  const s = c.summary;
  const parts: string[] = [];
  if (s !== null) {
    parts.push(`${s.listed} listed; files ${s.filesDone} done, ${s.filesFailed} failed, ${s.filesUnchanged + s.filesUpToDate} unchanged, ` +
      `${s.filesBackoff} waiting to retry${s.filesCancelled > 0 ? `, ${s.filesCancelled} cancelled` : ''}; ` +
      `records ${s.recordsLoaded} loaded, ${s.recordsRejected} rejected, ${s.recordsSkipped} skipped; ${s.seconds.toFixed(2)} s`);
  }
  if (c.error !== null) parts.push(`error: ${c.error}`);
  return parts.length > 0 ? `${head}: ${parts.join('; ')}` : head;
}

/** What `status` does once its command line is parsed (src/commands/index.ts loads this module only then). */
export async function statusMain(args: StatusArgs): Promise<void> {
  const report = await statusReport(args);
  printOut(args.json ? JSON.stringify(report, null, 2) : formatStatus(report));
}
