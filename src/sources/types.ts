/** What a bucket tells about one object, enough to see whether it changed since it was loaded. */
export interface ObjectVersion {
  /**
   * The object's ETag; over HTTP, from a server that sends none, its Last-Modified date as `last-modified:<date>`
   * (asked about with If-Modified-Since rather than If-None-Match); null if the source tells neither.
   */
  etag: string | null;
  size: number | null;
}

export interface FetchedObject extends ObjectVersion {
  body: Buffer;
}

/**
 * An object too large to hold (over STREAM_ABOVE_MB, or of unknown length): its body is read as it arrives.
 * The consumer must read or destroy it.
 */
export interface StreamedObject extends ObjectVersion {
  stream: AsyncIterable<Buffer> & { destroy(error?: Error): void };
}

/** A conditional fetch found the object unchanged (HTTP 304, or the same ETag and size). */
export interface NotModified extends ObjectVersion {
  notModified: true;
}

export interface FetchOptions {
  /** Version the registry holds; when the source can tell it is still current, `NotModified` comes back. */
  known?: ObjectVersion | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * A bucket: an index object listing keys, and the objects themselves. Implementations retry what is worth
 * retrying and throw `IngestError`s with stable codes for the rest.
 */
export interface Source {
  /** Human-readable location, secrets redacted. */
  readonly description: string;
  /** The cleaned keys of the index, in bucket order. */
  listKeys(signal?: AbortSignal): Promise<string[]>;
  fetch(key: string, opts?: FetchOptions): Promise<FetchedObject | StreamedObject | NotModified>;
  /** AFTER_LOAD: removes a loaded object, or copies it to `prefix + key` and then removes it. Idempotent: an object already gone (and, for a move, already at its target) is success. */
  afterLoad?(key: string, action: { kind: 'delete' } | { kind: 'move'; prefix: string }, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** Reports each retry so logs and metrics can see it. */
export type RetryListener = (event: { key: string; attempt: number; delayMs: number; reason: string }) => void;
