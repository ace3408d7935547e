import picomatch from 'picomatch';
import { IngestError } from './errors.js';
import type { Settings } from './config/schema.js';
import type { ListedObject, Source } from './sources/types.js';

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
 * window on LastModified. An object left out is not listed for this cycle: not planned, not counted, not touched. An
 * object whose listing gives no LastModified passes MIN_AGE_SECONDS (there is nothing to wait for) but no time window.
 */
export function listingFilter(settings: Pick<Settings, 'INCLUDE' | 'EXCLUDE' | 'MIN_AGE_SECONDS'>, window: TimeWindow = {}): (o: ListedObject, now: number) => boolean {
  const include = settings.INCLUDE.length > 0 ? picomatch(settings.INCLUDE, { dot: true }) : null;
  const exclude = settings.EXCLUDE.length > 0 ? picomatch(settings.EXCLUDE, { dot: true }) : null;
  const minAgeMs = settings.MIN_AGE_SECONDS * 1000;
  const windowed = window.since !== undefined || window.until !== undefined;
  return (o, now) => {
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
  /** The last LOOKBACK_KEYS + 1 keys of the bucket, in key order: the first is where the next listing starts after. */
  private tail: string[] = [];
  private lastFullAt: number | null = null;

  constructor(private readonly settings: Pick<Settings, 'LISTING' | 'LOOKBACK_KEYS' | 'RECONCILE_SECONDS'>) {}

  /** Where this cycle's listing starts after; undefined: a full listing. */
  startAfter(now: number): string | undefined {
    if (this.settings.LISTING !== 'ordered' || this.lastFullAt === null) return undefined;
    if (now - this.lastFullAt >= this.settings.RECONCILE_SECONDS * 1000) return undefined;
    // Fewer keys than the window: listing them all is listing the window.
    return this.tail.length > this.settings.LOOKBACK_KEYS ? this.tail[0] : undefined;
  }

  /** A listing from `startAfter` (undefined: full) that saw `keys`, in order, page by page. */
  observer(startAfter: string | undefined, now: number): { see(keys: readonly string[]): void; done(): void } {
    const keep = this.settings.LOOKBACK_KEYS + 1;
    let tail = startAfter === undefined ? [] : [startAfter];
    return {
      see: (keys) => {
        tail.push(...keys.slice(-keep));
        if (tail.length > keep) tail = tail.slice(-keep);
      },
      done: () => {
        this.tail = tail;
        if (startAfter === undefined) this.lastFullAt = now;
      },
    };
  }
}

/** A page of a source without a listing API: its index's keys, with no version and no date. */
const unlisted = (key: string): ListedObject => ({ key, etag: null, size: null, lastModified: null });

/**
 * The cycle's listing, page by page: a source's ListObjectsV2 pages (each worker lists for itself: pages are never
 * held together), or the one page of an index file (`readIndex`: the database registry shares one reading of it
 * between workers). `cursor` makes an ordered listing start after its last key.
 */
export async function* listingPages(
  source: Source, readIndex: () => Promise<string[]>, signal: AbortSignal, cursor: ListingCursor | null,
): AsyncGenerator<ListedObject[]> {
  if (!source.listObjects) {
    yield (await readIndex()).map(unlisted);
    return;
  }
  const now = Date.now();
  const startAfter = cursor?.startAfter(now);
  const seen = cursor?.observer(startAfter, now);
  for await (const page of source.listObjects({ signal, startAfter })) {
    seen?.see(page.map((o) => o.key));
    yield page;
  }
  seen?.done();
}
