import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, parseDatabaseUrl } from '../../src/load/database.js';
import { migrate } from '../../src/load/schema.js';
import { bucketIdentity, readDatabaseId, type Binding } from '../../src/registry/binding.js';
import type { RegistryEntry } from '../../src/registry/entry.js';
import { JsonRegistry } from '../../src/registry/json-registry.js';
import { bundledCatalog } from '../../src/schemas/catalog.js';

/** A done registry entry, with whatever fields a test wants changed. */
export function entry(over: Partial<RegistryEntry> = {}): RegistryEntry {
  const now = '2026-01-01T00:00:00.000Z';
  return {
    status: 'done', etag: '"e"', size: 10, attempts: 1, failures: 0, loaded: 3, rejected: 1, skipped: 2, error: null,
    firstSeenAt: now, updatedAt: now, doneAt: now, checkedAt: now, nextAttemptAt: null, ...over,
  };
}

/**
 * The binding a profile's registry gets: its SQLite database (created and migrated here if missing, as a daemon's
 * first start would) and its bucket.
 */
export async function bindingOf(dbFile: string, settings: { BUCKET_URL: string; FILES_LIST_KEY?: string }): Promise<Binding> {
  const db = await openDatabase(parseDatabaseUrl(`sqlite://${dbFile}`), { poolSize: 1 });
  try {
    await migrate(db, { catalog: bundledCatalog() });
    return { database: await readDatabaseId(db), bucket: bucketIdentity({ BUCKET_URL: settings.BUCKET_URL, FILES_LIST_KEY: settings.FILES_LIST_KEY ?? 'files_list.data' }) };
  } finally {
    await db.destroy();
  }
}

/** Writes entries into a JSON registry bound to `binding`, as a daemon would have. */
export async function seedRegistry(path: string, binding: Binding, entries: Record<string, RegistryEntry>): Promise<void> {
  const reg = await JsonRegistry.open(path, { writable: true });
  try {
    await reg.bind(binding);
    await reg.commit(new Map(Object.entries(entries)));
  } finally {
    await reg.close();
  }
}

/** Keys the JSON registry at `dir`/registry/t.json records as done, read the way a restarted daemon would (snapshot + journal). */
export function doneKeys(dir: string): string[] {
  const path = join(dir, 'registry', 't.json');
  const entries = new Map<string, string>();
  if (existsSync(path)) {
    for (const [k, e] of Object.entries((JSON.parse(readFileSync(path, 'utf8')) as { entries: Record<string, { status: string }> }).entries)) entries.set(k, e.status);
  }
  if (existsSync(`${path}.journal`)) {
    for (const line of readFileSync(`${path}.journal`, 'utf8').split('\n')) {
      try {
        const { k, e } = JSON.parse(line) as { k: string; e: { status: string } };
        entries.set(k, e.status);
      } catch {
        // torn or empty line
      }
    }
  }
  return [...entries].filter(([, s]) => s === 'done').map(([k]) => k).sort();
}
