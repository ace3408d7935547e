import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { IngestError } from '../errors.js';
import { cleanIndex } from './index-file.js';
import type { FetchedObject, FetchOptions, NotModified, Source, StreamedObject } from './types.js';

/**
 * A bucket laid out in a local directory: the index file and the objects beside it. The ETag is derived
 * from size and modification time, so a rewritten file is loaded again.
 */
export class LocalSource implements Source {
  readonly description: string;
  private readonly root: string;

  constructor(root: string, private readonly indexKey: string, private readonly maxBytes: number, private readonly streamAboveBytes = Infinity) {
    this.root = resolve(root);
    this.description = this.root;
  }

  async listKeys(): Promise<string[]> {
    try {
      return cleanIndex(await readFile(this.pathOf(this.indexKey), 'utf8'));
    } catch (err) {
      const why = err instanceof IngestError ? err.message : (err as Error).message;
      throw new IngestError('BI_SOURCE_UNAVAILABLE', `cannot list bucket ${this.description} (index ${this.indexKey}): ${why}`, { cause: err });
    }
  }

  async fetch(key: string, opts: FetchOptions = {}): Promise<FetchedObject | StreamedObject | NotModified> {
    const path = this.pathOf(key);
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new IngestError('BI_NOT_FOUND', `${key}: no such file in ${this.description}`);
      throw new IngestError('BI_NETWORK', `${key}: ${(err as Error).message}`, { retriable: code === 'EMFILE' || code === 'EAGAIN' });
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new IngestError('BI_NOT_FOUND', `${key}: not a regular file`);
      const etag = `"${info.size.toString(16)}-${Math.trunc(info.mtimeMs).toString(16)}"`;
      if (opts.known?.etag === etag && opts.known.size === info.size) return { notModified: true, etag, size: info.size };
      if (info.size > this.maxBytes) throw new IngestError('BI_BODY_TOO_LARGE', `${key}: ${info.size} bytes is over MAX_FILE_MB (${this.maxBytes} bytes)`);
      if (info.size > this.streamAboveBytes) return { stream: createReadStream(path, { highWaterMark: 1 << 20 }), etag, size: info.size };
      const body = await handle.readFile();
      return { body, etag, size: body.length };
    } finally {
      await handle.close();
    }
  }

  /** Resolves a key inside the bucket directory; a key that escapes it (`../x`, `/etc/passwd`) is refused. */
  private pathOf(key: string): string {
    const path = resolve(this.root, key);
    const rel = relative(this.root, path);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
      throw new IngestError('BI_BAD_KEY', `${key}: resolves outside the bucket directory ${this.description}`);
    }
    return path;
  }

  async close(): Promise<void> {}
}
