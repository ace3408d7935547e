/**
 * A RabbitMQ broker of a test's own, so that a test may stop and restart it (never the machine's own, which others
 * share): Debian's `rabbitmq-server` as a node of its own name, its data, logs and config in a temp dir, AMQP and
 * Erlang distribution on free ports of 127.0.0.1. Starts in about 7 s; `guest`/`guest` on loopback.
 *
 * @example
 *   const rmq = await startPrivateRabbitMq(); // null (and why, in rmq.why) where it cannot start
 *   await rmq.stop(); await rmq.start();      // the same node, its durable queues kept
 *   await rmq.destroy();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from './cli.js';
import { RUN_ID } from './run-id.js';

const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

export interface PrivateRabbitMq {
  url: string;
  start(): Promise<void>;
  /** Stops the node (SIGTERM to the pid it wrote) and waits until its port is closed. */
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const answers = (port: number): Promise<boolean> => new Promise((resolve) => {
  const socket = connect(port, '127.0.0.1');
  socket.once('connect', () => {
    socket.destroy();
    resolve(true);
  });
  socket.once('error', () => resolve(false));
});

/** A private broker, started; or `{ why }` where this machine has none to start. */
export async function startPrivateRabbitMq(): Promise<PrivateRabbitMq | { why: string }> {
  if (!existsSync(SERVER)) return { why: `no ${SERVER} (Debian's rabbitmq-server package)` };
  const t = await tempDir('bucket-ingest-rabbitmq-');
  const port = await freePort();
  const dist = await freePort();
  const node = `bitest${RUN_ID}${port}@localhost`;
  await writeFile(join(t.dir, 'enabled_plugins'), '[].\n');
  await writeFile(join(t.dir, 'rabbitmq.conf'), 'log.console = false\n');
  const env = {
    ...process.env, HOME: t.dir, RABBITMQ_NODENAME: node, RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1', RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(dist), RABBITMQ_MNESIA_BASE: join(t.dir, 'mnesia'), RABBITMQ_LOG_BASE: join(t.dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(t.dir, 'rabbitmq'), RABBITMQ_ENABLED_PLUGINS_FILE: join(t.dir, 'enabled_plugins'), RABBITMQ_PID_FILE: join(t.dir, 'pid'),
  };
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    child = spawn(SERVER, [], { env, stdio: 'ignore', detached: true });
    for (let i = 0; i < 240; i++) {
      if (await answers(port)) return;
      if (child.exitCode !== null) throw new Error(`rabbitmq-server exited with ${child.exitCode} (logs in ${t.dir}/log)`);
      await sleep(250);
    }
    throw new Error('rabbitmq-server did not answer within 60 s');
  };
  const stop = async (): Promise<void> => {
    const pid = Number((await readFile(join(t.dir, 'pid'), 'utf8').catch(() => '')).trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    for (let i = 0; i < 120 && (await answers(port)); i++) await sleep(250);
    if (child && child.exitCode === null) await new Promise((r) => (child as ChildProcess).once('exit', r));
    child = null;
  };
  try {
    await start();
  } catch (err) {
    await stop().catch(() => undefined);
    await t.cleanup();
    return { why: (err as Error).message };
  }
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    start,
    stop,
    destroy: async () => {
      await stop();
      await t.cleanup();
    },
  };
}
