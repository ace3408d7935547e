/**
 * `npm run bench -- --notify [--uploads 1000] [--keys 100000]`: how long an object takes from its upload to its
 * committed rows when the daemon hears of it by an S3 event over AMQP (the machine's RabbitMQ, or TEST_AMQP_URL),
 * and what a listing of a bucket of `--keys` objects costs that notifications save.
 *
 * An "upload" puts a small NDJSON file into the HTTP bucket the bench serves and publishes its S3 event to the
 * daemon's queue at once, noting the time; the daemon's `FileDone` log line (written after the file's commit, with
 * pino's millisecond time) ends it. Uploads come one every `--every-ms` (20), so each is a cycle of its own, as
 * they would be in a quiet bucket.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import amqplib from 'amqplib';

const CLI = resolve('dist/bundle/cli.js');

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, strict: true, options: {
    uploads: { type: 'string', default: '1000' }, keys: { type: 'string', default: '100000' }, 'every-ms': { type: 'string', default: '20' },
  } });
  const uploads = Number(values.uploads);
  const keys = Number(values.keys);
  const everyMs = Number(values['every-ms']);
  const url = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
  const queue = `bi-bench-${randomBytes(3).toString('hex')}`;

  // The bucket: an index of one file, then whatever is uploaded (held in memory, served with ETags).
  const files = new Map<string, Buffer>([['files_list.data', Buffer.from('seed.ndjson')], ['seed.ndjson', Buffer.from(line('seed'))]]);
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    const body = files.get(decodeURIComponent((req.url ?? '/').slice(1)));
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length, etag: `"${md5(body)}"` }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const bucketUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const connection = await amqplib.connect(url);
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: true });
  const dir = await mkdtemp(join(os.tmpdir(), 'bucket-ingest-notify-bench-'));
  const child = spawn(process.execPath, [CLI, 'run'], {
    cwd: dir,
    env: { ...process.env, BUCKET_URL: bucketUrl, DATABASE_URL: 'sqlite://data/bench.sqlite3', NOTIFY_URL: url, NOTIFY_QUEUE: queue, LOG_LEVEL: 'debug', LOG_FORMAT: 'json', RECONCILE_SECONDS: '3600', DECODE_THREADS: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const done = new Map<string, number>();
  let connected = false;
  let listed = false;
  createInterface({ input: child.stdout }).on('line', (text) => {
    let e: { event?: string; key?: string; time?: string };
    try {
      e = JSON.parse(text) as typeof e;
    } catch {
      return;
    }
    if (e.event === 'NotificationsConnected') connected = true;
    if (e.event === 'CycleFinished') listed = true;
    if (e.event === 'FileDone' && typeof e.key === 'string' && typeof e.time === 'string') done.set(e.key, Date.parse(e.time));
  });
  try {
    while (!connected || !listed) await sleep(50);
    const before = requests;
    const sent = new Map<string, number>();
    for (let i = 0; i < uploads; i++) {
      const key = `up/${String(i).padStart(5, '0')}.ndjson`;
      const body = Buffer.from(line(key));
      files.set(key, body);
      sent.set(key, Date.now());
      channel.sendToQueue(queue, event(key, body), { persistent: true });
      await sleep(everyMs);
    }
    const deadline = Date.now() + 120_000;
    while (done.size < uploads + 1 && Date.now() < deadline) await sleep(50);
    const latencies = [...sent].filter(([k]) => done.has(k)).map(([k, t]) => (done.get(k) as number) - t).sort((a, b) => a - b);
    const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
    const indexBytes = Array.from({ length: keys }, (_, i) => `data/2026/12/01/${String(i).padStart(8, '0')}.ndjson`).join('\n').length;
    say(`notifications: ${latencies.length} of ${uploads} uploads committed; upload to committed rows: median ${pct(50)} ms, p90 ${pct(90)} ms, p99 ${pct(99)} ms, max ${latencies.at(-1)} ms`);
    say(`requests to the bucket for ${uploads} uploads: ${requests - before} (one GET per file; no listing)`);
    say(`a listing of ${keys.toLocaleString('en')} keys that notifications save, per poll: ${Math.ceil(keys / 1000)} ListObjectsV2 requests on S3 (1,000 keys a page), or a ${(indexBytes / 1e6).toFixed(1)} MB index file over HTTP; ` +
      `on S3, polling every 60 s (new files found 30 s late on average) costs ${(Math.ceil(keys / 1000) * 60 * 24).toLocaleString('en')} listing requests a day; notifications with an hourly reconciliation (RECONCILE_SECONDS=3600), ${(Math.ceil(keys / 1000) * 24).toLocaleString('en')}`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await channel.deleteQueue(queue).catch(() => undefined);
    await connection.close().catch(() => undefined);
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function line(title: string): string {
  return `${JSON.stringify({ type: 'song', data: { artist_name: 'bench', title, year: 2026, release: 'r' } })}\n`;
}

function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

function event(key: string, body: Buffer): Buffer {
  return Buffer.from(JSON.stringify({ Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: 'bench' }, object: { key: encodeURIComponent(key).replace(/%2F/g, '/'), size: body.length, eTag: md5(body) } } }] }));
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}
