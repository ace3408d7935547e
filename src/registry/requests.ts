import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { IngestError } from '../errors.js';
import type { RegistryEntry } from './entry.js';
import type { JsonRegistry } from './json-registry.js';
import { readIfExists } from './files.js';
import type { Binding } from './binding.js';

/** One line of `<registry path>.requests`: ask the next cycle to process `key` again. */
export interface ReprocessRequest {
  key: string;
  /** UTC ISO-8601. */
  requestedAt: string;
  /** The database and bucket the request is about (absent from requests written before they were bound). */
  database?: string | null;
  bucket?: string;
}

/**
 * Reprocess requests reach a registry that a running daemon holds (one writer, locked) through a side file
 * that needs no lock:
 *
 * - `reprocess` appends `{"key":…,"requestedAt":…}` lines to `<path>.requests` (O_APPEND, fsync).
 * - At the start of each cycle the daemon renames that file to `<path>.requests.applying`, reads it, commits
 *   `reprocess: true` on the entries it names, and only then deletes it. A crash in between leaves the
 *   `.applying` file, which the next start applies again (harmless: setting the mark twice is a no-op).
 *
 * Renaming instead of reading then truncating closes a race: a request appended between the daemon's read and
 * its truncate would be lost. An appender checks after its fsync that the file it wrote is still the one named
 * `<path>.requests`; if the daemon renamed it meanwhile (it may have read it already), it appends again.
 */
export function requestsPath(registryPath: string): string {
  return `${registryPath}.requests`;
}

function applyingPath(registryPath: string): string {
  return `${registryPath}.requests.applying`;
}

/** Appends one request per key, durably (fsync) and without taking the registry lock. */
export async function appendReprocessRequests(registryPath: string, binding: Binding, keys: readonly string[], now: Date = new Date()): Promise<void> {
  if (keys.length === 0) return;
  const path = requestsPath(registryPath);
  const requestedAt = now.toISOString();
  const { database, bucket } = binding;
  // A leading newline ends a line torn by a crash mid-append, so it cannot swallow these requests.
  const text = `\n${keys.map((key) => JSON.stringify({ key, requestedAt, database, bucket } satisfies ReprocessRequest)).join('\n')}\n`;
  try {
    await mkdir(dirname(path), { recursive: true });
    // Each retry means a daemon took the file during our write; it does that once per cycle, so this ends fast.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      const handle = await open(path, 'a');
      let written;
      try {
        await handle.appendFile(text);
        await handle.datasync();
        written = await handle.stat();
      } finally {
        await handle.close();
      }
      const current = await stat(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      if (current !== null && current.ino === written.ino && current.dev === written.dev) return;
      // The daemon took the file away while we wrote to it: it may have read it before our lines arrived.
    }
  } catch (err) {
    throw new IngestError('BI_REGISTRY_IO', `cannot write reprocess requests to ${path}: ${(err as Error).message}`);
  }
  throw new IngestError('BI_REGISTRY_IO', `cannot write reprocess requests to ${path}: the file kept being replaced`);
}

/**
 * Requests not yet applied by a daemon, oldest first: a leftover `.applying` file first, then `.requests`.
 * Unreadable lines (torn by a crash), and requests about another database or bucket, are left out.
 */
export async function readReprocessRequests(registryPath: string, binding: Binding): Promise<ReprocessRequest[]> {
  const out: ReprocessRequest[] = [];
  for (const path of [applyingPath(registryPath), requestsPath(registryPath)]) {
    const text = await readIfExists(path);
    if (text !== null) out.push(...parseRequests(text, binding));
  }
  return out;
}

/**
 * Applies pending requests to a writable registry: sets `reprocess: true` on the entries they name (keys the
 * registry does not know are new anyway and are skipped), commits, then removes the applied file. Returns how
 * many entries were newly marked.
 */
export async function applyReprocessRequests(registry: JsonRegistry, binding: Binding): Promise<number> {
  const pending = requestsPath(registry.path);
  const applying = applyingPath(registry.path);
  let marked = 0;
  // Round one may only finish a crashed application (an `.applying` file already there); round two then takes
  // the requests that arrived since.
  for (let round = 0; round < 2; round++) {
    let text = await readIfExists(applying);
    if (text === null) {
      try {
        await rename(pending, applying);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
        throw new IngestError('BI_REGISTRY_IO', `cannot take reprocess requests ${pending}: ${(err as Error).message}`);
      }
      text = (await readIfExists(applying)) ?? '';
    }
    const changes = new Map<string, RegistryEntry>();
    const nowIso = new Date().toISOString();
    for (const { key } of parseRequests(text, binding)) {
      const entry = changes.get(key) ?? registry.get(key);
      if (entry === undefined || entry.reprocess === true) continue;
      changes.set(key, { ...entry, reprocess: true, updatedAt: nowIso });
    }
    await registry.commit(changes);
    marked += changes.size;
    // Only now may the requests go: the registry holds them durably.
    await unlink(applying).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw new IngestError('BI_REGISTRY_IO', `cannot remove applied requests ${applying}: ${err.message}`);
    });
  }
  return marked;
}

/**
 * The requests of `text` about `binding`'s database and bucket. One without a binding (written before requests were
 * bound) is taken: it only asks for a file to be processed again, which is always safe.
 */
function parseRequests(text: string, binding: Binding): ReprocessRequest[] {
  const out: ReprocessRequest[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    const { key, requestedAt, database, bucket } = (value ?? {}) as { key?: unknown; requestedAt?: unknown; database?: unknown; bucket?: unknown };
    if (typeof key !== 'string' || typeof requestedAt !== 'string') continue;
    if (bucket !== undefined && (bucket !== binding.bucket || database !== binding.database)) continue;
    out.push({ key, requestedAt });
  }
  return out;
}
