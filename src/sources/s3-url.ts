import { ConfigError } from '../errors.js';

/** Where an `s3://BUCKET[/PREFIX]` URL points: the bucket, and the prefix as a folder (`''` or ending in `/`). */
export interface S3Location {
  bucket: string;
  prefix: string;
}

/**
 * Parses `s3://BUCKET[/PREFIX]`. The prefix is a folder: `s3://b/in` lists `in/…`, and keys are named relative to it
 * (`in/a.json` is the key `a.json`), as the keys of an HTTP bucket are relative to its base URL.
 *
 * @example parseS3Url('s3://logs/2026/') → { bucket: 'logs', prefix: '2026/' }
 */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/?#]*)\/?([^?#]*)$/i.exec(url.trim());
  if (!m || !/^[a-z0-9][a-z0-9.\-_]{0,254}$/i.test(m[1] as string)) {
    throw new ConfigError(`BUCKET_URL ${url}: expected s3://BUCKET[/PREFIX] with a bucket name of letters, digits, ".", "-" and "_"`);
  }
  const path = (m[2] as string).replace(/^\/+/, '');
  return { bucket: m[1] as string, prefix: path === '' || path.endsWith('/') ? path : `${path}/` };
}
