/**
 * A real S3 server for the S3 suites: Ceph's RADOS Gateway (scripts/s3-server.sh), started once per mocha run and
 * stopped by the root hooks, or the one named by TEST_S3_ENDPOINT / TEST_S3_ACCESS_KEY / TEST_S3_SECRET_KEY
 * (.ci/run starts one and sets them). Where neither is to be had, the S3 suites are skipped with one line.
 */
import { execFile } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import {
  CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { RUN_ID } from './run-id.js';

const run = promisify(execFile);
// The SDK's multi-line warning about Node 20 (see src/sources/s3.ts) is not the tests' business either.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const SCRIPT = resolve('scripts/s3-server.sh');

export interface S3Server {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}

let started: Promise<S3Server | null> | undefined;
/** The directory of the server this run started, to stop at the end (none when it came from the environment). */
let ownDir: string | undefined;
let said = false;

function skip(why: string): null {
  if (!said) process.stdout.write(`  (skipping the S3 suites: ${why})\n`);
  said = true;
  return null;
}

/** The run's S3 server, started on first use; null (after one line saying why) when none can be had. */
export function s3Server(): Promise<S3Server | null> {
  started ??= (async () => {
    const env = process.env;
    if (env.TEST_S3_ENDPOINT) {
      return { endpoint: env.TEST_S3_ENDPOINT, accessKey: env.TEST_S3_ACCESS_KEY ?? '', secretKey: env.TEST_S3_SECRET_KEY ?? '' };
    }
    const dir = await mkdtemp(join(tmpdir(), 'bucket-ingest-s3-server-'));
    try {
      const { stdout } = await run('bash', [SCRIPT, 'start', dir], { timeout: 120_000 });
      ownDir = dir;
      const vars = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
      return { endpoint: vars.TEST_S3_ENDPOINT ?? '', accessKey: vars.TEST_S3_ACCESS_KEY ?? '', secretKey: vars.TEST_S3_SECRET_KEY ?? '' };
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      const stderr = String((err as { stderr?: unknown }).stderr ?? (err as Error).message).trim().split('\n')[0];
      return skip(`no S3 server: ${stderr}; set TEST_S3_ENDPOINT, or run scripts/s3-server.sh install`);
    }
  })();
  return started;
}

/** Stops the server this run started (root hooks, after all suites). */
export async function stopS3Server(): Promise<void> {
  if (ownDir === undefined) return;
  const dir = ownDir;
  ownDir = undefined;
  await run('bash', [SCRIPT, 'stop', dir], { timeout: 60_000 }).catch(() => undefined);
}

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
export async function countingProxy(server: S3Server): Promise<{ endpoint: string; seen: SeenRequest[]; delayMs: number; close: () => Promise<void> }> {
  const target = new URL(server.endpoint);
  const state = { endpoint: '', seen: [] as SeenRequest[], delayMs: 0, close: async () => undefined as void };
  const proxy = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const [, , ...rest] = url.pathname.split('/');
    state.seen.push({ method: req.method ?? 'GET', key: decodeURIComponent(rest.join('/')), query: url.searchParams });
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
