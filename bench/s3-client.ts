/**
 * The S3 client choice (README, S3 buckets): the AWS SDK v3 S3 client against `@smithy/signature-v4` signing requests
 * sent through undici, on a real S3 server (TEST_S3_ENDPOINT / TEST_S3_ACCESS_KEY / TEST_S3_SECRET_KEY, e.g. from
 * `scripts/s3-server.sh start DIR`). Measures, for each: the esbuild bundle of what it needs (minified), the time to
 * import that bundle in a fresh Node, and GETs per second of N small objects at a concurrency of 16, best of 3.
 *
 *   node --import tsx bench/s3-client.ts [--objects 2000] [--bytes 4096]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import pLimit from 'p-limit';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { Agent, request } from 'undici';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const args = process.argv.slice(2);
const opt = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const OBJECTS = opt('objects', 2000);
const BYTES = opt('bytes', 4096);
const endpoint = process.env.TEST_S3_ENDPOINT;
const credentials = { accessKeyId: process.env.TEST_S3_ACCESS_KEY ?? '', secretAccessKey: process.env.TEST_S3_SECRET_KEY ?? '' };
if (!endpoint) throw new Error('set TEST_S3_ENDPOINT, TEST_S3_ACCESS_KEY and TEST_S3_SECRET_KEY (scripts/s3-server.sh start DIR)');

// 1. Bundles and their import time.
const dir = mkdtempSync(join(tmpdir(), 'bucket-ingest-s3-client-'));
const entries = {
  sdk: "import { S3Client, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'; export { S3Client, GetObjectCommand, ListObjectsV2Command };",
  // What the undici route needs on top of the daemon's undici: the signer (SHA-256 from node:crypto). Not counted: an
  // XML parser for listings, credential files and profiles, retries of S3's own error codes.
  signer: "import { SignatureV4 } from '@smithy/signature-v4'; export { SignatureV4 };",
};
const sizes: Record<string, { kb: number; importMs: number }> = {};
for (const [name, code] of Object.entries(entries)) {
  const entry = join(dir, `${name}.mjs`);
  writeFileSync(entry, code);
  const out = join(dir, `${name}.bundle.mjs`);
  await build({ entryPoints: [entry], outfile: out, bundle: true, minify: true, format: 'esm', platform: 'node', target: 'node20', absWorkingDir: resolve('.'), nodePaths: [resolve('node_modules')], logLevel: 'error',
    banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" } });
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const ms = execFileSync(process.execPath, ['--input-type=module', '-e', `const t = performance.now(); await import(${JSON.stringify(out)}); process.stdout.write(String(performance.now() - t));`]).toString();
    times.push(Number(ms));
  }
  times.sort((a, b) => a - b);
  sizes[name] = { kb: Math.round(statSync(out).size / 1024), importMs: Math.round(times[2] as number) };
}
rmSync(dir, { recursive: true, force: true });

// 2. Throughput: the same objects fetched both ways.
const bucket = `bench-${process.pid}`;
const sdk = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1, requestHandler: { httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 17 }) },
  requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
await sdk.send(new CreateBucketCommand({ Bucket: bucket })).catch(() => undefined);
const body = Buffer.alloc(BYTES, 'x');
const keys = Array.from({ length: OBJECTS }, (_, i) => `o/${String(i).padStart(6, '0')}.data`);
const put = pLimit(32);
await Promise.all(keys.map((Key) => put(() => sdk.send(new PutObjectCommand({ Bucket: bucket, Key, Body: body })))));

const bytes = (d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array =>
  typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
/** The hash the signer asks for, from node:crypto: SHA-256, or its HMAC with a key. */
class Sha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
}
const signer = new SignatureV4({ credentials, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false });
const agent = new Agent({ connections: 17, keepAliveTimeout: 10_000 });
const url = new URL(endpoint);
const ways: Record<string, (key: string) => Promise<number>> = {
  sdk: async (Key) => {
    const res = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key }));
    return (await res.Body!.transformToByteArray()).length;
  },
  signer: async (key) => {
    const path = `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
    const signed = await signer.sign({ method: 'GET', protocol: url.protocol, hostname: url.hostname, port: Number(url.port), path, query: {},
      headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } });
    const res = await request(`${endpoint}${path}`, { dispatcher: agent, headers: signed.headers });
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
    return (await res.body.arrayBuffer()).byteLength;
  },
};
const rates: Record<string, number> = {};
for (const [name, get] of Object.entries(ways)) {
  let best = 0;
  for (let rep = 0; rep < 3; rep++) {
    const limit = pLimit(16);
    const t = performance.now();
    const got = await Promise.all(keys.map((k) => limit(() => get(k))));
    if (got.some((n) => n !== BYTES)) throw new Error(`${name}: a body of the wrong size`);
    best = Math.max(best, OBJECTS / ((performance.now() - t) / 1000));
  }
  rates[name] = Math.round(best);
}
process.stdout.write(`${JSON.stringify({ objects: OBJECTS, bytes: BYTES, bundles: sizes, getsPerSecond: rates, node: process.version }, null, 2)}\n`);
sdk.destroy();
await agent.close();
