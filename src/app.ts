import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Knex } from 'knex';
import type { LoadedConfig } from './config/load.js';
import { checkDatabase, openDatabase, parseDatabaseUrl } from './load/database.js';
import { migrate } from './load/schema.js';
import { UpsertCompiler } from './load/upsert.js';
import type { PipelineContext } from './pipeline.js';
import { JsonRegistry } from './registry/json-registry.js';
import { createSource } from './sources/index.js';
import type { Telemetry } from './telemetry.js';

export interface App extends PipelineContext {
  config: LoadedConfig;
  /** Proves the database answers now (readiness). */
  checkDatabase(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens everything a cycle needs, in the order that fails cheapest first: registry (a corrupt one stops us
 * before touching the database), database and schema, then the source. Nothing connects at import time.
 */
export async function openApp(config: LoadedConfig, telemetry: Telemetry, cwd = process.cwd()): Promise<App> {
  const { settings } = config;
  const target = parseDatabaseUrl(settings.DATABASE_URL, cwd);
  const registry = await JsonRegistry.open(resolve(cwd, settings.REGISTRY_PATH), { writable: true });
  let db: Knex | undefined;
  try {
    db = await openDatabase(target);
    await migrate(db);
    const source = createSource(settings, {
      onRetry: (e) => telemetry.fileRetry(e),
      onResponse: (status) => telemetry.httpResponse(status),
    });
    const opened = db;
    // Remember which file we opened, so readiness notices if it is replaced underneath us.
    const identity = target.filename && target.filename !== ':memory:' ? { ino: statSync(target.filename).ino } : undefined;
    return {
      config, settings, source, db, registry, telemetry, firstListed: new Map(),
      compiler: new UpsertCompiler(target.dialect),
      checkDatabase: () => checkDatabase(opened, target, identity),
      async close() {
        await Promise.allSettled([source.close(), opened.destroy()]);
        await registry.close();
      },
    };
  } catch (err) {
    await db?.destroy().catch(() => undefined);
    await registry.close().catch(() => undefined);
    throw err;
  }
}
