import type { Readable } from 'node:stream';
import { Agent, request } from './undici-core.js';
import { IngestError, describeError } from '../errors.js';
import { capBytes, gunzipStream, gunzipWhole } from '../formats/gzip.js';
import { redactUrl } from '../redact.js';
import { cleanIndex, indexText } from './index-file.js';
import { withRetries, parseRetryAfter, type RetryPolicy } from './retry.js';
import type { FetchedObject, FetchOptions, NotModified, RetryListener, Source, StreamedObject } from './types.js';

export interface HttpSourceOptions {
  baseUrl: string;
  indexKey: string;
  concurrency: number;
  timeoutMs: number;
  maxBytes: number;
  /** Bodies larger than this (or of unknown length) are streamed instead of read whole. */
  streamAboveBytes: number;
  retry: RetryPolicy;
  onRetry?: RetryListener;
  /** Called with every response status, for metrics. */
  onResponse?: (status: number) => void;
}

/**
 * Builds the request URL of a key: each path segment percent-encoded, under the base URL's path. A key that could
 * lead elsewhere is refused (BI_BAD_KEY): a leading `/` (the server's root, or with `//` another host) and empty,
 * `.` or `..` segments, which URL resolution removes along with what precedes them. Percent-encoding cannot save
 * those: `%2E%2E` is a dot segment to the URL parser too. Whatever the key, the URL must end on the base's origin
 * and under its path, or it is refused as well.
 *
 * @example objectUrl('https://h/bucket', 'a b/c.data') → 'https://h/bucket/a%20b/c.data'; objectUrl(…, '../x') throws
 */
export function objectUrl(baseUrl: string, key: string): string {
  const base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  const segments = key.split('/');
  const bad = segments.find((s) => s === '' || s === '.' || s === '..');
  if (bad !== undefined) {
    const what = key.startsWith('/') ? 'starts with "/"' : bad === '' ? 'has an empty path segment' : `has a "${bad}" path segment`;
    throw new IngestError('BI_BAD_KEY', `${key}: key ${what}, which would lead outside the bucket; refused`);
  }
  const url = new URL(segments.map(encodeURIComponent).join('/'), base);
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) {
    throw new IngestError('BI_BAD_KEY', `${key}: key resolves outside the bucket ${redactUrl(base.toString())}; refused`);
  }
  return url.toString();
}

/**
 * Marks a version that is a `Last-Modified` date, not an ETag (which is always quoted, `"…"` or `W/"…"`): servers
 * that send no ETag (`python3 -m http.server`, many static servers) are asked with `If-Modified-Since` instead.
 */
const LAST_MODIFIED = 'last-modified:';

/**
 * The version a response names: its ETag, else its `Last-Modified` date as `last-modified:<date>` (carried in the
 * registry's etag field, so the registry needs no field of its own), else null (every recheck then loads the file).
 */
function versionOf(headers: Record<string, string | string[] | undefined>): string | null {
  const etag = headerText(headers.etag);
  if (etag !== null) return etag;
  const lastModified = headerText(headers['last-modified']);
  return lastModified === null ? null : `${LAST_MODIFIED}${lastModified}`;
}

/** A bucket served over HTTP(S): one keep-alive undici agent, every request timed out and retried. */
export class HttpSource implements Source {
  readonly description: string;
  private readonly agent: Agent;

  constructor(private readonly opts: HttpSourceOptions) {
    this.description = redactUrl(opts.baseUrl);
    this.agent = new Agent({ connections: opts.concurrency + 1, keepAliveTimeout: 10_000 });
  }

  async listKeys(signal?: AbortSignal): Promise<string[]> {
    try {
      const result = await this.fetch(this.opts.indexKey, { signal });
      if ('notModified' in result) throw new IngestError('BI_HTTP_STATUS', 'unexpected 304 for the index');
      // A big index (a million keys is ~40 MB) or one without Content-Length arrives as a stream: keys are
      // needed all at once anyway, so it is read whole (MAX_FILE_MB still caps it).
      const body = 'stream' in result ? await readAll(result.stream) : result.body;
      return cleanIndex(indexText(body, this.opts.indexKey));
    } catch (err) {
      if (err instanceof IngestError && err.code === 'BI_SHUTDOWN') throw err;
      throw new IngestError('BI_SOURCE_UNAVAILABLE', `cannot list bucket ${this.description} (index ${this.opts.indexKey}): ${describeError(err)}`, { cause: err });
    }
  }

  fetch(key: string, opts: FetchOptions = {}): Promise<FetchedObject | StreamedObject | NotModified> {
    return withRetries(
      this.opts.retry,
      () => this.fetchOnce(key, opts),
      (info) => this.opts.onRetry?.({ key, ...info }),
      opts.signal,
    );
  }

  private async fetchOnce(key: string, opts: FetchOptions): Promise<FetchedObject | StreamedObject | NotModified> {
    if (opts.signal?.aborted) throw new IngestError('BI_SHUTDOWN', 'shutting down');
    // Only the headers and a whole (small) body must arrive within the timeout; a streamed body is not cut by it.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error('request timeout')), this.opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
    const headers: Record<string, string> = { 'accept-encoding': 'gzip' };
    const known = opts.known?.etag;
    if (known?.startsWith(LAST_MODIFIED)) headers['if-modified-since'] = known.slice(LAST_MODIFIED.length);
    else if (known) headers['if-none-match'] = known;
    try {
      const res = await request(objectUrl(this.opts.baseUrl, key), { method: 'GET', headers, dispatcher: this.agent, signal });
      this.opts.onResponse?.(res.statusCode);
      const etag = versionOf(res.headers);
      if (res.statusCode === 304) {
        await res.body.dump();
        return { notModified: true, etag: etag ?? opts.known?.etag ?? null, size: opts.known?.size ?? null };
      }
      if (res.statusCode !== 200) {
        await res.body.dump().catch(() => undefined);
        throw statusError(res.statusCode, key, parseRetryAfter(res.headers['retry-after']));
      }
      const declared = Number(headerText(res.headers['content-length']) ?? NaN);
      if (declared > this.opts.maxBytes) {
        await res.body.dump().catch(() => undefined);
        throw tooLarge(key, declared, this.opts.maxBytes);
      }
      const gzipped = headerText(res.headers['content-encoding'])?.toLowerCase() === 'gzip';
      if (!Number.isFinite(declared) || declared > this.opts.streamAboveBytes) {
        // Too large to hold: hand the body on as it arrives (the request timeout no longer applies to it).
        const stream = streamedBody(res.body, key, this.opts.maxBytes, gzipped);
        return { stream, etag, size: Number.isFinite(declared) ? declared : null };
      }
      const chunks: Buffer[] = [];
      let received = 0;
      // Leaving the loop by the cap's error ends the body's iteration, which destroys the body.
      for await (const chunk of capBytes(res.body as AsyncIterable<Buffer>, this.opts.maxBytes, (n) => tooLarge(key, n, this.opts.maxBytes))) {
        received += chunk.length;
        chunks.push(chunk);
      }
      if (Number.isFinite(declared) && received !== declared) {
        throw new IngestError('BI_BODY_TRUNCATED', `${key}: body cut short (${received} of ${declared} bytes)`, { retriable: true });
      }
      let body: Buffer = Buffer.concat(chunks, received);
      if (gzipped) body = await gunzipWhole(key, body, this.opts.maxBytes);
      if (etag !== null && opts.known?.etag === etag && opts.known.size === received) {
        // The server ignored If-None-Match (or If-Modified-Since) but the object is the one already loaded.
        return { notModified: true, etag, size: received };
      }
      return { body, etag, size: received };
    } catch (err) {
      throw translate(err, key, controller.signal, opts.signal, this.opts.timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

export async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * The body of a streamed response as it arrives, gunzipped if it was sent so (formats/gzip.ts), failing past
 * MAX_FILE_MB both as sent and once decompressed (a gzip bomb is a few kB). A failure of the connection, the gzip data
 * or a cap comes out of the iteration as an IngestError, the file is recorded failed, and the daemon lives on.
 * `destroy` tears the whole chain down, the connection included.
 */
export function streamedBody(body: Readable, key: string, max: number, gzipped: boolean): StreamedObject['stream'] {
  const sent = (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> => capBytes(source, max, (n) => tooLarge(key, n, max));
  const decoded = gzipped ? gunzipStream(key, body, max, sent) : null;
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      yield* decoded ?? sent(body);
    } catch (err) {
      throw bodyError(err, key);
    }
  }
  const iterator = chunks();
  return {
    [Symbol.asyncIterator]: () => iterator,
    destroy: (error?: Error) => {
      if (decoded) decoded.destroy(error);
      else body.destroy(error);
    },
  };
}

/** An error met while a streamed body was read, as the IngestError the file is recorded failed with. */
function bodyError(err: unknown, key: string): IngestError {
  if (err instanceof IngestError) return err; // the caps', the gzip data's (formats/gzip.ts)
  // The headers came and the body began: the connection failing now (chunked, so undici cannot tell more) cuts it short.
  return new IngestError('BI_BODY_TRUNCATED', `${key}: body cut short: ${describeError(err)}`, { retriable: true, cause: err });
}

function headerText(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

export function tooLarge(key: string, bytes: number, max: number): IngestError {
  return new IngestError('BI_BODY_TOO_LARGE', `${key}: ${bytes} bytes is over MAX_FILE_MB (${max} bytes)`);
}

function statusError(status: number, key: string, retryAfterMs: number | undefined): IngestError {
  if (status === 404 || status === 410) return new IngestError('BI_NOT_FOUND', `${key}: HTTP ${status} not found`);
  const retriable = status >= 500 || status === 429 || status === 408;
  const opts = retryAfterMs === undefined ? { retriable } : { retriable, retryAfterMs };
  return new IngestError('BI_HTTP_STATUS', `${key}: HTTP ${status}`, opts);
}

/** Maps undici and abort errors to our codes; keeps IngestErrors as they are. */
function translate(err: unknown, key: string, timeout: AbortSignal, outer: AbortSignal | undefined, timeoutMs: number): unknown {
  if (err instanceof IngestError) return err;
  if (outer?.aborted) return new IngestError('BI_SHUTDOWN', `${key}: fetch stopped by shutdown`);
  if (timeout.aborted) return new IngestError('BI_HTTP_TIMEOUT', `${key}: no complete response within ${timeoutMs} ms`, { retriable: true });
  const code = (err as { code?: unknown }).code;
  if (code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
    return new IngestError('BI_BODY_TRUNCATED', `${key}: body cut short`, { retriable: true, cause: err });
  }
  return new IngestError('BI_NETWORK', `${key}: ${describeError(err)}`, { retriable: true, cause: err });
}
