import amqplib, { type Channel, type ChannelModel, type ConsumeMessage, type RecoveringChannelModel } from 'amqplib';
import { describeError, IngestError } from '../../errors.js';
import { redactText } from '../../redact.js';
import { parseS3Event, type ObjectEvent } from './s3-event.js';

/** setTimeout's longest delay: a longer one (a RECONCILE_SECONDS of weeks) would fire at once, and spin. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface AmqpOptions {
  /** NOTIFY_URL: `amqp://user:pass@host:5672/vhost` (a secret: never shown whole). */
  url: string;
  /** NOTIFY_QUEUE: declared durable, so events wait in it while the daemon is away. */
  queue: string;
  /** NOTIFY_EXCHANGE: when set, declared (a durable topic exchange, unless it exists) and the queue bound to it. */
  exchange: string;
  /** NOTIFY_ROUTING_KEY: the binding's key (`#`: every message of a topic exchange). */
  routingKey: string;
  /** Messages delivered and not yet acknowledged, at most. */
  prefetch: number;
  /** Hears about the connection and about messages that are not S3 events. */
  hooks: NotificationHooks;
}

export interface NotificationHooks {
  connected(): void;
  disconnected(error: string): void;
  /** A message that is not an S3 event: logged, and taken off the queue (dead-lettered, if the queue has a dead-letter exchange). */
  malformed(error: string, bytes: number): void;
}

/** A message of S3 events, delivered and not yet acknowledged. */
export interface Delivery {
  events: ObjectEvent[];
  /** Acknowledges the message: its files are committed, or recorded failed. A no-op if its channel closed meanwhile (the broker then delivers it again). */
  ack(): void;
}

/**
 * S3 event notifications consumed from an AMQP 0-9-1 queue (RabbitMQ; Ceph's and MinIO's AMQP targets), by amqplib
 * with its connection recovery: on a broker outage it reconnects with backoff (0.2 s doubling to 15 s), declares
 * again, and consumes again; messages delivered before the outage and not acknowledged are delivered again by the
 * broker, so a message is acknowledged only once its files are committed, and nothing is lost.
 */
export class AmqpNotifications {
  private connection: RecoveringChannelModel | null = null;
  /** The channel consuming now (a new one after each recovery). */
  private channel: Channel | null = null;
  private readonly queued: Delivery[] = [];
  private wake: (() => void) | null = null;
  private problem: string | null = 'not connected yet';
  private closed = false;

  constructor(private readonly opts: AmqpOptions) {}

  /** Why notifications are not flowing now (for /readyz), or null when connected and consuming. */
  get notReady(): string | null {
    return this.problem;
  }

  /**
   * Connects, declares and starts consuming. The broker refusing the credentials or the virtual host is a setting
   * that is wrong: it fails here with one BI_NOTIFY line. A broker that does not answer yet is an outage: the daemon
   * starts, lists as usual, and connects once it can.
   */
  async start(): Promise<void> {
    try {
      const probe = await amqplib.connect(this.opts.url, { timeout: 10_000 });
      await probe.close();
    } catch (err) {
      const why = describeError(err);
      if (/ACCESS[-_]REFUSED|NOT[-_]ALLOWED|403|530/.test(why)) throw new IngestError('BI_NOTIFY', `NOTIFY_URL ${redactText(this.opts.url)}: the broker refused us: ${redactText(why)}`);
      this.problem = `not connected: ${redactText(why)}`;
      this.opts.hooks.disconnected(this.problem);
    }
    const connection = await amqplib.connect(this.opts.url, {
      timeout: 10_000,
      recovery: {
        initialDelay: 200, maxDelay: 15_000, factor: 2, jitter: 0.2, maxRetries: Infinity, waitForConnect: false,
        setup: async (model: ChannelModel) => {
          const channel = await model.createChannel();
          channel.on('error', () => undefined); // a channel error closes it; the connection's recovery makes a new one
          await this.declare(model, channel);
          await channel.prefetch(this.opts.prefetch);
          await channel.consume(this.opts.queue, (msg: ConsumeMessage | null) => this.receive(channel, msg), { noAck: false });
          this.channel = channel;
          this.problem = null;
          this.opts.hooks.connected();
        },
      },
    });
    connection.on('disconnect', (err: Error) => this.lost(err));
    connection.on('connect-failed', (err: Error) => this.lost(err));
    connection.on('error', (err: Error) => this.lost(err));
    connection.on('handler-error', (err: Error) => this.lost(err));
    this.connection = connection;
  }

  /** Waits for deliveries (at most `ms`, or until `signal`), then takes what has arrived within `gatherMs` more. */
  async take(ms: number, gatherMs: number, signal: AbortSignal): Promise<Delivery[]> {
    if (this.queued.length === 0 && ms > 0 && !signal.aborted) await this.waitFor(ms, signal);
    if (this.queued.length > 0 && gatherMs > 0 && this.queued.length < this.opts.prefetch && !signal.aborted) await this.waitFor(gatherMs, signal, true);
    return this.queued.splice(0);
  }

  /**
   * Closes the channel first, and waits for the broker to say so: it has then taken every acknowledgement sent before
   * (closing the connection at once could lose the last ones, and their messages would come again).
   */
  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    const ch = this.channel;
    this.channel = null;
    await ch?.close().catch(() => undefined);
    const c = this.connection;
    this.connection = null;
    await c?.close().catch(() => undefined);
  }

  /**
   * Declares what is missing: an exchange or queue that exists is used as it is (of whatever type, with whatever
   * arguments: a queue made with a dead-letter exchange keeps it), since declaring it again with other arguments is
   * an error in AMQP. A passive check that fails closes its channel, so each is made on a channel of its own.
   */
  private async declare(model: { createChannel(): Promise<Channel> }, channel: Channel): Promise<void> {
    const { exchange, queue, routingKey } = this.opts;
    const exists = async (check: (c: Channel) => Promise<unknown>): Promise<boolean> => {
      const probe = await model.createChannel();
      probe.on('error', () => undefined);
      const found = await check(probe).then(() => true, () => false);
      if (found) await probe.close().catch(() => undefined);
      return found;
    };
    if (exchange !== '' && !(await exists((c) => c.checkExchange(exchange)))) await channel.assertExchange(exchange, 'topic', { durable: true });
    if (!(await exists((c) => c.checkQueue(queue)))) await channel.assertQueue(queue, { durable: true });
    if (exchange !== '') await channel.bindQueue(queue, exchange, routingKey);
  }

  private receive(channel: Channel, msg: ConsumeMessage | null): void {
    if (msg === null) return; // the broker cancelled the consumer (queue deleted): recovery consumes again
    let events: ObjectEvent[];
    try {
      events = parseS3Event(msg.content);
    } catch (err) {
      this.opts.hooks.malformed(describeError(err), msg.content.length);
      channel.nack(msg, false, false);
      return;
    }
    let acked = false;
    this.queued.push({
      events,
      ack: () => {
        if (acked) return;
        acked = true;
        try {
          channel.ack(msg);
        } catch {
          // The channel closed since: the broker delivers the message again, and the registry makes that a no-op.
        }
      },
    });
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private lost(err: Error): void {
    if (this.closed) return;
    const why = `not connected: ${redactText(describeError(err))}`;
    if (this.problem === why) return;
    this.problem = why;
    this.opts.hooks.disconnected(why);
  }

  private waitFor(ms: number, signal: AbortSignal, timeOnly = false): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, Math.min(ms, MAX_TIMER_MS));
      signal.addEventListener('abort', done, { once: true });
      if (!timeOnly) this.wake = done;
    });
  }
}
