import { expect } from 'chai';
import amqplib, { type Channel, type ChannelModel } from 'amqplib';
import { until } from '../helpers/cli.js';
import { s3Event } from '../helpers/amqp.js';
import { notifySuite, song, sqliteDump } from '../helpers/notify-suite.js';
import { startPrivateRabbitMq } from '../helpers/private-rabbitmq.js';

/** A broker of the test's own (the machine's is shared: never restarted) stopped and started under a daemon. */
describe('bucket notifications when the broker restarts (integration, private RabbitMQ)', function () {
  this.timeout(120_000);
  const { cleanups, setUp, daemon } = notifySuite();

  it('survives a broker restart mid-run: /readyz says why, it reconnects, the file in flight is loaded once and its message taken once', async function () {
    const rmq = await startPrivateRabbitMq();
    if ('why' in rmq) {
      process.stdout.write(`      (skipped: no private RabbitMQ to restart: ${rmq.why})\n`);
      this.skip();
    }
    cleanups.push(() => rmq.destroy());
    const own = async (): Promise<{ connection: ChannelModel; channel: Channel }> => {
      const connection = await amqplib.connect(rmq.url);
      return { connection, channel: await connection.createChannel() };
    };
    let mine = await own();
    const { bucket, dir, env, publish } = await setUp({ 'a.ndjson': song('a') }, { NOTIFY_URL: rmq.url, REQUEST_TIMEOUT_SECONDS: '3' }, mine.channel);
    const d = daemon(dir, env);
    await until(() => (d.seen('NotificationsConnected').length > 0 && d.seen('CycleFinished').length > 0 ? true : undefined));
    const port = Number(d.seen('HttpListening')[0]?.port);
    const body = Array.from({ length: 50 }, (_, i) => song(`s${i}`)).join('');
    bucket.setFile('slow.ndjson', body);
    bucket.addFaults('slow.ndjson', [{ kind: 'hang' }]); // its first GET never answers: a file in flight
    publish(s3Event('slow.ndjson', body));
    await until(() => (bucket.hits('slow.ndjson') > 0 ? true : undefined));
    await mine.connection.close();
    await rmq.stop();
    await until(() => d.seen('NotificationsDisconnected')[0]);
    const readyz = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(readyz.status).to.equal(503);
    expect(((await readyz.json()) as { reasons: string[] }).reasons.join('; ')).to.match(/notifications: not connected/);
    await rmq.start();
    await until(() => (d.seen('NotificationsConnected').length > 1 ? true : undefined), 60_000);
    mine = await own();
    cleanups.push(() => mine.connection.close());
    const after = async (): Promise<number> => (await mine.channel.checkQueue(env.NOTIFY_QUEUE as string)).messageCount;
    await until(() => d.seen('FileDone').find((e) => e.key === 'slow.ndjson'), 60_000);
    bucket.setFile('later.ndjson', song('later'));
    mine.channel.sendToQueue(env.NOTIFY_QUEUE as string, s3Event('later.ndjson', song('later')), { persistent: true });
    await until(() => d.seen('FileDone').find((e) => e.key === 'later.ndjson'), 30_000);
    // The message of the file in flight, unacknowledged when the broker stopped, comes again: a duplicate by then.
    await until(() => d.seen('NotificationsSkipped').find((e) => Number(e.duplicate) >= 1), 30_000);
    d.child.kill('SIGTERM');
    expect((await d.finished).code).to.equal(0);
    expect(await after()).to.equal(0); // nothing left unacknowledged comes back
    expect(d.seen('FileDone').filter((e) => e.key === 'slow.ndjson')).to.have.length(1);
    const tables = await sqliteDump(`${dir}/data/t.sqlite3`);
    expect((tables.songs ?? []).filter((r) => r.source_key === 'slow.ndjson')).to.have.length(50);
    expect(d.output()).to.not.contain('guest:guest');
  });

});
