import { notJsonAt, notUtf8 } from './json-array.js';
import { IngestError } from '../errors.js';
import { BACKSLASH, CLOSE_ARRAY, CLOSE_OBJECT, COMMA, findJsonSyntaxError, isSpace, OPEN_ARRAY, OPEN_OBJECT, QUOTE } from './json-syntax.js';
import { hexByte, invalidUtf8At } from '../utf8.js';

const BOM = [0xef, 0xbb, 0xbf];

export interface SplitOptions {
  /** Records per batch handed on. */
  batchRecords: number;
  /** Bytes of JSON after which a batch is handed on even if it has fewer records. */
  batchBytes: number;
}

/**
 * Reads one JSON array from a byte stream and hands its elements on in batches, with memory bounded by the
 * batch, not the file. It only finds where each top-level element ends (tracking strings, escapes and
 * nesting) and leaves the parsing of a batch to one `JSON.parse`, which keeps it near JSON.parse's speed;
 * stream-json, the usual library, assembles every value token by token and measured 10x slower here.
 *
 * Bytes must be UTF-8, as in decodeBody: every byte outside the ASCII structure of the array belongs to an element,
 * and an element is whole bytes of the body (cut only at ASCII brackets, commas and whitespace, never inside a
 * character, whatever the chunks), so each batch is checked once, and an ill-formed byte fails the file with its
 * offset in the body. Whatever is not JSON fails the file with a message of one line naming the byte offset (and
 * never quoting the body), as decodeBody's do.
 *
 * @example for await (const records of splitJsonArray(body, { batchRecords: 5000, batchBytes: 4 << 20 })) …
 */
export async function* splitJsonArray(key: string, chunks: AsyncIterable<Buffer>, opts: SplitOptions): AsyncGenerator<unknown[]> {
  // start: before `[`; first: after it; after: after an element; next: after a comma; value: inside an element.
  type State = 'start' | 'first' | 'after' | 'next' | 'value' | 'end';
  let state = 'start' as State;
  let depth = 0;
  let inString = false;
  let escape = false;
  let scalar = false;
  let partial: Buffer[] = []; // bytes of the element under way, from earlier chunks
  let run: Buffer[] = []; // complete elements of the batch under way
  let runAt: number[] = []; // where each of them starts in the body
  let runBytes = 0;
  let elementAt = 0; // where the element under way starts in the body
  let bom = 0; // bytes of a byte order mark read so far
  let offset = 0; // bytes before this chunk, for error messages

  const flush = (): unknown[] => {
    const elements = run;
    const starts = runAt;
    run = [];
    runAt = [];
    runBytes = 0;
    const bytes = joinElements(elements);
    const bad = invalidUtf8At(bytes);
    if (bad >= 0) throw notUtf8(key, bytes[bad] as number, bodyOffset(elements, starts, bad));
    let text: string;
    try {
      text = bytes.toString('utf8');
    } catch (err) {
      // A record past V8's longest string (~512 MB; the last of its batch, which is cut at batchBytes): a data error.
      throw new IngestError('BI_DECODE', `${key}: the record at byte ${starts[starts.length - 1] ?? offset} is too large to decode (${(err as Error).message})`);
    }
    try {
      return JSON.parse(text) as unknown[];
    } catch {
      // JSON.parse's message may quote the text: find the place ourselves, and name it as an offset in the body.
      const problem = findJsonSyntaxError(text) ?? { at: 0, what: 'refused by JSON.parse' };
      throw notJsonAt(key, problem.what, bodyOffset(elements, starts, Buffer.byteLength(text.slice(0, problem.at))));
    }
  };

  /**
   * Fails the file for what the scan found at body offset `at`, unless the elements of the batch under way, or the
   * element under way (`current`: its bytes so far), go wrong earlier in the body: the message names the first place
   * that is not JSON, the one decodeBody names for the same body.
   */
  const failAt = (what: string, at: number, current?: Buffer): never => {
    if (run.length > 0) flush(); // throws for an earlier mistake; else its records go, with the file
    if (current !== undefined && current.length > 0) {
      const bad = invalidUtf8At(current);
      if (bad >= 0) throw notUtf8(key, current[bad] as number, elementAt + bad);
      const text = `[${current.toString('utf8')}`;
      const problem = findJsonSyntaxError(text);
      if (problem !== null && problem.at < text.length) throw notJsonAt(key, problem.what, elementAt + Buffer.byteLength(text.slice(1, problem.at)));
    }
    throw notJsonAt(key, what, at);
  };

  for await (const chunk of chunks) {
    let start = 0; // where the element under way begins in this chunk
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (state === 'value') {
        let endAt = -1; // exclusive end of a completed element in this chunk
        if (inString) {
          if (escape) escape = false;
          else if (b === BACKSLASH) escape = true;
          else if (b === QUOTE) {
            inString = false;
            if (depth === 0) endAt = i + 1;
          }
        } else if (b === QUOTE) {
          inString = true;
        } else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
          depth++;
        } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
          if (depth === 0) {
            if (!scalar || b !== CLOSE_ARRAY) failAt('unexpected character', offset + i, Buffer.concat([...partial, chunk.subarray(start, i)])); // `[1}`
            endAt = i;
            state = 'end';
          } else if (--depth === 0) endAt = i + 1;
        } else if (depth === 0 && scalar && (b === COMMA || isSpace(b))) {
          endAt = i;
          if (b === COMMA) i--; // let 'after' consume it
        }
        if (endAt >= 0) {
          const piece = chunk.subarray(start, endAt);
          const element = partial.length > 0 ? Buffer.concat([...partial, piece]) : Buffer.from(piece);
          partial = [];
          run.push(element);
          runAt.push(elementAt);
          runBytes += element.length;
          if (state === 'value') state = 'after';
          if (run.length >= opts.batchRecords || runBytes >= opts.batchBytes) yield flush();
        }
        continue;
      }
      if (isSpace(b)) continue;
      if (state === 'start') {
        if (offset + i === bom && b === BOM[bom]) { bom++; continue; } // a UTF-8 byte order mark, whole or not at all
        if (bom > 0 && bom < BOM.length) throw notUtf8(key, BOM[0] as number, 0);
        if (b !== OPEN_ARRAY) {
          const first = b >= 0x20 && b < 0x7f ? JSON.stringify(String.fromCharCode(b)) : `byte ${hexByte(b)}`;
          throw new IngestError('BI_DECODE', `${key}: not a JSON array (starts with ${first} at byte ${offset + i})`);
        }
        state = 'first';
      } else if (state === 'after') {
        if (b === COMMA) state = 'next';
        else if (b === CLOSE_ARRAY) state = 'end';
        else failAt('unexpected character', offset + i); // two elements without a comma between them
      } else if (state === 'first' || state === 'next') {
        if (b === CLOSE_ARRAY && state === 'first') { state = 'end'; continue; }
        if (b === COMMA || b === CLOSE_ARRAY) failAt('unexpected character', offset + i); // `[,`, `,,`, `,]`
        state = 'value';
        start = i;
        elementAt = offset + i;
        depth = 0;
        scalar = b !== OPEN_OBJECT && b !== OPEN_ARRAY && b !== QUOTE;
        inString = b === QUOTE;
        escape = false;
        if (b === OPEN_OBJECT || b === OPEN_ARRAY) depth = 1;
      } else {
        failAt('data after the JSON value', offset + i);
      }
    }
    if (state === 'value') partial.push(Buffer.from(chunk.subarray(start)));
    offset += chunk.length;
  }
  if (state === 'start' && bom > 0 && bom < BOM.length) throw notUtf8(key, BOM[0] as number, 0);
  if (state === 'start') throw new IngestError('BI_DECODE', `${key}: empty body`);
  if (state !== 'end') failAt('unexpected end of the text', offset, state === 'value' ? Buffer.concat(partial) : undefined);
  if (run.length > 0) yield flush();
}

/** `[e1,e2,…]` as one buffer: checked and decoded at once, a native call per batch rather than per record. */
function joinElements(elements: readonly Buffer[]): Buffer {
  let total = elements.length + 1;
  for (const e of elements) total += e.length;
  const out = Buffer.allocUnsafe(total);
  out[0] = OPEN_ARRAY;
  let at = 1;
  for (let k = 0; k < elements.length; k++) {
    if (k > 0) out[at++] = COMMA;
    const e = elements[k] as Buffer;
    out.set(e, at);
    at += e.length;
  }
  out[at] = CLOSE_ARRAY;
  return out;
}

/**
 * The body offset of byte `at` of joinElements(elements), whose elements start at `starts` in the body: inside an
 * element, that byte of it; at the comma or bracket after one, the byte that followed it in the body.
 */
function bodyOffset(elements: readonly Buffer[], starts: readonly number[], at: number): number {
  let pos = 1; // where elements[k] begins in the joined bytes
  for (let k = 0; k < elements.length; k++) {
    const length = (elements[k] as Buffer).length;
    if (at <= pos + length) return (starts[k] as number) + Math.max(0, at - pos);
    pos += length + 1;
  }
  return (starts[starts.length - 1] ?? 0) + (elements[elements.length - 1]?.length ?? 0);
}
