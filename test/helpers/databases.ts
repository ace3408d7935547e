import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { openDatabase, parseDatabaseUrl, type DatabaseTarget } from '../../src/load/database.js';
import { migrate } from '../../src/load/schema.js';
import { tempDir } from './cli.js';
import { dbName } from './run-id.js';
import { bundledCatalog, type Catalog } from '../../src/schemas/catalog.js';

// BIGINT as numbers in the tests' own connections too, as the daemon reads them (values are safe integers).
pg.types.setTypeParser(20, (v: string) => Number(v));

/** A database a test writes into, with its own schema or database, dropped afterwards. */
export interface TestDatabase {
  url: string;
  knex(): Knex;
  drop(): Promise<void>;
}

export interface Dialect {
  name: 'sqlite' | 'postgres' | 'mysql';
  /** A fresh, empty database for one test; `dir` is the test's working directory. */
  create(dir: string): Promise<TestDatabase>;
}

const said = new Set<string>();
function skipLine(name: string, variable: string): void {
  if (said.has(name)) return;
  said.add(name);
  process.stdout.write(`  (skipping the ${name} suites: ${variable} is not set; .ci/run sets it)\n`);
}

const sqlite: Dialect = {
  name: 'sqlite',
  async create(dir) {
    const filename = join(dir, 'data', `t-${randomBytes(3).toString('hex')}.sqlite3`);
    return {
      url: `sqlite://${filename}`,
      knex: () => knexFactory({ client: 'better-sqlite3', connection: { filename }, useNullAsDefault: true }),
      drop: async () => undefined,
    };
  },
};

/** PostgreSQL at `base`: each test gets a schema of its own, named for this run (run-id.ts). */
export function postgresAt(base: string): Dialect {
  return {
    name: 'postgres',
    async create() {
      const schema = dbName();
      const admin = knexFactory({ client: 'pg', connection: base });
      await admin.raw('CREATE SCHEMA ??', [schema]);
      await admin.destroy();
      const url = `${base}${base.includes('?') ? '&' : '?'}schema=${schema}`;
      return {
        url,
        knex: () => knexFactory({ client: 'pg', connection: base, searchPath: [schema] }),
        drop: async () => {
          const k = knexFactory({ client: 'pg', connection: base });
          await k.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
          await k.destroy();
        },
      };
    },
  };
}

function mysql(base: string): Dialect {
  return {
    name: 'mysql',
    async create() {
      const database = dbName();
      const admin = knexFactory({ client: 'mysql2', connection: base });
      await admin.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4', [database]);
      await admin.destroy();
      const u = new URL(base);
      u.pathname = `/${database}`;
      const url = u.toString();
      return {
        url,
        knex: () => knexFactory({ client: 'mysql2', connection: url }),
        drop: async () => {
          const k = knexFactory({ client: 'mysql2', connection: base });
          await k.raw('DROP DATABASE IF EXISTS ??', [database]);
          await k.destroy();
        },
      };
    },
  };
}

/** SQLite always; PostgreSQL and MySQL when TEST_PG_URL / TEST_MYSQL_URL name a server (CI sets both). */
export function dialects(): Dialect[] {
  const out = [sqlite];
  if (process.env.TEST_PG_URL) out.push(postgresAt(process.env.TEST_PG_URL));
  else skipLine('PostgreSQL', 'TEST_PG_URL');
  if (process.env.TEST_MYSQL_URL) out.push(mysql(process.env.TEST_MYSQL_URL));
  else skipLine('MySQL/MariaDB', 'TEST_MYSQL_URL');
  return out;
}

export function postgresDialect(): Dialect | null {
  if (process.env.TEST_PG_URL) return postgresAt(process.env.TEST_PG_URL);
  skipLine('PostgreSQL', 'TEST_PG_URL');
  return null;
}

/** Columns that say when, or which bucket (its id, a hash of where it is), not what: left out of dumps. */
const TIME_COLUMNS = new Set(['loaded_at', 'ingestion_time', 'rejected_at', 'id', 'bucket']);

export type Dump = Record<string, Array<Record<string, unknown>>>;

/**
 * Every row of the data tables and rejected_records in a dialect-neutral form (booleans as 0/1, numbers as
 * numbers), without time columns, sorted: equal dumps mean equal tables.
 */
export async function dump(db: Knex, tables: readonly string[] = ['songs', 'movies', 'apps', 'rejected_records']): Promise<Dump> {
  const out: Dump = {};
  try {
    for (const table of tables) {
      const rows = (await db(table).select()) as Array<Record<string, unknown>>;
      out[table] = rows
        .map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !TIME_COLUMNS.has(k)).map(([k, v]) => [k, typeof v === 'boolean' ? Number(v) : v])))
        .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
    }
  } finally {
    await db.destroy();
  }
  return out;
}

/**
 * Runs `fn` on a fresh, migrated database of the dialect, opened the way the daemon opens it, and removes the
 * database afterwards whatever happens.
 */
export async function withMigratedDatabase(
  dialect: Dialect, fn: (db: Knex, target: DatabaseTarget) => Promise<void>, catalog: Catalog = bundledCatalog(),
): Promise<void> {
  const t = await tempDir('bucket-ingest-db-');
  let created: TestDatabase | undefined;
  let db: Knex | undefined;
  try {
    created = await dialect.create(t.dir);
    const target = parseDatabaseUrl(created.url, t.dir);
    db = await openDatabase(target);
    await migrate(db, { catalog });
    await fn(db, target);
  } finally {
    await db?.destroy();
    await created?.drop();
    await t.cleanup();
  }
}
