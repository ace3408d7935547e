import picomatch from 'picomatch';
import { IngestError } from '../errors.js';
import type { Binding } from '../registry/binding.js';
import type { RegistryEntry } from '../registry/entry.js';
import type { Registry } from '../registry/types.js';
import { appendReprocessRequests } from '../registry/requests.js';
import { configFrom, printOut, openRegistryForReading } from './common.js';
import type { CommonArgs } from './options.js';
import { runHandler } from './run.js';

export interface ReprocessArgs extends CommonArgs {
  /** Keys or globs (picomatch, `dot: true`; `*` stops at `/`, `**` does not). */
  keys?: string[];
  failed?: boolean;
  now?: boolean;
  /** Replay stored rejections instead (reprocess-rejected.ts); `type`, `reason` and `dry-run` select and preview. */
  rejected?: boolean;
  type?: string;
  reason?: string;
  'dry-run'?: boolean;
}

export interface Selection {
  /** Matching keys, in registry order. */
  keys: string[];
  /** Patterns that matched no key. */
  unmatched: string[];
}

/**
 * Resolves keys and globs against the registry's entries, read a page at a time. A pattern that is itself a known key (`known`) matches
 * only that key (so keys holding glob characters, like `a[1].data`, can be named); anything else is a glob.
 * `failed` adds every failed entry.
 */
export async function selectKeys(
  entries: AsyncIterable<readonly [string, RegistryEntry]>, known: ReadonlySet<string>, patterns: readonly string[], failed: boolean,
): Promise<Selection> {
  const matchers = patterns.map((p) => (known.has(p) ? (k: string) => k === p : picomatch(p, { dot: true })));
  const hits = patterns.map(() => 0);
  const keys: string[] = [];
  for await (const [key, entry] of entries) {
    let selected = failed && entry.status === 'failed';
    matchers.forEach((m, i) => {
      if (m(key)) {
        hits[i]!++;
        selected = true;
      }
    });
    if (selected) keys.push(key);
  }
  return { keys, unmatched: patterns.filter((_, i) => hits[i] === 0) };
}

/**
 * Marks keys for reprocessing by appending requests to `<registry>.requests` (no lock needed, so it works next
 * to a running daemon, which applies them at the start of its next cycle). With `now`, then runs one cycle
 * here, unless a daemon holds the registry. Exit code: 0, or `run --once`'s with `now`; no match throws (2).
 */
export async function reprocessHandler(args: ReprocessArgs): Promise<number> {
  const patterns = args.keys ?? [];
  if (patterns.length === 0 && !args.failed) throw new IngestError('BI_USAGE', 'reprocess needs keys or globs, or --failed');
  const config = configFrom(args);
  const { registry, path, binding, close } = await openRegistryForReading(config);
  let keys: string[];
  try {
    keys = await markForReprocess(registry, path, binding, patterns, Boolean(args.failed));
  } finally {
    await close();
  }
  printOut(describeMarked(keys));
  if (!args.now) {
    printOut('the next cycle processes them again (a running daemon takes the request at the start of its next cycle)');
    return 0;
  }
  try {
    return await runHandler({ ...args, once: true });
  } catch (err) {
    const busy = err instanceof IngestError && err.code === 'BI_REGISTRY_IO' ? /in use by process (\d+)/.exec(err.message) : null;
    if (!busy) throw err;
    printOut(`registry ${path} is in use by process ${busy[1]}, a running daemon: it picks the request up at the start of its next cycle`);
    return 0;
  }
}

/**
 * Marks the keys the patterns (and `failed`) select: a database registry takes the mark at once (no lock to wait for),
 * a JSON one through its request file, which the daemon holding it applies at the start of its next cycle. Throws
 * BI_USAGE, marking nothing, when a pattern matches no key or nothing is selected. `reprocess` and the dashboard's
 * actions both mark files here.
 */
export async function markForReprocess(registry: Registry, path: string, binding: Binding, patterns: readonly string[], failed: boolean): Promise<string[]> {
  const exact = new Set((await registry.lookup(patterns)).keys());
  const selected = await selectKeys(registry.entries(), exact, patterns, failed);
  const keys = selected.keys;
  if (selected.unmatched.length > 0) {
    const quoted = selected.unmatched.map((p) => JSON.stringify(p)).join(', ');
    const why = registry.untrusted ? ` (its ${registry.untrusted.entries} other entries are not trusted: ${registry.untrusted.reason})` : '';
    throw new IngestError('BI_USAGE', `${quoted} matched none of the ${await registry.count()} keys in registry ${registry.description}${why}; nothing was marked`);
  }
  if (keys.length === 0) throw new IngestError('BI_USAGE', `no failed files in registry ${registry.description}; nothing was marked`);
  if (registry.mode === 'database') await registry.markReprocess(keys);
  else await appendReprocessRequests(path, binding, keys);
  return keys;
}

/** `marked 3 file(s) for reprocessing: a, b, c` (the first ten keys named). */
export function describeMarked(keys: readonly string[]): string {
  const shown = keys.length > 10 ? `${keys.slice(0, 10).join(', ')} and ${keys.length - 10} more` : keys.join(', ');
  return `marked ${keys.length} file(s) for reprocessing: ${shown}`;
}

/** What `reprocess` does once its command line is parsed (src/commands/index.ts loads this module only then). */
export async function reprocessMain(args: ReprocessArgs): Promise<void> {
  process.exitCode = args.rejected ? await (await import('./reprocess-rejected.js')).replayHandler(args) : await reprocessHandler(args);
}
