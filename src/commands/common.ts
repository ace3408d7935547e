import { openRegistry, registryMode } from '../app.js';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { IngestError } from '../errors.js';
import { describeDbError, openDatabase, parseDatabaseUrl } from '../load/database.js';
import { bucketIdentity, probeDatabaseId, readDatabaseId, type Binding } from '../registry/binding.js';
import { sideFilesBase } from '../registry/side-files.js';
import type { Registry } from '../registry/types.js';
import type { SettingKey } from '../config/schema.js';
import { redactText } from '../redact.js';
import type { CommonArgs } from './options.js';

export function configFrom(args: CommonArgs, overrides: Partial<Record<SettingKey, string | number>> = {}): LoadedConfig {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return loadConfig({ configPath: args.config, profile: args.profile, overrides: defined });
}

/** Writes a command's output on stdout with credentials in URLs masked: the last guard before secrets leave. */
export function printOut(text: string): void {
  process.stdout.write(`${redactText(text)}\n`);
}

/**
 * Where a profile's side files live (`<base>.cycle.json`, `.requests`), as an absolute path: with the JSON
 * registry the registry itself, with the database one a base of this worker's own (see `sideFilesBase`).
 */
export function registryPathOf(config: LoadedConfig): string {
  return sideFilesBase(config.settings, registryMode(config.settings, parseDatabaseUrl(config.settings.DATABASE_URL)));
}

export interface OpenedRegistry {
  registry: Registry;
  /** Base path of the side files (see `registryPathOf`). */
  path: string;
  /** What the registry and its side files are bound to in this profile: the database DATABASE_URL names, the bucket. */
  binding: Binding;
  close(): Promise<void>;
}

/**
 * Opens a profile's registry for reading, whichever kind it is: the JSON file (no lock, safe next to a running
 * daemon) or the database table (read with a plain SELECT), bound to the profile's database and bucket: entries
 * about another database (or one that is gone) or another bucket are not counted (`registry.untrusted` says why).
 * Never creates or migrates anything.
 */
export async function openRegistryForReading(config: LoadedConfig): Promise<OpenedRegistry> {
  const target = parseDatabaseUrl(config.settings.DATABASE_URL);
  const path = registryPathOf(config);
  const bucket = bucketIdentity(config.settings);
  if (registryMode(config.settings, target) === 'json') {
    const binding: Binding = { database: await probeDatabaseId(target), bucket };
    const registry = await openRegistry(config.settings, target, null, { writable: false, binding });
    return { registry, path, binding, close: () => registry.close() };
  }
  const db = await openDatabase(target, { poolSize: 2 });
  try {
    const binding: Binding = { database: await readDatabaseId(db), bucket };
    const registry = await openRegistry(config.settings, target, db, { writable: false, binding });
    return { registry, path, binding, close: async () => { await registry.close(); await db.destroy(); } };
  } catch (err) {
    await db.destroy();
    throw new IngestError('BI_DATABASE', `cannot read the registry table in ${target.display}: ${describeDbError(err)} (has a daemon run against it yet?)`);
  }
}
