import { createHash, randomBytes } from 'node:crypto';
import amqplib, { type Channel, type ChannelModel } from 'amqplib';
import { RUN_ID } from './run-id.js';

/** The broker tests use: RabbitMQ on the machine, or TEST_AMQP_URL. */
export const AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

let said = false;

/**
 * A connection to the test broker, or null (and one visible line, once per run) when none answers: the suites that
 * need it then skip.
 */
export async function broker(): Promise<{ connection: ChannelModel; channel: Channel } | null> {
  try {
    const connection = await amqplib.connect(AMQP_URL, { timeout: 3000 });
    const channel = await connection.createChannel();
    return { connection, channel };
  } catch (err) {
    if (!said) {
      said = true;
      process.stdout.write(`  (skipping the AMQP notification suites: no broker at ${AMQP_URL.replace(/\/\/[^@]*@/, '//')} (${(err as Error).message}))\n`);
    }
    return null;
  }
}

/** A fresh queue name of this run. */
export function queueName(): string {
  return `bi-test-${RUN_ID}-${randomBytes(3).toString('hex')}`;
}

/** The standard S3 event JSON for an object created (or removed), as AWS, MinIO and Ceph send it. */
export function s3Event(key: string, body: Buffer | string | null, opts: { bucket?: string; name?: string } = {}): Buffer {
  const bytes = body === null ? null : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const object: Record<string, unknown> = { key: encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/') };
  if (bytes !== null) {
    object.size = bytes.length;
    object.eTag = createHash('md5').update(bytes).digest('hex');
  }
  return Buffer.from(JSON.stringify({
    Records: [{
      eventVersion: '2.2', eventSource: 'ceph:s3', awsRegion: 'us-east-1', eventTime: new Date().toISOString(),
      eventName: opts.name ?? (bytes === null ? 'ObjectRemoved:Delete' : 'ObjectCreated:Put'),
      s3: { s3SchemaVersion: '1.0', bucket: { name: opts.bucket ?? 'test' }, object },
    }],
  }));
}
