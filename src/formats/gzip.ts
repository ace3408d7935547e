import { pipeline, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip, gunzip } from 'node:zlib';
import { IngestError } from '../errors.js';

/** A body read as it arrives, which its reader must read to the end or destroy (StreamedObject's `stream`). */
export interface Chunks extends AsyncIterable<Buffer> {
  destroy(error?: Error): void;
}

/** gzip's magic bytes (RFC 1952): no text file starts with them (0x8b is no UTF-8 lead byte). */
export const isGzip = (head: Uint8Array): boolean => head[0] === 0x1f && head[1] === 0x8b;

/**
 * A whole gzip body, decompressed, failing past `max` bytes once decompressed (a gzip bomb is a few kB) and for data
 * that is corrupt or cut short (BI_DECODE): the file is then recorded failed, never loaded in part.
 */
export async function gunzipWhole(key: string, body: Buffer, max: number): Promise<Buffer> {
  try {
    return await gunzipAsync(body, { maxOutputLength: max }); // on libuv's pool, not this thread
  } catch (err) {
    throw gzipError(err, key, max);
  }
}

const gunzipAsync = promisify(gunzip);

/**
 * `source` decompressed as it is read, with the same caps and errors as gunzipWhole. `sent` (HTTP: the cap on bytes
 * as sent) runs on the compressed bytes first. The stages are joined with `pipeline`, which (unlike `.pipe`) hands
 * every stage's error on and destroys them all, so no error is ever emitted where nobody listens: a failure of the
 * source, the gzip data or a cap comes out of the iteration, and `destroy` tears the whole chain down, the source
 * (a connection, a file handle) included.
 */
export function gunzipStream(key: string, source: Readable | AsyncIterable<Buffer>, max: number, sent?: (s: AsyncIterable<Buffer>) => AsyncIterable<Buffer>): Chunks {
  // The callback is required by pipeline; its error also destroys the last stage, which is where it is read.
  const gunzip = createGunzip();
  const decoded: Readable = sent ? pipeline(source, sent, gunzip, () => undefined) : pipeline(source, gunzip, () => undefined);
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      yield* capBytes(decoded, max, () => tooLargeDecompressed(key, max));
    } catch (err) {
      throw gzipError(err, key, max);
    }
  }
  const iterator = chunks();
  return {
    [Symbol.asyncIterator]: () => iterator,
    destroy: (error?: Error) => {
      decoded.destroy(error);
    },
  };
}

/** Counts bytes as they pass and fails the stream past `max`. */
export async function* capBytes(chunks: AsyncIterable<Buffer>, max: number, over: (bytes: number) => IngestError): AsyncGenerator<Buffer> {
  let received = 0;
  for await (const chunk of chunks) {
    received += chunk.length;
    if (received > max) throw over(received);
    yield chunk;
  }
}

export function tooLargeDecompressed(key: string, max: number): IngestError {
  return new IngestError('BI_BODY_TOO_LARGE', `${key}: body over MAX_FILE_MB (${max} bytes) once decompressed`);
}

/** zlib's errors (codes `Z_…`, and the output cap) as the file's error; any other error as it was. */
function gzipError(err: unknown, key: string, max: number): unknown {
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  if (code === 'ERR_BUFFER_TOO_LARGE') return tooLargeDecompressed(key, max);
  if (code.startsWith('Z_')) return new IngestError('BI_DECODE', `${key}: bad gzip body: ${(err as Error).message}`);
  return err;
}
