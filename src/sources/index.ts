import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { afterLoadText, type Settings } from '../config/schema.js';
import { HttpSource } from './http.js';
import { LocalSource } from './local.js';
import type { RetryListener, Source } from './types.js';

export type { Source, FetchedObject, NotModified, ObjectVersion, StreamedObject } from './types.js';
export { cleanIndex } from './index-file.js';

/** Picks the source for BUCKET_URL: `http(s)://` is remote, `file://` or a plain path is a local directory. */
export function createSource(settings: Settings, hooks: { onRetry?: RetryListener; onResponse?: (status: number) => void } = {}): Source {
  const url = settings.BUCKET_URL;
  const maxBytes = settings.MAX_FILE_MB * 1024 * 1024;
  const streamAboveBytes = settings.STREAM_ABOVE_MB * 1024 * 1024;
  if (/^https?:\/\//i.test(url)) {
    return new HttpSource({
      baseUrl: url,
      indexKey: settings.FILES_LIST_KEY,
      concurrency: settings.CONCURRENCY,
      timeoutMs: settings.REQUEST_TIMEOUT_SECONDS * 1000,
      maxBytes,
      streamAboveBytes,
      retry: { maxAttempts: settings.MAX_ATTEMPTS, baseDelayMs: 200, maxDelayMs: 30_000 },
      ...hooks,
    });
  }
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(url) && !/^file:/i.test(url)) {
    throw new ConfigError(`BUCKET_URL ${redactUrl(url)}: unsupported scheme (expected http://, https://, file:// or a directory path)`);
  }
  const dir = /^file:/i.test(url) ? fileURLToPath(url) : url;
  return new LocalSource(dir, settings.FILES_LIST_KEY, maxBytes, streamAboveBytes);
}

/** AFTER_LOAD other than `keep` needs a source that can delete (config/load.ts refuses it for HTTP buckets already). */
export function checkAfterLoad(settings: Settings, source: Source): void {
  if (settings.AFTER_LOAD.kind !== 'keep' && !source.afterLoad) {
    throw new ConfigError(`AFTER_LOAD: ${afterLoadText(settings.AFTER_LOAD)} needs a bucket the daemon can delete from; ${source.description} cannot: use AFTER_LOAD=keep`);
  }
}
