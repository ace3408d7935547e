import { existsSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type * as S3Sdk from '@aws-sdk/client-s3';
import type * as IniProvider from '@aws-sdk/credential-provider-ini';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { ConfigError, describeError, IngestError, isRetriable } from '../errors.js';
import { capBytes, gunzipWhole } from '../formats/gzip.js';
import { cleanIndex, indexText } from './index-file.js';
import { readAll, streamedBody, tooLarge } from './http.js';
import { withRetries, type RetryPolicy } from './retry.js';
import type { S3Location } from './s3-url.js';
import type { FetchedObject, FetchOptions, ListedObject, ListOptions, NotModified, RetryListener, Source, StreamedObject } from './types.js';

export interface S3SourceOptions extends S3Location {
  /** Read this index object (FILES_LIST_KEY set) instead of listing the bucket; null: list with ListObjectsV2. */
  indexKey: string | null;
  /** S3_ENDPOINT: a server other than AWS (MinIO, Ceph, R2), or null. */
  endpoint: string | null;
  forcePathStyle: boolean;
  region: string;
  concurrency: number;
  timeoutMs: number;
  maxBytes: number;
  streamAboveBytes: number;
  retry: RetryPolicy;
  onRetry?: RetryListener;
  onResponse?: (status: number) => void;
  /** Where credentials are read from: AWS_ACCESS_KEY_ID…, AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE. */
  env: NodeJS.ProcessEnv;
}

/** Keys asked for per ListObjectsV2 page: S3's maximum. */
const PAGE_KEYS = 1000;

/**
 * Credentials the standard way, in this order: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`);
 * else `AWS_PROFILE` (or `default`) of the shared credentials and config files when one exists; else none, and the
 * requests go unsigned (a public bucket). No instance-metadata lookup: it would wait on a link-local address on every
 * machine that is not in a cloud.
 */
export function credentialsOf(env: NodeJS.ProcessEnv): Credentials {
  if (env.AWS_ACCESS_KEY_ID || env.AWS_SECRET_ACCESS_KEY) {
    if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) {
      const [missing, set] = env.AWS_ACCESS_KEY_ID ? ['AWS_SECRET_ACCESS_KEY', 'AWS_ACCESS_KEY_ID'] : ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'];
      throw new ConfigError(`${missing} is not set, but ${set} is: set both (or neither, for a public bucket)`);
    }
    return {
      kind: 'keys', accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  }
  const credentialsFile = env.AWS_SHARED_CREDENTIALS_FILE ?? join(homedir(), '.aws', 'credentials');
  const configFile = env.AWS_CONFIG_FILE ?? join(homedir(), '.aws', 'config');
  if (env.AWS_PROFILE || existsSync(credentialsFile) || existsSync(configFile)) {
    return { kind: 'profile', profile: env.AWS_PROFILE || 'default', credentialsFile, configFile };
  }
  return { kind: 'anonymous' };
}

/** Where requests get their signature from (see credentialsOf). */
export type Credentials =
  | { kind: 'keys'; accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  | { kind: 'profile'; profile: string; credentialsFile: string; configFile: string }
  | { kind: 'anonymous' };

/** The SDK's client and commands, loaded on first use: a run on another kind of bucket never loads the SDK's ~1 MB. */
type Sdk = typeof S3Sdk;

/**
 * An S3-compatible bucket through the AWS SDK v3 client (README, S3: why the SDK): objects listed with ListObjectsV2,
 * page by page (continuation tokens kept opaque), with ETag, size and LastModified, so an unchanged object costs no
 * request; or, with FILES_LIST_KEY, keys read from an index object as an HTTP bucket's are. The SDK signs and sends;
 * retries (the SDK's own are off), the timeout, MAX_FILE_MB and streaming are the daemon's, as for HTTP.
 */
export class S3Source implements Source {
  readonly description: string;
  readonly listObjects?: (opts?: ListOptions) => AsyncIterable<ListedObject[]>;
  private readonly credentials: Credentials;
  private loaded: Promise<{ sdk: Sdk; client: S3Client }> | undefined;

  constructor(private readonly opts: S3SourceOptions) {
    this.description = `s3://${opts.bucket}/${opts.prefix}${opts.endpoint ? ` at ${opts.endpoint}` : ''}`;
    this.credentials = credentialsOf(opts.env);
    if (opts.indexKey === null) this.listObjects = (o) => this.pages(o);
  }

  /** The SDK and a client of it, made on first use. */
  private sdk(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.loaded ??= (async () => {
      // The SDK warns on stderr, in several lines, that its releases after January 2027 need Node 22: not this
      // daemon's users' business at every start (package-lock.json pins a release that runs on Node 20).
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      // Bundled (esbuild), the SDK's CommonJS arrives as a default export only; under Node and tsx, with named ones.
      const imported = (await import('@aws-sdk/client-s3')) as Sdk & { default?: Sdk };
      const sdk = typeof imported.S3Client === 'function' ? imported : (imported.default as Sdk);
      return { sdk, client: new sdk.S3Client(await this.clientConfig()) };
    })();
    return this.loaded;
  }

  private async clientConfig(): Promise<S3ClientConfig> {
    const { opts } = this;
    const c = this.credentials;
    const sockets = { keepAlive: true, maxSockets: opts.concurrency + 1 };
    let credentials: Pick<S3ClientConfig, 'credentials' | 'signer'>;
    if (c.kind === 'keys') {
      credentials = { credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}) } };
    } else if (c.kind === 'profile') {
      const imported = (await import('@aws-sdk/credential-provider-ini')) as typeof IniProvider & { default?: typeof IniProvider };
      const { fromIni } = typeof imported.fromIni === 'function' ? imported : (imported.default as typeof imported);
      credentials = { credentials: fromIni({ profile: c.profile, filepath: c.credentialsFile, configFilepath: c.configFile }) };
    } else {
      // Unsigned requests: a signer that leaves the request as it is (the credentials are never read then).
      credentials = { credentials: { accessKeyId: '', secretAccessKey: '' }, signer: { sign: (request) => Promise.resolve(request) } };
    }
    return {
      region: opts.region,
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle,
      maxAttempts: 1,
      // A checksum is asked for and checked only where S3 requires one: checking every body would cost a hash per byte
      // while ETag, size and the format's own parsing already catch a cut body.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { httpAgent: new HttpAgent(sockets), httpsAgent: new HttpsAgent(sockets) },
      ...credentials,
    };
  }

  /** The keys of the index object, or (listing) of every page. */
  async listKeys(signal?: AbortSignal): Promise<string[]> {
    if (this.listObjects) {
      const keys: string[] = [];
      for await (const page of this.listObjects({ signal })) for (const o of page) keys.push(o.key);
      return keys;
    }
    const indexKey = this.opts.indexKey as string;
    try {
      const result = await this.fetch(indexKey, { signal });
      if ('notModified' in result) throw new IngestError('BI_HTTP_STATUS', 'unexpected 304 for the index');
      const body = 'stream' in result ? await readAll(result.stream) : result.body;
      return cleanIndex(indexText(body, indexKey));
    } catch (err) {
      throw listingError(err, this.description, `index ${indexKey}`);
    }
  }

  /** ListObjectsV2 pages under the prefix, each retried as a fetch is; folder markers (`…/`) are left out. */
  private async *pages(opts: ListOptions = {}): AsyncGenerator<ListedObject[]> {
    const { bucket, prefix } = this.opts;
    let token: string | undefined;
    let first = true;
    while (first || token !== undefined) {
      first = false;
      const input = {
        Bucket: bucket,
        MaxKeys: PAGE_KEYS,
        // Keys as URL-encoded text: a key may hold characters XML 1.0 cannot carry (control characters).
        EncodingType: 'url' as const,
        ...(prefix ? { Prefix: prefix } : {}),
        ...(token !== undefined ? { ContinuationToken: token } : opts.startAfter !== undefined ? { StartAfter: prefix + opts.startAfter } : {}),
      };
      let page;
      try {
        const { sdk, client } = await this.sdk();
        page = await this.send('ListObjectsV2', (signal) => client.send(new sdk.ListObjectsV2Command(input), { abortSignal: signal }), opts.signal);
      } catch (err) {
        throw listingError(err, this.description, 'ListObjectsV2');
      }
      const objects: ListedObject[] = [];
      for (const o of page.Contents ?? []) {
        const full = decodeListed(o.Key ?? '');
        if (!full.startsWith(prefix) || full.endsWith('/')) continue;
        objects.push({
          key: full.slice(prefix.length), etag: o.ETag ?? null, size: o.Size ?? null, lastModified: o.LastModified?.getTime() ?? null,
        });
      }
      if (page.IsTruncated && !page.NextContinuationToken) {
        throw new IngestError('BI_SOURCE_UNAVAILABLE', `cannot list bucket ${this.description}: a truncated ListObjectsV2 page came without a continuation token`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      yield objects;
    }
  }

  fetch(key: string, opts: FetchOptions = {}): Promise<FetchedObject | StreamedObject | NotModified> {
    return withRetries(this.opts.retry, () => this.fetchOnce(key, opts), (info) => this.opts.onRetry?.({ key, ...info }), opts.signal);
  }

  private async fetchOnce(key: string, opts: FetchOptions): Promise<FetchedObject | StreamedObject | NotModified> {
    if (opts.signal?.aborted) throw new IngestError('BI_SHUTDOWN', 'shutting down');
    // As for HTTP: the headers and a whole (small) body must arrive within the timeout; a streamed body is not cut by it.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error('request timeout')), this.opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
    const known = opts.known?.etag ?? null;
    try {
      const { sdk, client } = await this.sdk();
      const res = await client.send(new sdk.GetObjectCommand({
        Bucket: this.opts.bucket, Key: this.opts.prefix + key, ...(known !== null ? { IfNoneMatch: known } : {}),
      }), { abortSignal: signal });
      this.opts.onResponse?.(res.$metadata.httpStatusCode ?? 200);
      const body = res.Body as Readable;
      const etag = res.ETag ?? null;
      const declared = res.ContentLength ?? NaN;
      if (declared > this.opts.maxBytes) {
        body.destroy();
        throw tooLarge(key, declared, this.opts.maxBytes);
      }
      const gzipped = res.ContentEncoding?.toLowerCase() === 'gzip';
      if (!Number.isFinite(declared) || declared > this.opts.streamAboveBytes) {
        return { stream: streamedBody(body, key, this.opts.maxBytes, gzipped), etag, size: Number.isFinite(declared) ? declared : null };
      }
      const chunks: Buffer[] = [];
      let received = 0;
      for await (const chunk of capBytes(body as AsyncIterable<Buffer>, this.opts.maxBytes, (n) => tooLarge(key, n, this.opts.maxBytes))) {
        received += chunk.length;
        chunks.push(chunk);
      }
      if (received !== declared) {
        throw new IngestError('BI_BODY_TRUNCATED', `${key}: body cut short (${received} of ${declared} bytes)`, { retriable: true });
      }
      let whole: Buffer = Buffer.concat(chunks, received);
      if (gzipped) whole = await gunzipWhole(key, whole, this.opts.maxBytes);
      return { body: whole, etag, size: received };
    } catch (err) {
      if (statusOf(err) === 304) {
        this.opts.onResponse?.(304);
        // A 304 carries no ETag on some servers (Ceph): the one asked about is the one there.
        return { notModified: true, etag: known, size: opts.known?.size ?? null };
      }
      if (statusOf(err) !== undefined) this.opts.onResponse?.(statusOf(err) as number);
      if (opts.signal?.aborted) throw new IngestError('BI_SHUTDOWN', `${key}: fetch stopped by shutdown`);
      if (controller.signal.aborted) throw new IngestError('BI_HTTP_TIMEOUT', `${key}: no complete response within ${this.opts.timeoutMs} ms`, { retriable: true });
      throw s3Error(err, key);
    } finally {
      clearTimeout(timer);
    }
  }

  async afterLoad(key: string, action: { kind: 'delete' } | { kind: 'move'; prefix: string }, signal?: AbortSignal): Promise<void> {
    const { bucket } = this.opts;
    const { sdk, client } = await this.sdk();
    const source = this.opts.prefix + key;
    if (action.kind === 'move') {
      const target = action.prefix + key;
      try {
        await this.send(`${key}: copying to ${target}`, (s) => client.send(new sdk.CopyObjectCommand({
          Bucket: bucket, Key: target, CopySource: `${bucket}/${source.split('/').map(encodeURIComponent).join('/')}`,
        }), { abortSignal: s }), signal);
      } catch (err) {
        // Gone already: a move that was done before a crash, if its target is there.
        if (!(err instanceof IngestError && err.code === 'BI_NOT_FOUND')) throw err;
        await this.send(`${key}: looking for ${target}`, (s) => client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: target }), { abortSignal: s }), signal);
        return;
      }
    }
    // DeleteObject succeeds on a key that is not there: deleting twice is deleting once.
    await this.send(`${key}: deleting`, (s) => client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: source }), { abortSignal: s }), signal);
  }

  /** One request of the SDK, timed out and retried as a fetch is; errors as IngestErrors naming `what`. */
  private send<T>(what: string, request: (signal: AbortSignal) => Promise<T>, outer: AbortSignal | undefined): Promise<T> {
    return withRetries(this.opts.retry, async () => {
      if (outer?.aborted) throw new IngestError('BI_SHUTDOWN', 'shutting down');
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new Error('request timeout')), this.opts.timeoutMs);
      try {
        const res = await request(outer ? AbortSignal.any([outer, controller.signal]) : controller.signal);
        this.opts.onResponse?.(200);
        return res;
      } catch (err) {
        const status = statusOf(err);
        if (status !== undefined) this.opts.onResponse?.(status);
        if (outer?.aborted) throw new IngestError('BI_SHUTDOWN', `${what}: stopped by shutdown`);
        if (controller.signal.aborted) throw new IngestError('BI_HTTP_TIMEOUT', `${what}: no response within ${this.opts.timeoutMs} ms`, { retriable: true });
        throw s3Error(err, what);
      } finally {
        clearTimeout(timer);
      }
    }, (info) => this.opts.onRetry?.({ key: what, ...info }), outer);
  }

  /** Notifications: an event's object as a key of this bucket (its prefix taken off); null if of another bucket or outside the prefix. */
  keyOfObject(bucket: string | null, objectKey: string): string | null {
    if (bucket !== null && bucket !== this.opts.bucket) return null;
    if (!objectKey.startsWith(this.opts.prefix) || objectKey.length === this.opts.prefix.length) return null;
    return objectKey.slice(this.opts.prefix.length);
  }

  async close(): Promise<void> {
    if (this.loaded) (await this.loaded).client.destroy();
  }
}

/**
 * A key of a listing asked for with `encoding-type=url`: percent-encoded, with `+` for a space as AWS writes it (a `+`
 * of the key comes as `%2B`).
 */
export function decodeListed(key: string): string {
  return decodeURIComponent(key.replace(/\+/g, ' '));
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/**
 * An error of the SDK as the IngestError a file (or the listing) fails with: HTTP status and S3's error code
 * (`403 SignatureDoesNotMatch`), retriable for 5xx, 429, 408 and network failures. The SDK's messages never hold
 * credentials.
 */
function s3Error(err: unknown, what: string): IngestError {
  if (err instanceof IngestError) return err;
  const status = statusOf(err);
  const name = (err as { name?: string } | null)?.name ?? 'Error';
  if (status === 404 || status === 410) return new IngestError('BI_NOT_FOUND', `${what}: HTTP ${status} ${name}`, { cause: err });
  if (status !== undefined && status >= 300) {
    const retriable = status >= 500 || status === 429 || status === 408;
    const text = (err as Error).message;
    const message = status === 403 && FORBIDDEN[name] ? `: ${FORBIDDEN[name]}` : text && text !== name && text !== 'UnknownError' ? `: ${text}` : '';
    return new IngestError('BI_HTTP_STATUS', `${what}: HTTP ${status} ${name}${message}`, { retriable, cause: err });
  }
  const code = (err as { code?: unknown }).code;
  if (code === 'CredentialsProviderError' || name === 'CredentialsProviderError') {
    return new IngestError('BI_CONFIG', `${what}: no S3 credentials: ${(err as Error).message}`, { cause: err });
  }
  // Sockets failing keep Node's code (ECONNRESET…); the SDK's own time-outs are named so.
  const retriable = isRetriable(err) || name === 'TimeoutError' || name === 'RequestTimeout';
  return new IngestError('BI_NETWORK', `${what}: ${describeError(err)}`, { retriable, cause: err });
}

function listingError(err: unknown, description: string, what: string): IngestError {
  if (err instanceof IngestError && (err.code === 'BI_SHUTDOWN' || err.code === 'BI_SOURCE_UNAVAILABLE')) return err;
  // The S3 error's own message names the request already (`ListObjectsV2: HTTP 403 …`).
  const why = err instanceof IngestError && err.message.startsWith(`${what}: `) ? err.message : `${what}: ${describeError(err)}`;
  return new IngestError('BI_SOURCE_UNAVAILABLE', `cannot list bucket ${description}: ${why}`, { cause: err });
}

/** What a 403 means, for the line that reports it. */
const FORBIDDEN: Record<string, string> = {
  SignatureDoesNotMatch: 'the secret key is wrong (AWS_SECRET_ACCESS_KEY or the profile\'s)',
  InvalidAccessKeyId: 'the server knows no such access key (AWS_ACCESS_KEY_ID or the profile\'s)',
  AccessDenied: 'these credentials may not do this (README, S3: permissions), or the bucket is not public',
};
