import { expect } from 'chai';
import { IngestError } from '../../src/errors.js';
import { parseS3Event, unquoted } from '../../src/sources/notifications/s3-event.js';

const record = (object: Record<string, unknown>, eventName = 'ObjectCreated:Put', bucket: unknown = { name: 'b' }): Record<string, unknown> =>
  ({ eventName, s3: { bucket, object } });
const message = (...records: unknown[]): Buffer => Buffer.from(JSON.stringify({ Records: records }));

function failure(body: Buffer | string): string {
  try {
    parseS3Event(Buffer.isBuffer(body) ? body : Buffer.from(body));
  } catch (err) {
    expect(err).to.be.instanceOf(IngestError);
    expect((err as IngestError).code).to.equal('BI_NOTIFY');
    return (err as Error).message;
  }
  throw new Error('expected a failure');
}

describe('S3 event notifications (sources/notifications/s3-event.ts)', () => {
  it('reads created and removed objects, their keys form-decoded exactly (`+` a space, %2B a plus, UTF-8)', () => {
    const events = parseS3Event(message(
      record({ key: 'a+b%2Bc%25d/%C3%BC.txt', size: 5, eTag: 'd41d8cd98f00b204e9800998ecf8427e' }),
      record({ key: 'gone.csv' }, 's3:ObjectRemoved:Delete', null),
      record({ key: 'x' }, 'ObjectRestore:Completed'), // neither: left out
    ));
    expect(events).to.deep.equal([
      { kind: 'created', key: 'a b+c%d/ü.txt', bucket: 'b', etag: 'd41d8cd98f00b204e9800998ecf8427e', size: 5, name: 'ObjectCreated:Put' },
      { kind: 'removed', key: 'gone.csv', bucket: null, etag: null, size: null, name: 'ObjectRemoved:Delete' },
    ]);
  });

  it('takes AWS\'s s3:TestEvent for no events', () => {
    expect(parseS3Event(Buffer.from('{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}'))).to.deep.equal([]);
  });

  it('fails anything else with BI_NOTIFY saying what and where', () => {
    expect(failure('nope')).to.match(/^not JSON \(/);
    expect(failure('[1]')).to.equal('not an S3 event (a JSON array, not an object)');
    expect(failure('{"Records": {}}')).to.equal('not an S3 event (no Records array)');
    expect(failure(message(record({ key: 'a' }), 7))).to.equal('Records[1]: expected an object');
    expect(failure(message({ s3: {} }))).to.equal('Records[0].eventName: expected a string');
    expect(failure(message({ eventName: 'ObjectCreated:Put', s3: {} }))).to.equal('Records[0].s3.object: expected an object');
    expect(failure(message(record({ key: '' })))).to.equal('Records[0].s3.object.key: expected a non-empty string');
    expect(failure(message(record({ key: '%E0%A4%A' })))).to.equal('Records[0].s3.object.key: "%E0%A4%A" is not URL-encoded UTF-8');
    expect(failure(message(record({ key: 'a', size: -1 })))).to.equal('Records[0].s3.object.size: expected a size in bytes');
    expect(failure(message(record({ key: 'a', eTag: 5 })))).to.equal('Records[0].s3.object.eTag: expected a string');
  });

  it('compares ETags without their quotes or weak marker', () => {
    expect(unquoted('"abc"')).to.equal('abc');
    expect(unquoted('W/"abc"')).to.equal('abc');
    expect(unquoted('abc')).to.equal('abc');
    expect(parseS3Event(message(record({ key: 'k', eTag: '"abc"' })))[0]?.etag).to.equal('abc');
  });
});
