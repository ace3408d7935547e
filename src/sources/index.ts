import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { afterLoadText, type Settings } from '../config/schema.js';
import { formatRules } from '../formats/index.js';
import { ArchiveSource } from './archive.js';
import { HttpSource } from './http.js';
import { LocalSource } from './local.js';
import { S3Source } from './s3.js';
import { parseS3Url } from './s3-url.js';
import type { RetryListener, Source } from './types.js';

export type { Source, FetchedObject, ListedObject, NotModified, ObjectVersion, StreamedObject } from './types.js';
export { cleanIndex } from './index-file.js';

/**
 * Picks the source for BUCKET_URL: `http(s)://` is remote, `s3://` an S3-compatible bucket (listed, or read from its
 * index object when FILES_LIST_KEY is set: config/load.ts leaves it empty otherwise), `file://` or a plain path is a
 * local directory. Whichever, its ZIP archives are listed as their members (archive.ts).
 */
export function createSource(
  settings: Settings, hooks: { onRetry?: RetryListener; onResponse?: (status: number) => void } = {}, env: NodeJS.ProcessEnv = process.env,
): Source {
  return new ArchiveSource(bucketSource(settings, hooks, env), {
    rules: formatRules(settings),
    maxBytes: settings.MAX_FILE_MB * 1024 * 1024,
    streamAboveBytes: settings.STREAM_ABOVE_MB * 1024 * 1024,
    concurrency: Math.min(settings.CONCURRENCY, 4),
    cacheBytes: settings.ARCHIVE_CACHE_MB * 1024 * 1024,
  });
}

/**
 * Whether the bucket is listed with each object's version (S3 without FILES_LIST_KEY): a done file is then up to date
 * or changed by what the listing says, never rechecked on a timer (src/plan.ts).
 */
export function listsVersions(settings: Pick<Settings, 'BUCKET_URL' | 'FILES_LIST_KEY'>): boolean {
  return /^s3:\/\//i.test(settings.BUCKET_URL) && settings.FILES_LIST_KEY === '';
}

function bucketSource(settings: Settings, hooks: { onRetry?: RetryListener; onResponse?: (status: number) => void }, env: NodeJS.ProcessEnv): Source {
  const url = settings.BUCKET_URL;
  const maxBytes = settings.MAX_FILE_MB * 1024 * 1024;
  const streamAboveBytes = settings.STREAM_ABOVE_MB * 1024 * 1024;
  if (settings.LISTING === 'ordered' && !listsVersions(settings)) {
    throw new ConfigError(`LISTING=ordered lists after the last key seen, which needs a bucket listed page by page (s3:// without FILES_LIST_KEY); ${redactUrl(url)} is read from its index`);
  }
  if (/^s3:\/\//i.test(url)) {
    const endpoint = settings.S3_ENDPOINT.trim() || null;
    if (endpoint !== null && !/^https?:\/\/[^/]/i.test(endpoint)) throw new ConfigError(`S3_ENDPOINT ${redactUrl(endpoint)}: expected http(s)://host[:port]`);
    return new S3Source({
      ...parseS3Url(url),
      indexKey: settings.FILES_LIST_KEY === '' ? null : settings.FILES_LIST_KEY,
      endpoint,
      forcePathStyle: settings.S3_FORCE_PATH_STYLE === 'auto' ? endpoint !== null : settings.S3_FORCE_PATH_STYLE,
      region: settings.S3_REGION.trim() || env.AWS_REGION || 'us-east-1',
      concurrency: settings.CONCURRENCY,
      timeoutMs: settings.REQUEST_TIMEOUT_SECONDS * 1000,
      maxBytes,
      streamAboveBytes,
      retry: { maxAttempts: settings.MAX_ATTEMPTS, baseDelayMs: 200, maxDelayMs: 30_000 },
      env,
      ...hooks,
    });
  }
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
    throw new ConfigError(`BUCKET_URL ${redactUrl(url)}: unsupported scheme (expected http://, https://, s3://, file:// or a directory path)`);
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
