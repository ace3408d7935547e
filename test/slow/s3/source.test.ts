import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { IngestError } from '../../../src/errors.js';
import { S3Source, type S3SourceOptions } from '../../../src/sources/s3.js';
import type { ListedObject } from '../../../src/sources/types.js';
import { putObjects, s3Client, s3Server, testBucket, type S3Server } from '../../helpers/s3.js';

const MB = 1024 * 1024;

describe('S3Source against a real server (Ceph RGW)', function () {
  this.timeout(60_000);
  let server: S3Server;
  let client: S3Client;
  let bucket: string;
  let drop: () => Promise<void>;
  const sources: S3Source[] = [];
  const source = (over: Partial<S3SourceOptions> = {}): S3Source => {
    const s = new S3Source({
      bucket, prefix: 'p/', indexKey: null, endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', concurrency: 4, timeoutMs: 10_000,
      maxBytes: 4 * MB, streamAboveBytes: 1 * MB, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50 },
      env: { AWS_ACCESS_KEY_ID: server.accessKey, AWS_SECRET_ACCESS_KEY: server.secretKey }, ...over,
    });
    sources.push(s);
    return s;
  };
  const failure = async (p: Promise<unknown>): Promise<IngestError> => {
    try {
      await p;
    } catch (err) {
      if (err instanceof IngestError) return err;
      throw err;
    }
    throw new Error('expected a failure');
  };
  const exists = (key: string): Promise<boolean> => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(() => true, () => false);

  before(async function () {
    const s = await s3Server();
    if (s === null) this.skip();
    server = s as S3Server;
    client = s3Client(server);
    ({ name: bucket, drop } = await testBucket(client));
  });
  after(async () => {
    for (const s of sources) await s.close();
    await drop?.();
    client?.destroy();
  });

  it('reads a small object whole, streams one above STREAM_ABOVE_MB, and fails one over MAX_FILE_MB without reading it', async () => {
    const big = Buffer.alloc(2 * MB, 7);
    await putObjects(client, bucket, [{ key: 'p/small.json', body: '[1]' }, { key: 'p/big.json', body: big }, { key: 'p/huge.json', body: Buffer.alloc(5 * MB, 1) }]);
    const s = source();
    const small = await s.fetch('small.json');
    expect('body' in small && small.body.toString()).to.equal('[1]');
    const streamed = await s.fetch('big.json');
    expect(streamed).to.have.property('stream');
    const chunks: Buffer[] = [];
    for await (const c of (streamed as { stream: AsyncIterable<Buffer> }).stream) chunks.push(c);
    expect(Buffer.concat(chunks).equals(big)).to.equal(true);
    const tooLarge = await failure(s.fetch('huge.json'));
    expect(tooLarge.code).to.equal('BI_BODY_TOO_LARGE');
    expect((await failure(s.fetch('missing.json'))).code).to.equal('BI_NOT_FOUND');
  });

  it('gunzips an object stored with Content-Encoding: gzip, and answers NotModified for the ETag it has', async () => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'p/z.json', Body: gzipSync('[1,2,3]'), ContentEncoding: 'gzip' }));
    const s = source();
    const got = await s.fetch('z.json');
    expect('body' in got && got.body.toString()).to.equal('[1,2,3]');
    const again = await s.fetch('z.json', { known: { etag: got.etag, size: got.size } });
    expect(again).to.deep.include({ notModified: true, etag: got.etag });
  });

  it('lists page by page after StartAfter, keys relative to the prefix', async () => {
    await putObjects(client, bucket, ['a', 'b', 'c', 'd'].map((k) => ({ key: `q/${k}.json`, body: '[]' })));
    const s = source({ prefix: 'q/' });
    const keys = async (startAfter?: string): Promise<string[]> => {
      const out: ListedObject[] = [];
      for await (const page of s.listObjects!({ startAfter })) out.push(...page);
      return out.map((o) => o.key);
    };
    expect(await keys()).to.deep.equal(['a.json', 'b.json', 'c.json', 'd.json']);
    expect(await keys('b.json')).to.deep.equal(['c.json', 'd.json']);
  });

  it('AFTER_LOAD: delete and move are idempotent, a move that was done before counts as done', async () => {
    await putObjects(client, bucket, [{ key: 'p/del.json', body: '[]' }, { key: 'p/mv dir/m+v é.json', body: '[7]' }]);
    const s = source();
    await s.afterLoad('del.json', { kind: 'delete' });
    expect(await exists('p/del.json')).to.equal(false);
    await s.afterLoad('del.json', { kind: 'delete' });
    await s.afterLoad('mv dir/m+v é.json', { kind: 'move', prefix: 'archive/' });
    expect(await exists('p/mv dir/m+v é.json')).to.equal(false);
    expect(await exists('archive/mv dir/m+v é.json')).to.equal(true);
    await s.afterLoad('mv dir/m+v é.json', { kind: 'move', prefix: 'archive/' });
    // Gone, and not at the target either: that is not a move done before.
    expect((await failure(s.afterLoad('never.json', { kind: 'move', prefix: 'archive/' }))).code).to.equal('BI_NOT_FOUND');
  });

  it('sends unsigned requests without credentials (403 AccessDenied on a private bucket), and names a wrong key id', async () => {
    const anonymous = source({ env: { AWS_SHARED_CREDENTIALS_FILE: '/nonexistent', AWS_CONFIG_FILE: '/nonexistent' } });
    const denied = await failure(anonymous.listKeys());
    expect(denied.code).to.equal('BI_SOURCE_UNAVAILABLE');
    expect(denied.message).to.match(/HTTP 403 AccessDenied/);
    const unknown = source({ env: { AWS_ACCESS_KEY_ID: 'NOSUCHKEY0000', AWS_SECRET_ACCESS_KEY: 'x' } });
    expect((await failure(unknown.listKeys())).message).to.match(/HTTP 403 InvalidAccessKeyId: the server knows no such access key/);
  });
});
