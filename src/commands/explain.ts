import { suggest, type LoadedConfig } from '../config/load.js';
import { listsVersions } from '../sources/index.js';
import type { Binding } from '../registry/binding.js';
import type { Registry } from '../registry/types.js';
import { planKey, type PlanReason } from '../plan.js';
import type { RegistryEntry } from '../registry/entry.js';
import { readReprocessRequests, type ReprocessRequest } from '../registry/requests.js';
import { configFrom, printOut, openRegistryForReading } from './common.js';
import type { CommonArgs } from './options.js';

export interface ExplainArgs extends CommonArgs {
  key: string;
  json?: boolean;
}

export interface Explanation {
  key: string;
  profile: string;
  registry: string;
  /** What the registry holds for the key, or null if it does not know it. */
  entry: RegistryEntry | null;
  /** Reprocess requests for the key not yet taken by a daemon (`<registry>.requests`). */
  pendingRequests: ReprocessRequest[];
  next: {
    /** What `planKey` decides for the next cycle (never `forced`: that needs `run --force`). */
    reason: PlanReason;
    /** Whether the next cycle fetches the file (if the index lists it). */
    processes: boolean;
    /** For `up-to-date` and `backoff`: when that ends. */
    until: string | null;
  };
  /** One line for people: what is known, then what the next cycle does and why. */
  summary: string;
}

/**
 * What the registry knows of one key and what the next cycle would do with it, using the same `planKey` as the
 * cycle, so the two cannot disagree. Reads the registry and its request file only; never contacts the bucket.
 */
export async function explainKey(args: ExplainArgs, now: number = Date.now()): Promise<Explanation> {
  const config = configFrom(args);
  const { registry, path, binding, close } = await openRegistryForReading(config);
  try {
    return await explainWith(config, registry, path, binding, args.key, now);
  } finally {
    await close();
  }
}

/** `explainKey` on a registry already open (the dashboard's file page reads the daemon's own). */
export async function explainWith(config: LoadedConfig, registry: Registry, path: string, binding: Binding, key: string, now: number = Date.now()): Promise<Explanation> {
  const entry = (await registry.lookup([key])).get(key) ?? null;
  const pendingRequests = (await readReprocessRequests(path, binding)).filter((r) => r.key === key);
  // A pending request is applied at the start of the next cycle, before planning: plan as if it were.
  const effective = entry && pendingRequests.length > 0 ? { ...entry, reprocess: true } : entry;
  const recheckMs = config.settings.RECHECK_DONE_SECONDS * 1000;
  // A bucket listed with versions (S3): planned as the cycle plans it when the listing shows the version loaded, the
  // one thing explain can say without asking the bucket.
  const listed = listsVersions(config.settings) && entry !== null && entry.etag !== null && entry.size !== null ? { etag: entry.etag, size: entry.size } : undefined;
  const reason = planKey(effective ?? undefined, { force: false, now, recheckDoneMs: recheckMs }, listed);
  let until: string | null = null;
  if (reason === 'backoff' && entry?.nextAttemptAt) until = entry.nextAttemptAt;
  if (reason === 'up-to-date' && entry && listed === undefined) {
    const checked = entry.checkedAt ?? entry.doneAt;
    if (checked !== null) until = new Date(Date.parse(checked) + recheckMs).toISOString();
  }
  const processes = reason !== 'up-to-date' && reason !== 'backoff';

  let summary: string;
  if (entry === null) {
    // Only keys within two characters of its length can be within two edits of it: the others are not kept.
    const known: string[] = [];
    for await (const [k] of registry.entries()) if (Math.abs(k.length - key.length) <= 2) known.push(k);
    summary = `unknown to the registry: the next cycle processes it if the index lists it${suggest(key, known)}`;
    if (pendingRequests.length > 0) summary += ' (a reprocess request for it is pending; it changes nothing, the key is new anyway)';
  } else {
    summary = `${stateOf(entry)}; next cycle: ${nextAction(reason, entry, pendingRequests, until, config.settings.RECHECK_DONE_SECONDS, listed !== undefined)}`;
  }
  return { key, profile: config.profile, registry: registry.description, entry, pendingRequests, next: { reason, processes, until }, summary };
}

function stateOf(e: RegistryEntry): string {
  if (e.status === 'done') {
    return `done at ${e.doneAt ?? 'unknown time'}, checked at ${e.checkedAt ?? 'never'} (${e.loaded} loaded, ${e.rejected} rejected, ${e.skipped} skipped)`;
  }
  return `failed ${times(e.failures)} since its last success, last error ${e.error ?? 'unknown'}`;
}

function nextAction(reason: PlanReason, e: RegistryEntry, pending: readonly ReprocessRequest[], until: string | null, recheckSeconds: number, listed: boolean): string {
  switch (reason) {
    case 'reprocess':
      if (e.reprocess) return `processes it again whatever its status, if the index still lists it (reprocess requested; marked in the registry at ${e.updatedAt})`;
      return `processes it again whatever its status, if the index still lists it (reprocess requested at ${pending[pending.length - 1]?.requestedAt ?? '?'}; ` +
        'a daemon marks it at the start of its next cycle)';
    case 'retry':
      return `tries it again, if the index still lists it (${e.nextAttemptAt ? `backoff ended at ${e.nextAttemptAt}` : 'no backoff set'})`;
    case 'backoff':
      return `waits (backoff) until ${until ?? '?'}; the first cycle after that tries it again (\`bucket-ingest reprocess\` skips the wait)`;
    case 'recheck':
      return `asks the bucket whether it changed (conditional GET${e.etag ? ` with ETag ${e.etag}` : ''}; RECHECK_DONE_SECONDS=${recheckSeconds} have passed) ` +
        'and loads it again only if it did';
    case 'changed':
      return 'loads it again: the bucket lists another ETag or size than the one loaded';
    case 'up-to-date':
      if (listed) {
        return `up to date while the bucket's listing shows ETag ${e.etag ?? '?'} and ${e.size ?? '?'} bytes, the version loaded; ` +
          'another ETag or size loads it again (the listing gives versions: no recheck timer, no request)';
      }
      return `up to date — will ask the bucket again after ${until ?? '?'} (RECHECK_DONE_SECONDS=${recheckSeconds})`;
    case 'new':
    case 'forced':
      return 'processes it';
  }
}

function times(n: number): string {
  return n === 1 ? 'once' : `${n} times`;
}

export function formatExplanation(x: Explanation): string {
  const lines = [`${x.key} (profile ${x.profile}, registry ${x.registry})`];
  const e = x.entry;
  if (e !== null) {
    const field = (name: string, value: string): void => void lines.push(`  ${name.padEnd(14)}${value}`);
    field('status', e.status);
    field('etag', e.etag ?? '-');
    field('size', e.size === null ? '-' : `${e.size} bytes`);
    field('attempts', `${e.attempts} (${e.failures} failure(s) since the last success)`);
    field('records', `${e.loaded} loaded, ${e.rejected} rejected, ${e.skipped} skipped`);
    field('error', e.error ?? '-');
    field('first seen', e.firstSeenAt);
    field('updated', e.updatedAt);
    field('done', e.doneAt ?? '-');
    field('checked', e.checkedAt ?? '-');
    field('next attempt', e.nextAttemptAt ?? '-');
    field('reprocess', e.reprocess ? 'marked' : x.pendingRequests.length > 0 ? 'requested, not yet applied' : 'no');
    const a = e.afterLoad;
    field('after load', a === undefined ? '-' : a.state === 'done' ? `${a.action}: done at ${a.doneAt ?? '?'}`
      : a.attempts === 0 ? `${a.action}: pending` : `${a.action}: pending, ${a.attempts} failed attempt(s), last error ${a.error ?? '?'}, next try after ${a.nextAttemptAt ?? 'next cycle'}`);
  }
  for (const r of x.pendingRequests) lines.push(`  reprocess requested at ${r.requestedAt}`);
  lines.push(x.summary);
  return lines.join('\n');
}

/** What `explain` does once its command line is parsed (src/commands/index.ts loads this module only then). */
export async function explainMain(args: ExplainArgs): Promise<void> {
  const x = await explainKey(args);
  printOut(args.json ? JSON.stringify(x, null, 2) : formatExplanation(x));
}
