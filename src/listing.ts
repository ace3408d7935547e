import picomatch from 'picomatch';
import { IngestError } from './errors.js';
import type { Settings } from './config/schema.js';
import type { ListedObject, Source } from './sources/types.js';
import type { RegistryEntry } from './registry/entry.js';

/** `--since` / `--until`: only objects last written in [since, until) are considered (ms since the epoch). */
export interface TimeWindow {
  since?: number | undefined;
  until?: number | undefined;
}

/** `--since` / `--until` as a time window; a date that does not parse is a usage error naming it. */
export function timeWindow(args: { since?: string | undefined; until?: string | undefined }): TimeWindow {
  const at = (name: 'since' | 'until'): number | undefined => {
    const text = args[name];
    if (text === undefined) return undefined;
    const ms = Date.parse(text);
    if (!Number.isFinite(ms)) throw new IngestError('BI_USAGE', `--${name} ${JSON.stringify(text)}: not a date (expected ISO-8601, e.g. 2026-11-30 or 2026-11-30T12:00:00Z)`);
    return ms;
  };
  const window = { since: at('since'), until: at('until') };
  if (window.since !== undefined && window.until !== undefined && window.since >= window.until) {
    throw new IngestError('BI_USAGE', `--since ${args.since} is not before --until ${args.until}`);
  }
  return window;
}

/**
 * Which listed objects a cycle considers: INCLUDE / EXCLUDE globs on the key, MIN_AGE_SECONDS and the run's time
 * window on LastModified, and never the copies AFTER_LOAD=move:PREFIX made (keys under PREFIX: loading them would load
 * every moved file twice). An object left out is not listed for this cycle: not planned, not counted, not touched. An
 * object whose listing gives no LastModified passes MIN_AGE_SECONDS (there is nothing to wait for) but no time window.
 */
export function listingFilter(
  settings: Pick<Settings, 'INCLUDE' | 'EXCLUDE' | 'MIN_AGE_SECONDS' | 'AFTER_LOAD'>, window: TimeWindow = {},
): (o: ListedObject, now: number) => boolean {
  const moved = settings.AFTER_LOAD.kind === 'move' ? settings.AFTER_LOAD.prefix : null;
  const include = settings.INCLUDE.length > 0 ? picomatch(settings.INCLUDE, { dot: true }) : null;
  const exclude = settings.EXCLUDE.length > 0 ? picomatch(settings.EXCLUDE, { dot: true }) : null;
  const minAgeMs = settings.MIN_AGE_SECONDS * 1000;
  const windowed = window.since !== undefined || window.until !== undefined;
  return (o, now) => {
    if (moved !== null && o.key.startsWith(moved)) return false;
    if (include && !include(o.key)) return false;
    if (exclude?.(o.key)) return false;
    if (o.lastModified === null) return !windowed;
    if (minAgeMs > 0 && o.lastModified > now - minAgeMs) return false;
    if (window.since !== undefined && o.lastModified < window.since) return false;
    if (window.until !== undefined && o.lastModified >= window.until) return false;
    return true;
  };
}

/**
 * LISTING=ordered: where keys are written in lexical order (dated prefixes, UUIDv7, timestamps), a cycle lists only
 * after the last key seen, less LOOKBACK_KEYS keys (a key written a little out of order is still seen), and every
 * RECONCILE_SECONDS lists everything, which catches any key that arrived below the window. The cursor lives in this
 * process: the first cycle after a start lists everything.
 */
export class ListingCursor {
  /**
   * The last LOOKBACK_KEYS + 1 keys of the bucket, in key order, with their positions in it: the first is where the
   * next listing starts after, and its position is where that listing's positions go on from.
   */
  private tail: CursorKey[] = [];
  private lastFullAt: number | null = null;

  constructor(private readonly settings: Pick<Settings, 'LISTING' | 'LOOKBACK_KEYS' | 'RECONCILE_SECONDS'>) {}

  /** Where this cycle's listing starts after; undefined: a full listing. */
  startAfter(now: number): CursorKey | undefined {
    if (this.settings.LISTING !== 'ordered' || this.lastFullAt === null) return undefined;
    if (now - this.lastFullAt >= this.settings.RECONCILE_SECONDS * 1000) return undefined;
    // Fewer keys than the window: listing them all is listing the window.
    return this.tail.length > this.settings.LOOKBACK_KEYS ? this.tail[0] : undefined;
  }

  /** A listing from `startAfter` (undefined: full) that saw `keys`, in order, page by page, from position `first`. */
  observer(startAfter: CursorKey | undefined, now: number): { see(keys: readonly string[], first: number): void; done(): void } {
    const keep = this.settings.LOOKBACK_KEYS + 1;
    let tail: CursorKey[] = startAfter === undefined ? [] : [startAfter];
    return {
      see: (keys, first) => {
        const from = Math.max(0, keys.length - keep);
        for (let i = from; i < keys.length; i++) tail.push({ key: keys[i] as string, position: first + i });
        if (tail.length > keep) tail = tail.slice(-keep);
      },
      done: () => {
        this.tail = tail;
        if (startAfter === undefined) this.lastFullAt = now;
      },
    };
  }
}

/** A key of the ordered listing's cursor, and its position in the bucket as last listed. */
export interface CursorKey {
  key: string;
  position: number;
}

/** A page of a source without a listing API: its index's keys, with no version and no date. */
const unlisted = (key: string): ListedObject => ({ key, etag: null, size: null, lastModified: null });

/**
 * The cycle's listing: a source's ListObjectsV2 pages (each worker lists for itself: pages are never held together),
 * or the one page of an index file (`readIndex`: the database registry shares one reading of it between workers).
 * `cursor` makes an ordered listing start after its last key. `first` is the position in the bucket of the listing's
 * first key (the one after the cursor's, in an ordered listing; else 0): a key's position is where it stands in the
 * listing before any filter, so that the later file of two holding the same record key wins, as `source_position`
 * promises, across full and ordered listings alike.
 */
export function listingPages(
  source: Source, readIndex: () => Promise<string[]>, signal: AbortSignal, cursor: ListingCursor | null,
): { first: number; pages: AsyncGenerator<ListedObject[]> } {
  if (!source.listObjects) {
    return { first: 0, pages: (async function* () { yield (await readIndex()).map(unlisted); })() };
  }
  const list = source.listObjects.bind(source);
  const now = Date.now();
  const startAfter = cursor?.startAfter(now);
  const seen = cursor?.observer(startAfter, now);
  const first = startAfter === undefined ? 0 : startAfter.position + 1;
  async function* pages(): AsyncGenerator<ListedObject[]> {
    let at = first;
    for await (const page of list({ signal, startAfter: startAfter?.key })) {
      seen?.see(page.map((o) => o.key), at);
      at += page.length;
      yield page;
    }
    seen?.done();
  }
  return { first, pages: pages() };
}

/** A listed object that a cycle considers, its position in the bucket, and the registry's entry for it (if any). */
export interface ListedEntry {
  o: ListedObject;
  index: number;
  entry: RegistryEntry | undefined;
}

/** Listed keys planned together: one registry lookup (see Registry.lookup). */
export const PLAN_SLICE = 1000;

/**
 * The considered objects of a listing's pages, PLAN_SLICE at a time (an index file's one page of every key too), each
 * with its position (counted from `first` over every listed key, considered or not) and its entry, looked up for the
 * whole slice at once: what a cycle and `dry-run` plan from, never more than a slice's entries in memory.
 */
export async function* withEntries(
  pages: AsyncIterable<ListedObject[]>, first: number, considered: (o: ListedObject) => boolean,
  lookup: (keys: readonly string[]) => Promise<ReadonlyMap<string, RegistryEntry>>,
): AsyncGenerator<ListedEntry[]> {
  let position = first;
  for await (const page of pages) {
    for (let from = 0; from < page.length; from += PLAN_SLICE) {
      const slice: Array<{ o: ListedObject; index: number }> = [];
      for (const o of page.slice(from, from + PLAN_SLICE)) {
        const index = position++;
        if (considered(o)) slice.push({ o, index });
      }
      if (slice.length === 0) continue;
      const known = await lookup(slice.map(({ o }) => o.key));
      yield slice.map(({ o, index }) => ({ o, index, entry: known.get(o.key) }));
    }
  }
}
