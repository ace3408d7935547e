import { closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { IngestError } from '../errors.js';

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
 * Replaces a file so that a crash leaves the old or the new contents, never a mix: write a temp file, fsync
 * it, rename it over the target, fsync the directory (the rename itself is durable only then).
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(text);
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
