/**
 * Helpers of the S3 suites: a client of the run's server (s3-server.ts), buckets of their own, objects, and a counting
 * proxy in front of the server.
 */
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { RUN_ID } from './run-id.js';
import type { S3Server } from './s3-server.js';

export { s3Server, type S3Server } from './s3-server.js';

// The SDK's multi-line warning about Node 20 (see src/sources/s3.ts) is not the tests' business either.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** A test's client of the server, with the test user's keys. */
export function s3Client(server: S3Server): S3Client {
  return new S3Client({
    endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
  });
}

/** Settings of the daemon for `bucket` on `server` (the environment of a CLI run). */
export function s3Env(server: S3Server, bucket: string, prefix = ''): Record<string, string> {
  return {
    BUCKET_URL: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
    S3_ENDPOINT: server.endpoint,
    AWS_ACCESS_KEY_ID: server.accessKey,
    AWS_SECRET_ACCESS_KEY: server.secretKey,
  };
}

/** A fresh bucket of this run (`bi-<RUN_ID>-…`), emptied and removed by `drop`. */
export async function testBucket(client: S3Client): Promise<{ name: string; drop: () => Promise<void> }> {
  const name = `bi-${RUN_ID}-${randomBytes(4).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: name }));
  return {
    name,
    drop: async () => {
      for (;;) {
        const page = await client.send(new ListObjectsV2Command({ Bucket: name, MaxKeys: 1000 }));
        const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key as string }));
        if (keys.length === 0) break;
        await client.send(new DeleteObjectsCommand({ Bucket: name, Delete: { Objects: keys, Quiet: true } }));
      }
      await client.send(new DeleteBucketCommand({ Bucket: name }));
    },
  };
}

/** Puts objects, `parallel` at a time. */
export async function putObjects(client: S3Client, bucket: string, objects: ReadonlyArray<{ key: string; body: Buffer | string }>, parallel = 16): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    for (let i = next++; i < objects.length; i = next++) {
      const o = objects[i] as { key: string; body: Buffer | string };
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: o.key, Body: o.body }));
    }
  }));
}

/** One request that went through a counting proxy. */
export interface SeenRequest {
  method: string;
  /** The object key (path-style: the path after the bucket), decoded; '' for a bucket-level request (listing). */
  key: string;
  query: URLSearchParams;
}

/**
 * A forwarding HTTP proxy in front of the S3 server, on 127.0.0.1, that notes every request (so a test counts what the
 * daemon asked for) and can hold each response back `delayMs` (to catch a run mid-cycle). Nothing is answered by it:
 * every request goes to the real server as it came, Host header (and so the signature) included.
 */
export async function countingProxy(server: S3Server): Promise<{
  endpoint: string; seen: SeenRequest[]; delayMs: number; failListingsAfter: number | null; close: () => Promise<void>;
}> {
  const target = new URL(server.endpoint);
  // failListingsAfter: ListObjectsV2 requests after this many are answered 500 (the server failing mid-listing).
  const state = { endpoint: '', seen: [] as SeenRequest[], delayMs: 0, failListingsAfter: null as number | null, close: async () => undefined as void };
  let listings = 0;
  const proxy = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const [, , ...rest] = url.pathname.split('/');
    state.seen.push({ method: req.method ?? 'GET', key: decodeURIComponent(rest.join('/')), query: url.searchParams });
    if (url.searchParams.get('list-type') === '2' && state.failListingsAfter !== null && ++listings > state.failListingsAfter) {
      req.resume();
      res.writeHead(500, { 'content-type': 'application/xml' }).end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>');
      return;
    }
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      const send = (): void => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      };
      if (state.delayMs > 0) setTimeout(send, state.delayMs);
      else send();
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((ok) => proxy.listen(0, '127.0.0.1', ok));
  state.endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  state.close = () => new Promise<void>((ok) => {
    proxy.closeAllConnections();
    proxy.close(() => ok());
  });
  return state;
}
