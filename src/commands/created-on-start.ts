import { existsSync, readdirSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * What starting may create on disk, noted before the start, so that a start that fails takes back what it made:
 * a mistyped bucket must not leave a new empty database, a registry or the directories they went into behind.
 *
 * Each anchor is a file a start may create (the SQLite database, the registry path, beside which the WAL, the
 * journal, the lock and the side files appear). If the anchor's directory is missing, the start will create it
 * and everything in it is the start's own: the topmost missing directory is removed whole. If the directory
 * exists, only the entries that did not exist before and start with the anchor's name are removed
 * (`x.sqlite3-wal`, `default.json.journal`, …); anything that existed before the start is left alone.
 *
 * @example
 *   const undo = noteWhatStartCreates([dbFile, registryPath]);
 *   try { await start(); } catch (err) { await undo(); throw err; }
 */
export function noteWhatStartCreates(anchors: readonly string[]): () => Promise<void> {
  const undos = anchors.map((anchor) => {
    let top = anchor;
    while (!existsSync(dirname(top)) && dirname(top) !== top) top = dirname(top);
    if (top !== anchor) return () => rm(top, { recursive: true, force: true });
    const dir = dirname(anchor);
    const prefix = basename(anchor);
    const before = new Set(listing(dir));
    return async () => {
      const now = await readdir(dir).catch(() => [] as string[]);
      await Promise.all(now.filter((name) => name.startsWith(prefix) && !before.has(name)).map((name) => rm(join(dir, name), { recursive: true, force: true })));
    };
  });
  return async () => {
    for (const undo of undos) await undo();
  };
}

/** The names in `dir`; none when it is not a readable directory (the start then fails on it, creating nothing there). */
function listing(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
