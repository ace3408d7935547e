import { expect } from 'chai';
import { runCli, until } from '../helpers/cli.js';
import { dialects, dump } from '../helpers/databases.js';
import { AMQP_URL, s3Event } from '../helpers/amqp.js';
import { notifySuite, song, sqliteDump } from '../helpers/notify-suite.js';

/**
 * Bucket notifications over AMQP, on the machine's RabbitMQ: new objects load from their events with no listing,
 * duplicates are nothing, a bad message is one line and gone, a daemon killed mid-file gets its message again, and
 * two daemons share a queue (a broker restarted mid-file: test/slow/notifications-restart.test.ts).
 */
describe('bucket notifications over AMQP (integration)', function () {
  this.timeout(120_000);
  const { amqp, cleanups, setUp, daemon } = notifySuite();

  it('loads objects named by notifications without listing, takes a duplicate for nothing and a bad message for one line, and acknowledges all', async () => {
    const { bucket, dir, env, publish, ready } = await setUp({ 'a.ndjson': song('a') });
    const d = daemon(dir, env);
    await until(() => (d.seen('CycleFinished').length > 0 && d.seen('NotificationsConnected').length > 0 ? true : undefined));
    expect(bucket.hits('files_list.data')).to.equal(1);

    bucket.setFile('new/b c+d.ndjson', song('b1') + song('b2')); // not in the index: only the event names it
    publish(s3Event('new/b c+d.ndjson', song('b1') + song('b2')));
    await until(() => d.seen('FileDone').find((e) => e.key === 'new/b c+d.ndjson'));
    publish(s3Event('new/b c+d.ndjson', song('b1') + song('b2'))); // delivered again: the same version
    publish(Buffer.from('{"Records": "nope"}'));
    publish(s3Event('a.ndjson', null)); // removed: logged, rows kept
    await until(() => d.seen('NotificationRejected')[0]);
    await until(() => d.seen('ObjectRemoved')[0]);
    await until(() => d.seen('NotificationsSkipped').find((e) => e.duplicate === 1));
    expect(d.seen('NotificationRejected')[0]?.error).to.equal('BI_NOTIFY: not an S3 event (no Records array)');
    expect(d.seen('ObjectRemoved')[0]?.key).to.equal('a.ndjson');
    expect(d.seen('FileDone').map((e) => e.key)).to.deep.equal(['a.ndjson', 'new/b c+d.ndjson']);
    expect(bucket.hits('files_list.data')).to.equal(1); // no listing since the first
    expect(bucket.hits('new/b c+d.ndjson')).to.equal(1);

    const port = Number(d.seen('HttpListening')[0]?.port);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).to.match(/bucket_ingest_files_discovered_total\{via="notification"\} 1\b/);
    expect(metrics).to.match(/bucket_ingest_files_discovered_total\{via="listing"\} 1\b/);
    expect(metrics).to.match(/bucket_ingest_notifications_total\{outcome="malformed"\} 1\b/);
    expect(metrics).to.match(/bucket_ingest_notifications_total\{outcome="duplicate"\} 1\b/);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).to.equal(200);

    d.child.kill('SIGTERM');
    expect((await d.finished).code).to.equal(0);
    expect(await ready()).to.equal(0); // every message acknowledged (or dropped, the bad one): none comes back
    const tables = await sqliteDump(`${dir}/data/t.sqlite3`);
    expect((tables.songs ?? []).map((r) => r.title).sort()).to.deep.equal(['a', 'b1', 'b2']);
  });

  it('uses a queue that exists as it is: a bad message goes to its dead-letter exchange', async () => {
    const channel = amqp().channel;
    const { dir, env, publish } = await setUp({ 'a.ndjson': song('a') });
    // setUp declared the queue plainly: made again here with a dead-letter exchange, as an operator would.
    const queue = env.NOTIFY_QUEUE as string;
    const dlx = `${queue}-dlx`;
    await channel.deleteQueue(queue);
    await channel.assertExchange(dlx, 'fanout', { durable: false, autoDelete: false });
    const dead = await channel.assertQueue(`${queue}-dead`, { durable: false });
    await channel.bindQueue(dead.queue, dlx, '');
    await channel.assertQueue(queue, { durable: true, deadLetterExchange: dlx });
    cleanups.push(async () => {
      await channel.deleteQueue(dead.queue);
      await channel.deleteExchange(dlx);
    });
    const d = daemon(dir, env);
    await until(() => (d.seen('NotificationsConnected').length > 0 && d.seen('CycleFinished').length > 0 ? true : undefined));
    publish(Buffer.from('not json at all'));
    await until(() => d.seen('NotificationRejected')[0]);
    const got = await until(async () => (await channel.get(dead.queue, { noAck: true })) || undefined);
    expect(got.content.toString()).to.equal('not json at all');
    d.child.kill('SIGTERM');
    expect((await d.finished).code).to.equal(0);
  });

  it('waits out a RECONCILE_SECONDS of weeks without spinning (longer than a timer takes)', async () => {
    const { dir, env } = await setUp({ 'a.ndjson': song('a') });
    const d = daemon(dir, { ...env, RECONCILE_SECONDS: String(40 * 24 * 3600) });
    await until(() => (d.seen('NotificationsConnected').length > 0 && d.seen('CycleFinished').length > 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    d.child.kill('SIGTERM');
    const r = await d.finished;
    expect(r.code).to.equal(0);
    expect(r.stderr).to.not.contain('TimeoutOverflowWarning');
  });

  it('a daemon killed mid-file leaves its message unacknowledged: the restarted daemon gets it again and loads the file once', async () => {
    const { bucket, dir, env, publish, ready } = await setUp({ 'a.ndjson': song('a') });
    const first = daemon(dir, env);
    await until(() => (first.seen('NotificationsConnected').length > 0 && first.seen('CycleFinished').length > 0 ? true : undefined));
    const body = Array.from({ length: 50 }, (_, i) => song(`s${i}`)).join('');
    bucket.setFile('slow.ndjson', body);
    bucket.addFaults('slow.ndjson', [{ kind: 'hang' }]);
    publish(s3Event('slow.ndjson', body));
    await until(() => (bucket.hits('slow.ndjson') > 0 ? true : undefined));
    first.child.kill('SIGKILL');
    await first.finished;
    await until(async () => ((await ready()) === 1 ? true : undefined)); // the broker has it again
    const second = daemon(dir, env);
    await until(() => second.seen('FileDone').find((e) => e.key === 'slow.ndjson'));
    second.child.kill('SIGTERM');
    expect((await second.finished).code).to.equal(0);
    expect(await ready()).to.equal(0);
    const tables = await sqliteDump(`${dir}/data/t.sqlite3`);
    expect((tables.songs ?? []).filter((r) => r.source_key === 'slow.ndjson')).to.have.length(50);
  });

  it('a broker that refuses the credentials stops start-up with one BI_NOTIFY line, the password not shown', async () => {
    const { dir, env } = await setUp({ 'a.ndjson': song('a') });
    const u = new URL(AMQP_URL);
    u.password = 'wrong-s3cret';
    const r = await runCli(['run'], { cwd: dir, env: { ...env, NOTIFY_URL: u.toString() } });
    expect(r.code).to.equal(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^bucket-ingest: BI_NOTIFY: NOTIFY_URL amqp:\/\/guest:\*\*\*@127\.0\.0\.1:\d+: the broker refused us: /);
    expect(r.stdout + r.stderr).to.not.contain('wrong-s3cret');
  });

  for (const dialect of dialects().filter((x) => x.name !== 'sqlite')) {
    it(`${dialect.name}: two daemons on one queue, the database registry: each notified file is loaded once`, async () => {
      const { bucket, dir, env, publish, ready } = await setUp({ 'a.ndjson': song('a') });
      const db = await dialect.create(dir);
      cleanups.push(() => db.drop());
      const shared = { ...env, DATABASE_URL: db.url, REGISTRY: 'database' };
      // Each up (a cycle done, consuming) before the next starts; a daemon that never is shown whole in the failure.
      const up = async (d: ReturnType<typeof daemon>, name: string): Promise<void> => {
        await until(() => (d.seen('NotificationsConnected').length > 0 && d.seen('CycleFinished').length > 0 ? true : undefined), 60_000)
          .catch((err: unknown) => {
            throw new Error(`daemon ${name} not up: ${(err as Error).message}\n${d.output()}`);
          });
      };
      const one = daemon(dir, { ...shared, WORKER_NAME: 'one', HTTP_PORT: 'off' });
      await up(one, 'one');
      const two = daemon(dir, { ...shared, WORKER_NAME: 'two', HTTP_PORT: 'off', REGISTRY_PATH: 'registry/two.json' });
      await up(two, 'two');
      const keys = Array.from({ length: 20 }, (_, i) => `n/${i}.ndjson`);
      for (const k of keys) bucket.setFile(k, song(k));
      for (const k of keys) publish(s3Event(k, song(k)));
      for (const k of keys.slice(0, 5)) publish(s3Event(k, song(k))); // duplicates
      const loaded = (): string[] => [...one.seen('FileDone'), ...two.seen('FileDone')].map((e) => String(e.key)).filter((k) => k.startsWith('n/'));
      await until(() => (new Set(loaded()).size === keys.length ? true : undefined), 60_000);
      await until(async () => ((await ready()) === 0 ? true : undefined));
      one.child.kill('SIGTERM');
      two.child.kill('SIGTERM');
      expect((await one.finished).code).to.equal(0);
      expect((await two.finished).code).to.equal(0);
      expect(loaded().sort()).to.deep.equal([...keys].sort()); // each once, across both
      const tables = await dump(db.knex());
      expect((tables.songs ?? []).filter((r) => String(r.source_key).startsWith('n/'))).to.have.length(keys.length);
    });
  }
});
