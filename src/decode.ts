import { IngestError } from './errors.js';

/**
 * Turns a fetched body into the file's records. The bucket's `.data` files are one JSON array each; an empty
 * body, text that is not JSON, or JSON that is not an array makes the whole file fail (it is recorded as
 * failed and retried on a later cycle, never half-loaded).
 */
export function decodeBody(key: string, body: Buffer): unknown[] {
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') throw new IngestError('BI_DECODE', `${key}: empty body`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new IngestError('BI_DECODE', `${key}: not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(parsed)) {
    const got = parsed === null ? 'null' : typeof parsed === 'object' ? 'an object' : typeof parsed;
    throw new IngestError('BI_DECODE', `${key}: not a JSON array (got ${got})`);
  }
  return parsed;
}
