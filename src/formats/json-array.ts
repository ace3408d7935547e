import { IngestError } from '../errors.js';
import { findJsonSyntaxError } from './json-syntax.js';
import { hexByte, invalidUtf8At } from '../utf8.js';

/**
 * Turns a fetched body into the file's records. The bucket's `.data` files are one JSON array each, in UTF-8 (a byte
 * order mark is allowed); bytes that are not UTF-8, an empty body, text that is not JSON, or JSON that is not an array
 * make the whole file fail (it is recorded as failed and retried on a later cycle, never half-loaded, never loaded
 * with U+FFFD in place of what it held).
 */
export function decodeBody(key: string, body: Buffer): unknown[] {
  const bad = invalidUtf8At(body);
  if (bad >= 0) throw notUtf8(key, body[bad] as number, bad);
  let text: string;
  try {
    text = body.toString('utf8');
  } catch (err) {
    // Past V8's longest string (~512 MB, reachable with a large STREAM_ABOVE_MB): a data error, not a crash.
    throw new IngestError('BI_DECODE', `${key}: too large to decode whole (${body.length} bytes: ${(err as Error).message}); lower STREAM_ABOVE_MB`);
  }
  const bom = text.charCodeAt(0) === 0xfeff ? 3 : 0; // U+FEFF is 3 bytes of UTF-8
  if (bom > 0) text = text.slice(1);
  if (text.trim() === '') throw new IngestError('BI_DECODE', `${key}: empty body`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's message may quote the body, newlines and all: find the place ourselves, as a byte offset.
    const problem = findJsonSyntaxError(text) ?? { at: 0, what: 'refused by JSON.parse' };
    throw notJsonAt(key, problem.what, bom + Buffer.byteLength(text.slice(0, problem.at)));
  }
  if (!Array.isArray(parsed)) {
    const got = parsed === null ? 'null' : typeof parsed === 'object' ? 'an object' : typeof parsed;
    throw new IngestError('BI_DECODE', `${key}: not a JSON array (got ${got})`);
  }
  return parsed;
}

/** The error for a body whose byte at `offset` (counted from the start of the body) begins no UTF-8 character. */
export function notUtf8(key: string, byte: number, offset: number): IngestError {
  return new IngestError('BI_DECODE', `${key}: not UTF-8 (invalid byte ${hexByte(byte)} at byte ${offset})`);
}

/** `key: not JSON (what at byte N)`: one line, the place as an offset in the body, nothing of the body itself. */
export function notJsonAt(key: string, what: string, offset: number): IngestError {
  return new IngestError('BI_DECODE', `${key}: not JSON (${what} at byte ${offset})`);
}
