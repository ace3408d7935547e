import type { RegistryEntry } from '../../src/registry/entry.js';

/** A done registry entry, with whatever fields a test wants changed. */
export function entry(over: Partial<RegistryEntry> = {}): RegistryEntry {
  const now = '2026-01-01T00:00:00.000Z';
  return {
    status: 'done', etag: '"e"', size: 10, attempts: 1, failures: 0, loaded: 3, rejected: 1, skipped: 2, error: null,
    firstSeenAt: now, updatedAt: now, doneAt: now, checkedAt: now, nextAttemptAt: null, ...over,
  };
}
