import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Knex } from 'knex';
import type { LoadedConfig } from './config/load.js';
import type { Settings } from './config/schema.js';
import { createDecoder } from './decode-pool.js';
import { checkDatabase, openDatabase, parseDatabaseUrl, startupStep, type DatabaseTarget } from './load/database.js';
import { migrate } from './load/schema.js';
import { UpsertCompiler } from './load/upsert.js';
import type { PipelineContext } from './pipeline.js';
import { DbRegistry } from './registry/db-registry.js';
import { JsonRegistry } from './registry/json-registry.js';
import type { Registry } from './registry/types.js';
import { createSource } from './sources/index.js';
import type { Telemetry } from './telemetry.js';

export interface App extends PipelineContext {
  config: LoadedConfig;
  /** Proves the database answers now (readiness). */
  checkDatabase(): Promise<void>;
  close(): Promise<void>;
}

/** REGISTRY=auto: a JSON file next to SQLite, a table in PostgreSQL and MySQL. */
export function registryMode(settings: Settings, target: DatabaseTarget): 'json' | 'database' {
  if (settings.REGISTRY !== 'auto') return settings.REGISTRY;
  return target.dialect === 'sqlite' ? 'json' : 'database';
}

/** Opens the registry the settings name; the database one needs the (migrated) database. */
export async function openRegistry(settings: Settings, target: DatabaseTarget, db: Knex | null, opts: { writable: boolean; cwd?: string }): Promise<Registry> {
  if (registryMode(settings, target) === 'json') {
    return JsonRegistry.open(resolve(opts.cwd ?? process.cwd(), settings.REGISTRY_PATH), { writable: opts.writable });
  }
  if (!db) throw new Error('the database registry needs an open database');
  const registry = new DbRegistry(db, {
    dialect: target.dialect,
    leaseMs: settings.LEASE_SECONDS * 1000,
    // Workers started together share one listing; a cycle never reuses one older than half a poll (at most 10 s).
    listingFreshMs: Math.min(10_000, (settings.POLL_INTERVAL_SECONDS * 1000) / 2),
    host: settings.WORKER_NAME,
  });
  await registry.refresh();
  return registry;
}

/**
 * Opens everything a cycle needs, in the order that fails cheapest first: a JSON registry (a corrupt one stops
 * us before touching the database), the database and its schema, a database registry, then the source.
 * Nothing connects at import time.
 */
export async function openApp(config: LoadedConfig, telemetry: Telemetry, cwd = process.cwd()): Promise<App> {
  const { settings } = config;
  const target = parseDatabaseUrl(settings.DATABASE_URL, cwd);
  const json = registryMode(settings, target) === 'json';
  // The decoding threads load their modules while the database opens and migrates, not when the first file arrives.
  // Where a group's files are merged by key (the server dialects), they arrive with their rows in key order.
  const decoder = createDecoder(settings.DECODE_THREADS, target.dialect !== 'sqlite');
  decoder.warm();
  let registry: Registry | undefined;
  let db: Knex | undefined;
  try {
    if (json) registry = await openRegistry(settings, target, null, { writable: true, cwd });
    db = await openDatabase(target, { poolSize: settings.CONCURRENCY + 2 });
    const opened = db;
    await startupStep(target, 'cannot migrate', () => migrate(opened));
    registry ??= await startupStep(target, 'cannot read the registry table in', () => openRegistry(settings, target, opened, { writable: true, cwd }));
    const source = createSource(settings, {
      onRetry: (e) => telemetry.fileRetry(e),
      onResponse: (status) => telemetry.httpResponse(status),
    });
    const openedRegistry = registry;
    // Remember which file we opened, so readiness notices if it is replaced underneath us.
    const identity = target.filename && target.filename !== ':memory:' ? { ino: statSync(target.filename).ino } : undefined;
    return {
      config, settings, source, db, registry, decoder, telemetry, firstListed: new Map(),
      compiler: new UpsertCompiler(target.dialect),
      checkDatabase: () => checkDatabase(opened, target, identity),
      async close() {
        await openedRegistry.close().catch(() => undefined);
        await Promise.allSettled([source.close(), opened.destroy(), decoder.close()]);
      },
    };
  } catch (err) {
    await registry?.close().catch(() => undefined);
    await db?.destroy().catch(() => undefined);
    await decoder.close();
    throw err;
  }
}
