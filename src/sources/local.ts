import { copyFile, constants as fsConstants, lstat, mkdir, open, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { IngestError } from '../errors.js';
import { cleanIndex, indexText } from './index-file.js';
import type { FetchedObject, FetchOptions, NotModified, Source, StreamedObject } from './types.js';

/**
 * A bucket laid out in a local directory: the index file and the objects beside it. The ETag is derived
 * from size and modification time, so a rewritten file is loaded again. Nothing outside the directory is read,
 * through `..` in a key or through a symbolic link (see `openInside`).
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
      const handle = await this.openInside(this.indexKey);
      try {
        return cleanIndex(indexText(await handle.readFile(), this.indexKey));
      } finally {
        await handle.close();
      }
    } catch (err) {
      const why = err instanceof IngestError ? err.message : (err as Error).message;
      throw new IngestError('BI_SOURCE_UNAVAILABLE', `cannot list bucket ${this.description} (index ${this.indexKey}): ${why}`, { cause: err });
    }
  }

  async fetch(key: string, opts: FetchOptions = {}): Promise<FetchedObject | StreamedObject | NotModified> {
    const handle = await this.openInside(key);
    let streamed = false; // a streamed body closes the handle itself, once read or destroyed
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new IngestError('BI_NOT_FOUND', `${key}: not a regular file`);
      const etag = `"${info.size.toString(16)}-${Math.trunc(info.mtimeMs).toString(16)}"`;
      if (opts.known?.etag === etag && opts.known.size === info.size) return { notModified: true, etag, size: info.size };
      if (info.size > this.maxBytes) throw new IngestError('BI_BODY_TOO_LARGE', `${key}: ${info.size} bytes is over MAX_FILE_MB (${this.maxBytes} bytes)`);
      if (info.size > this.streamAboveBytes) {
        // From the handle that was checked, not the path again: the path may lead elsewhere by now.
        const stream = handle.createReadStream({ highWaterMark: 1 << 20 });
        streamed = true;
        return { stream, etag, size: info.size };
      }
      const body = await handle.readFile();
      return { body, etag, size: body.length };
    } finally {
      if (!streamed) await handle.close();
    }
  }

  /**
   * Opens the file of a key, refusing (BI_BAD_KEY) one outside the bucket directory: a key that escapes it as
   * written (`../x`, `/etc/passwd`), or one that a symbolic link (the file, or a directory on its way) leads out of
   * it. The check is made on the file opened rather than on the path before opening, so a link swapped in between
   * cannot get an outside file read: the opened file must be the one (same device and inode) found at the real path
   * of the key, and that real path must be inside the real path of the bucket directory. Links that stay inside work.
   */
  private async openInside(key: string): Promise<FileHandle> {
    const path = this.pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      throw openError(key, err, this.description);
    }
    try {
      const [opened, real, root] = await Promise.all([handle.stat(), realpath(path), realpath(this.root)]);
      if (!isInside(root, real)) {
        throw new IngestError('BI_BAD_KEY', `${key}: a symbolic link leads outside the bucket directory ${this.description} (to ${real}); refused`);
      }
      const named = await stat(real);
      if (named.dev !== opened.dev || named.ino !== opened.ino) {
        throw new IngestError('BI_BAD_KEY', `${key}: the file changed while it was opened (another file is at ${real} now); refused`);
      }
      return handle;
    } catch (err) {
      await handle.close();
      throw err instanceof IngestError ? err : openError(key, err, this.description);
    }
  }

  /**
   * AFTER_LOAD for a file of the directory. `delete` unlinks it (a symbolic link is removed, never what it points to);
   * `move` renames it to `prefix + key`, creating the directories on the way (a rename within the bucket directory:
   * atomic, and nothing is copied; across file systems, a copy then the unlink). Idempotent: a file already gone is
   * deleted, and one gone from its key but at its target is moved. Nothing outside the bucket directory is touched:
   * the directory each path is in must resolve inside it, links included.
   */
  async afterLoad(key: string, action: { kind: 'delete' } | { kind: 'move'; prefix: string }): Promise<void> {
    const from = this.pathOf(key);
    try {
      // Its directory gone, the file is too: for a move, whether it is at the target is told below.
      const present = await exists(dirname(from));
      if (present) await this.checkDirInside(dirname(from), key);
      if (action.kind === 'delete') {
        if (present) await unlink(from).catch(ignoreMissing);
        return;
      }
      const targetKey = action.prefix + key;
      const to = this.pathOf(targetKey);
      await this.checkDirInside(await nearestExisting(dirname(to)), targetKey);
      await mkdir(dirname(to), { recursive: true });
      await this.checkDirInside(dirname(to), targetKey);
      try {
        await rename(from, to);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          if (await exists(to)) return; // moved before (a crash between the move and its record)
          throw new IngestError('BI_AFTER_LOAD', `${key}: cannot move it to ${targetKey}: it is neither at its key nor at the target`);
        }
        if (code !== 'EXDEV') throw err;
        await copyFile(from, to, fsConstants.COPYFILE_FICLONE);
        await unlink(from).catch(ignoreMissing);
      }
    } catch (err) {
      if (err instanceof IngestError) throw err;
      const what = action.kind === 'delete' ? 'delete it' : `move it to ${action.prefix + key}`;
      throw new IngestError('BI_AFTER_LOAD', `${key}: cannot ${what} in ${this.description}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Refuses (BI_BAD_KEY) a directory that resolves outside the bucket directory, through a symbolic link. */
  private async checkDirInside(dir: string, key: string): Promise<void> {
    const [real, root] = await Promise.all([realpath(dir), realpath(this.root)]);
    if (real !== root && !isInside(root, real)) {
      throw new IngestError('BI_BAD_KEY', `${key}: a symbolic link leads outside the bucket directory ${this.description} (to ${real}); refused`);
    }
  }

  /** Resolves a key inside the bucket directory; a key that escapes it (`../x`, `/etc/passwd`) is refused. */
  private pathOf(key: string): string {
    const path = resolve(this.root, key);
    if (!isInside(this.root, path)) {
      throw new IngestError('BI_BAD_KEY', `${key}: resolves outside the bucket directory ${this.description}`);
    }
    return path;
  }

  async close(): Promise<void> {}
}

/** Whether `path` lies strictly inside the directory `root` (both absolute); `..x` is a name like any other. */
function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** `dir`, or its nearest ancestor that exists. */
async function nearestExisting(dir: string): Promise<string> {
  for (let d = dir; ; d = dirname(d)) {
    if (await exists(d)) return d;
    if (dirname(d) === d) return d;
  }
}

/** Whether something (a file, a directory, a link, even a broken one) is at `path`. */
async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw err;
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

function openError(key: string, err: unknown, where: string): IngestError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new IngestError('BI_NOT_FOUND', `${key}: no such file in ${where}`);
  return new IngestError('BI_NETWORK', `${key}: ${(err as Error).message}`, { retriable: code === 'EMFILE' || code === 'EAGAIN' });
}
