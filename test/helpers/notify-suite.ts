/**
 * What the notification suites share: the machine's broker (skipping the suite with one line when there is none), a
 * queue and an HTTP bucket per test, daemons killed if a test leaves them running, and everything removed after.
 */
import knexFactory from 'knex';
import type { Channel, ChannelModel } from 'amqplib';
import { events, startCli, tempDir } from './cli.js';
import { dump } from './databases.js';
import { startTestBucket, type TestBucket } from './test-bucket.js';
import { AMQP_URL, broker, queueName } from './amqp.js';

export async function sqliteDump(filename: string): Promise<Awaited<ReturnType<typeof dump>>> {
  const db = knexFactory({ client: 'better-sqlite3', connection: { filename }, useNullAsDefault: true });
  try {
    return await dump(db);
  } finally {
    await db.destroy();
  }
}

export const song = (title: string): string => `${JSON.stringify({ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } })}\n`;

export interface NotifySuite {
  amqp(): { connection: ChannelModel; channel: Channel };
  cleanups: Array<() => Promise<void>>;
  setUp(files: Record<string, string>, extra?: Record<string, string>, on?: Channel): Promise<{ bucket: TestBucket; queue: string; dir: string; env: Record<string, string>; publish: (body: Buffer) => void; ready: () => Promise<number> }>;
  daemon(dir: string, env: Record<string, string>): ReturnType<typeof startCli> & { seen: (event: string) => Array<Record<string, unknown>> };
}

/** Call inside a `describe`: registers its hooks. */
export function notifySuite(): NotifySuite {
  let amqp: { connection: ChannelModel; channel: Channel } | null = null;
  const cleanups: Array<() => Promise<void>> = [];

  before(async function () {
    amqp = await broker();
    if (amqp === null) this.skip();
  });
  after(async () => {
    await amqp?.connection.close().catch(() => undefined);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function setUp(files: Record<string, string>, extra: Record<string, string> = {}, on?: Channel): Promise<{ bucket: TestBucket; queue: string; dir: string; env: Record<string, string>; publish: (body: Buffer) => void; ready: () => Promise<number> }> {
    const channel = on ?? (amqp as { channel: Channel }).channel;
    const queue = queueName();
    await channel.assertQueue(queue, { durable: true });
    if (on === undefined) {
      cleanups.push(async () => {
        await channel.deleteQueue(queue);
      });
    }
    const bucket = await startTestBucket({ files });
    cleanups.push(() => bucket.close());
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const env = {
      BUCKET_URL: bucket.url, DATABASE_URL: 'sqlite://data/t.sqlite3', REGISTRY_PATH: 'registry/t.json', LOG_LEVEL: 'debug',
      NOTIFY_URL: AMQP_URL, NOTIFY_QUEUE: queue, RECONCILE_SECONDS: '3600', POLL_INTERVAL_SECONDS: '3600', HTTP_PORT: '0', ...extra,
    };
    return {
      bucket, queue, dir: t.dir, env,
      publish: (body) => void channel.sendToQueue(queue, body, { persistent: true }),
      ready: async () => (await channel.checkQueue(queue)).messageCount,
    };
  }

  function daemon(dir: string, env: Record<string, string>): ReturnType<typeof startCli> & { seen: (event: string) => Array<Record<string, unknown>> } {
    const d = startCli(['run'], { cwd: dir, env });
    cleanups.push(async () => {
      if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
      await d.finished.catch(() => undefined);
    });
    return { ...d, seen: (event) => events(d.output()).filter((e) => e.event === event) };
  }

  return { amqp: () => amqp as { connection: ChannelModel; channel: Channel }, cleanups, setUp, daemon };
}
