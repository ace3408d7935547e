import { statSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import type { Knex } from 'knex';
import type { LoadedConfig } from './config/load.js';
import type { Settings } from './config/schema.js';
import { createDecoder } from './formats/threads/pool.js';
import { formatRules } from './formats/index.js';
import { DatabaseReplacedError, IngestError } from './errors.js';
import { checkDatabase, openDatabase, parseDatabaseUrl, startupStep, type DatabaseTarget } from './load/database.js';
import { DATABASE_TABLE, migrate } from './load/schema.js';
import { UpsertCompiler } from './load/upsert.js';
import type { PipelineContext } from './pipeline.js';
import { bucketIdentity, readDatabaseId, type Binding } from './registry/binding.js';
import { DbRegistry } from './registry/db-registry.js';
import { JsonRegistry } from './registry/json-registry.js';
import type { Registry } from './registry/types.js';
import { checkAfterLoad, createSource } from './sources/index.js';
import { ListingCursor } from './listing.js';
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

/** Opens the registry the settings name, bound to `binding`; the database one needs the (migrated) database. */
export async function openRegistry(
  settings: Settings, target: DatabaseTarget, db: Knex | null, opts: { writable: boolean; cwd?: string; binding: Binding },
): Promise<Registry> {
  if (registryMode(settings, target) === 'json') {
    const registry = await JsonRegistry.open(resolve(opts.cwd ?? process.cwd(), settings.REGISTRY_PATH), { writable: opts.writable });
    try {
      await registry.bind(opts.binding);
    } catch (err) {
      await registry.close().catch(() => undefined);
      throw err;
    }
    return registry;
  }
  if (!db) throw new Error('the database registry needs an open database');
  const registry = new DbRegistry(db, {
    dialect: target.dialect,
    leaseMs: settings.LEASE_SECONDS * 1000,
    // Workers started together share one listing; a cycle never reuses one older than half a poll (at most 10 s).
    listingFreshMs: Math.min(10_000, (settings.POLL_INTERVAL_SECONDS * 1000) / 2),
    host: settings.WORKER_NAME,
    bucket: opts.binding.bucket,
  });
  await registry.checkUnbound();
  await registry.refresh();
  return registry;
}

/**
 * Throws when the SQLite file at the database's path is no longer `opened`, the file the daemon opened (deleted, or
 * replaced by another file): checked before every commit, so rows and registry entries never go to an unlinked file
 * that a restart would not find.
 */
export function sqliteFileCheck(filename: string, opened: Stats, display: string): () => void {
  return () => {
    let now: Stats | null = null;
    try {
      now = statSync(filename);
    } catch {
      // gone: said below
    }
    if (now === null || now.ino !== opened.ino || now.dev !== opened.dev) throw new DatabaseReplacedError(display, now === null ? 'deleted' : 'replaced');
  };
}

/**
 * Opens everything a cycle needs, in the order that fails cheapest first: a JSON registry (a corrupt one stops
 * us before touching the database), the database and its schema, the registry bound to that database and the
 * bucket, then the source. Nothing connects at import time.
 */
/**
 * Entries past which the JSON registry is said to be the wrong one: it holds each in memory (~1 kB apiece at a
 * million, its snapshot read whole besides: 1.1 GB measured, README "S3 buckets") and rewrites the snapshot as it grows.
 */
export const JSON_REGISTRY_WARN_ENTRIES = 200_000;

export async function openApp(config: LoadedConfig, telemetry: Telemetry, cwd = process.cwd()): Promise<App> {
  const { settings } = config;
  const target = parseDatabaseUrl(settings.DATABASE_URL, cwd);
  const json = registryMode(settings, target) === 'json';
  // The decoding threads load their modules while the database opens and migrates, not when the first file arrives.
  // Where a group's files are merged by key (the server dialects), they arrive with their rows in key order.
  const decoder = createDecoder(config.catalog, settings.DECODE_THREADS, target.dialect !== 'sqlite', formatRules(settings));
  decoder.warm();
  let registry: Registry | undefined;
  let db: Knex | undefined;
  try {
    const lockTimeoutMs = settings.DATABASE_LOCK_TIMEOUT_SECONDS * 1000;
    const jsonRegistry = json ? await JsonRegistry.open(resolve(cwd, settings.REGISTRY_PATH), { writable: true }) : undefined;
    registry = jsonRegistry;
    db = await openDatabase(target, { poolSize: settings.CONCURRENCY + 2 });
    const opened = db;
    await startupStep(target, 'cannot migrate', () => migrate(opened, {
      catalog: config.catalog, display: target.display, lockTimeoutMs, onWait: (what) => telemetry.databaseWaiting(target.display, what, settings.DATABASE_LOCK_TIMEOUT_SECONDS),
      onEvolved: (change) => telemetry.schemaEvolved(change),
    }));
    const database = await startupStep(target, 'cannot read the identity of', () => readDatabaseId(opened));
    // Migration 005 writes the identity: none after migrating is a damaged database, not a new one.
    if (database === null) throw new IngestError('BI_DATABASE', `${target.display}: its ${DATABASE_TABLE} row is missing; it identifies the database to the registry`);
    const binding: Binding = { database, bucket: bucketIdentity(settings, cwd) };
    if (jsonRegistry) await jsonRegistry.bind(binding);
    registry ??= await startupStep(target, 'cannot read the registry table in', () => openRegistry(settings, target, opened, { writable: true, cwd, binding }));
    if (registry.untrusted) telemetry.registryUntrusted(registry.description, registry.untrusted);
    if (jsonRegistry && jsonRegistry.size >= JSON_REGISTRY_WARN_ENTRIES) telemetry.registryLarge(registry.description, jsonRegistry.size);
    const source = createSource(settings, {
      onRetry: (e) => telemetry.fileRetry(e),
      onResponse: (status) => telemetry.httpResponse(status),
    });
    try {
      checkAfterLoad(settings, source);
    } catch (err) {
      await source.close();
      throw err;
    }
    const openedRegistry = registry;
    // Remember which file we opened: commits stop, and readiness says so, if it is deleted or replaced underneath us.
    const identity = target.filename && target.filename !== ':memory:' ? statSync(target.filename) : undefined;
    const verifyTarget = identity && target.filename ? sqliteFileCheck(target.filename, identity, target.display) : undefined;
    return {
      config, settings, catalog: config.catalog, source, db, registry, decoder, telemetry, firstListed: new Map(), binding,
      compiler: new UpsertCompiler(target.dialect),
      ...(verifyTarget ? { verifyTarget } : {}),
      ...(settings.LISTING === 'ordered' ? { cursor: new ListingCursor(settings) } : {}),
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
