import { IngestError } from '../../errors.js';

/** One object's change, as an S3 event record tells it. */
export interface ObjectEvent {
  kind: 'created' | 'removed';
  /** The object's key, URL-decoded (S3 events carry it form-encoded: a space is `+`). */
  key: string;
  bucket: string | null;
  /** The ETag without quotes, as events give it; null if the event has none. */
  etag: string | null;
  size: number | null;
  /** `ObjectCreated:Put` and so on, as the event names it (without an `s3:` prefix). */
  name: string;
}

/**
 * The object events of one message: the standard S3 event JSON (`{"Records": [{"eventName", "s3": {"bucket": {"name"},
 * "object": {"key", "size", "eTag"}}}]}`, as AWS, MinIO and Ceph send it). AWS's `s3:TestEvent` holds none; events
 * other than ObjectCreated and ObjectRemoved are left out. Anything else fails with BI_NOTIFY, saying what is wrong
 * and where (`Records[2].s3.object.key: expected a string`).
 */
export function parseS3Event(body: Buffer): ObjectEvent[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw bad(`not JSON (${(err as Error).message})`);
  }
  if (!isObject(doc)) throw bad(`not an S3 event (a JSON ${doc === null ? 'null' : Array.isArray(doc) ? 'array' : typeof doc}, not an object)`);
  if (doc.Records === undefined && doc.Event === 's3:TestEvent') return [];
  if (!Array.isArray(doc.Records)) throw bad('not an S3 event (no Records array)');
  const events: ObjectEvent[] = [];
  doc.Records.forEach((r: unknown, i: number) => {
    const at = `Records[${i}]`;
    if (!isObject(r)) throw bad(`${at}: expected an object`);
    if (typeof r.eventName !== 'string') throw bad(`${at}.eventName: expected a string`);
    const name = r.eventName.replace(/^s3:/, '');
    const kind = name.startsWith('ObjectCreated:') ? 'created' : name.startsWith('ObjectRemoved:') ? 'removed' : null;
    if (kind === null) return;
    const s3 = r.s3;
    if (!isObject(s3) || !isObject(s3.object)) throw bad(`${at}.s3.object: expected an object`);
    const o = s3.object;
    if (typeof o.key !== 'string' || o.key === '') throw bad(`${at}.s3.object.key: expected a non-empty string`);
    let key: string;
    try {
      key = decodeURIComponent(o.key.replace(/\+/g, '%20'));
    } catch {
      throw bad(`${at}.s3.object.key: ${JSON.stringify(o.key)} is not URL-encoded UTF-8`);
    }
    if (o.size !== undefined && o.size !== null && !(Number.isSafeInteger(o.size) && (o.size as number) >= 0)) throw bad(`${at}.s3.object.size: expected a size in bytes`);
    if (o.eTag !== undefined && o.eTag !== null && typeof o.eTag !== 'string') throw bad(`${at}.s3.object.eTag: expected a string`);
    const bucket = isObject(s3.bucket) && typeof s3.bucket.name === 'string' ? s3.bucket.name : null;
    const etag = typeof o.eTag === 'string' && o.eTag !== '' ? unquoted(o.eTag) : null;
    events.push({ kind, key, bucket, etag, size: typeof o.size === 'number' ? o.size : null, name });
  });
  return events;
}

/** An ETag without its quotes (and weak marker), so that an event's and a response's can be compared. */
export function unquoted(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(why: string): IngestError {
  return new IngestError('BI_NOTIFY', why);
}
