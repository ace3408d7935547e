import { closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type * as t from 'io-ts';
import { IngestError } from '../errors.js';
import { formatErrors } from '../records/reasons.js';

/** The file's text, or null when it does not exist; any other failure is BI_REGISTRY_IO naming the file. */
export async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new IngestError('BI_REGISTRY_IO', `cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * Pieces of a streamed file are written in writes of about this many characters (each with `writeFile`, which,
 * on a handle, writes on from the current position until all of it is written; `write` may write only part).
 */
const WRITE_CHUNK = 1 << 20;

/**
 * Replaces a file so that a crash leaves the old or the new contents, never a mix: write a temp file, fsync
 * it, rename it over the target, fsync the directory (the rename itself is durable only then). `content` may be
 * given in pieces, so a large file (a registry of 100,000 entries is ~35 MB) is never one string in memory.
 */
export async function writeFileAtomic(path: string, content: string | Iterable<string>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(tmp, 'w');
    try {
      let pending = '';
      for (const piece of typeof content === 'string' ? [content] : content) {
        pending += piece;
        if (pending.length >= WRITE_CHUNK) {
          await handle.writeFile(pending);
          pending = '';
        }
      }
      if (pending !== '') await handle.writeFile(pending);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    const dir = openSync(dirname(path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new IngestError('BI_REGISTRY_IO', `cannot write ${path}: ${(err as Error).message}`);
  }
}

/**
 * A registry side file's JSON, decoded by `codec`, or undefined when there is no such file. A file that cannot be
 * read is BI_REGISTRY_IO; one that is not JSON, or not what `codec` says (`what` names it in the reason),
 * BI_REGISTRY_CORRUPT.
 */
export async function readJsonFile<A>(path: string, codec: t.Decoder<unknown, A>, what: string): Promise<A | undefined> {
  const text = await readIfExists(path);
  if (text === null) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new IngestError('BI_REGISTRY_CORRUPT', `${path} is corrupt (${(err as Error).message})`);
  }
  const decoded = codec.decode(parsed);
  if (decoded._tag === 'Left') throw new IngestError('BI_REGISTRY_CORRUPT', `${path} is corrupt (${formatErrors(decoded.left, what)})`);
  return decoded.right;
}
