import * as t from 'io-ts';
import { redactText } from '../redact.js';
import type { CycleSummary } from '../telemetry.js';
import { readJsonFile, writeFileAtomic } from './files.js';
import { bindingCodec } from './entry.js';
import type { Binding } from './binding.js';

/**
 * Fields a stored summary must have (what `status` shows). The rest of CycleSummary is kept as stored, so a
 * field added to CycleSummary later does not make older files unreadable (it is just absent from them).
 */
const REQUIRED_SUMMARY_FIELDS = [
  'listed', 'planned', 'filesDone', 'filesFailed', 'filesUnchanged', 'filesUpToDate', 'filesBackoff', 'filesCancelled',
  'recordsLoaded', 'recordsRejected', 'recordsSkipped', 'seconds',
] as const satisfies ReadonlyArray<keyof CycleSummary>;

const storedSummaryCodec = t.intersection([
  t.type(Object.fromEntries(REQUIRED_SUMMARY_FIELDS.map((f) => [f, t.number])) as Record<(typeof REQUIRED_SUMMARY_FIELDS)[number], t.NumberC>),
  t.record(t.string, t.unknown),
]);

const lastCycleCodec = t.intersection([
  t.type({
    cycle: t.number,
    finishedAt: t.string,
    ok: t.boolean,
    error: t.union([t.string, t.null]),
    summary: t.union([storedSummaryCodec, t.null]),
  }),
  t.partial({ binding: bindingCodec }),
]);

/**
 * The last cycle the daemon finished, kept next to the registry in `<registry path>.cycle.json` for `status`.
 * `summary` is null when the cycle failed before it had one (bucket not listable, database down); then `ok` is
 * false and `error` says why.
 */
export interface LastCycle {
  /** Cycle number of the registry: it goes on across restarts while the registry stays bound to the same database and bucket. */
  cycle: number;
  /** UTC ISO-8601. */
  finishedAt: string;
  ok: boolean;
  error: string | null;
  summary: CycleSummary | null;
  /** The database and bucket the cycle ran on; absent from files written before side files were bound. */
  binding?: Binding;
}

export function lastCyclePath(registryPath: string): string {
  return `${registryPath}.cycle.json`;
}

/**
 * Replaces the sidecar atomically (temp file, fsync, rename), so a reader sees the old or the new summary,
 * never half of one. Secrets in `error` are masked before they reach the disk.
 */
export async function writeLastCycle(registryPath: string, data: LastCycle): Promise<void> {
  await writeFileAtomic(lastCyclePath(registryPath), `${JSON.stringify({ version: 1, ...data, error: data.error === null ? null : redactText(data.error) })}\n`);
}

/** The last cycle recorded next to this registry, or null if none was recorded yet. */
export async function readLastCycle(registryPath: string): Promise<LastCycle | null> {
  const read = await readJsonFile(lastCyclePath(registryPath), lastCycleCodec, 'cycle');
  if (read === undefined) return null;
  const { cycle, finishedAt, ok, error, summary, binding } = read;
  return { cycle, finishedAt, ok, error, summary: numbersOf(summary), ...(binding ? { binding } : {}) };
}

/** A recorded summary's counts (a file written by another version may hold more fields: only numbers are kept). */
export function numbersOf(summary: object | null): CycleSummary | null {
  return summary === null ? null : (Object.fromEntries(Object.entries(summary).filter(([, v]) => typeof v === 'number')) as unknown as CycleSummary);
}
