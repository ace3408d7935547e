import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { IngestError } from '../errors.js';
import type { Cell, ColumnSpec, RecordType } from '../records/types.js';
import type { Catalog } from '../schemas/catalog.js';
import { evolveRecordTables } from './evolve-apply.js';
import type { Change } from './evolve.js';

/** Provenance every loaded row carries: which file it came from, that file's place in the index, when. */
export const PROVENANCE: readonly ColumnSpec[] = [
  { name: 'source_key', kind: 'string' },
  { name: 'source_position', kind: 'bigint' },
  { name: 'loaded_at', kind: 'string' },
];

export const REJECTED_TABLE = 'rejected_records';
/** The database registry (REGISTRY=database): one row per key, written in the file's own transaction. */
export const FILES_TABLE = 'ingest_files';
/** The shared bucket listing (REGISTRY=database): one worker lists, the others read it. */
export const LISTING_TABLE = 'ingest_listing';
/** The database's identity: one row, written by the migration that created it (see registry/binding.ts). */
export const DATABASE_TABLE = 'ingest_database';
/** The erasure list (`bucket-ingest erase`): values whose records are not stored again when a later file carries them. */
export const ERASURES_TABLE = 'erasures';

/**
 * Longest text a column holds, where the column is bounded. Key columns are VARCHARs so every dialect can
 * index them (MySQL's unique index is at most 3072 bytes: 755 utf8mb4 characters per key). Values longer
 * than this are rejected by validation with a reason, identically on every dialect.
 */
export function maxLength(type: Pick<RecordType, 'key'>, column: ColumnSpec): number | null {
  const inKey = type.key.includes(column.name);
  if (column.kind === 'string') return inKey ? 255 : 512;
  if (column.kind === 'text') return inKey ? 500 : null;
  return null;
}

export function dialectOf(knex: Knex): string {
  return String(knex.client.config.client);
}

/** Byte-exact, no-pad collation on MySQL/MariaDB, so keys compare as they do in SQLite and PostgreSQL. */
async function mysqlCollation(knex: Knex): Promise<string> {
  const [rows] = (await knex.raw('select version() as v')) as [Array<{ v: string }>];
  return /mariadb/i.test(rows[0]?.v ?? '') ? 'utf8mb4_nopad_bin' : 'utf8mb4_0900_bin';
}

export async function tableOptions(knex: Knex): Promise<(table: Knex.CreateTableBuilder) => void> {
  if (dialectOf(knex) !== 'mysql2') return () => undefined;
  const collation = await mysqlCollation(knex);
  return (table) => {
    table.charset('utf8mb4');
    table.collate(collation);
  };
}

/** Declares `column` on `table` (a table created or altered) as the daemon makes it; returns the builder, for `.alter()`. */
export function addColumn(table: Knex.CreateTableBuilder, type: RecordType | null, column: ColumnSpec): Knex.ColumnBuilder {
  const { name, kind } = column;
  const limit = type ? maxLength(type, column) : kind === 'string' ? 512 : null;
  let builder: Knex.ColumnBuilder;
  switch (kind) {
    case 'string': builder = table.string(name, limit ?? 512); break;
    case 'text': builder = limit !== null ? table.string(name, limit) : table.text(name, 'longtext'); break;
    case 'bigint': builder = table.bigInteger(name); break;
    case 'integer': builder = table.integer(name); break;
    case 'float': builder = table.double(name); break;
    case 'boolean': builder = table.boolean(name); break;
    case 'date': builder = table.date(name); break;
    case 'timestamp': builder = table.timestamp(name, { useTz: true }); break;
  }
  if (column.nullable === true) builder.nullable();
  else builder.notNullable();
  return builder;
}

/**
 * Creates the table of a record type: its columns, the provenance columns, and the unique index of its key. The
 * `source_key` index of the first shipped version is not made (see migration 004).
 */
export async function createRecordTable(knex: Knex, type: RecordType): Promise<void> {
  await knex.schema.createTable(type.table, recordTableDefinition(type, await tableOptions(knex)));
}

/** The columns and key index of `type`'s table, for `createTable` (schema evolution builds tables with it too). */
export function recordTableDefinition(
  type: RecordType, options: (table: Knex.CreateTableBuilder) => void, defaults: ReadonlyMap<string, Cell> = new Map(),
): (table: Knex.CreateTableBuilder) => void {
  return (table) => {
    options(table);
    for (const column of type.columns) {
      const builder = addColumn(table, type, column);
      const value = defaults.get(column.name);
      if (value !== undefined) builder.defaultTo(value);
    }
    for (const column of PROVENANCE) addColumn(table, null, column);
    table.unique([...type.key], { indexName: keyIndexName(type.table) });
  };
}

/** The unique index of a record table's key: what upserts conflict on, and what schema evolution compares. */
export function keyIndexName(table: string): string {
  return `${table}_key`;
}

/** Whether `index` exists (on `table`, for MySQL, whose index names are per table). */
async function hasIndex(knex: Knex, table: string, index: string): Promise<boolean> {
  const dialect = dialectOf(knex);
  let rows: unknown[];
  if (dialect === 'better-sqlite3') {
    rows = (await knex.raw(`SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?`, [index])) as unknown[];
  } else if (dialect === 'pg') {
    rows = ((await knex.raw('SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?', [index])) as { rows: unknown[] }).rows;
  } else {
    rows = ((await knex.raw('SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?', [table, index])) as [unknown[]])[0];
  }
  return rows.length > 0;
}

/** The registry table's columns, for migration 003 (keyed by `key`) and 005 (by bucket and key). */
const REGISTRY_COLUMNS = [
  'bucket', 'key', 'position', 'status', 'etag', 'size', 'attempts', 'failures', 'loaded', 'rejected', 'skipped', 'error', 'first_seen_at',
  'updated_at', 'done_at', 'checked_at', 'next_attempt_at', 'reprocess', 'claimed_by', 'lease_expires_at',
] as const;

function registryColumns(table: Knex.CreateTableBuilder, keyedBy: 'key' | 'bucket'): void {
  if (keyedBy === 'bucket') {
    // 32 + 700 characters: within MySQL's 3072 bytes of utf8mb4 for one index.
    table.string('bucket', 32).notNullable();
    table.string('key', 700).notNullable();
    table.primary(['bucket', 'key'], `${FILES_TABLE}_bucket_key`);
  } else {
    table.string('key', 700).primary();
  }
  table.bigInteger('position').notNullable().defaultTo(0);
  table.string('status', 16).notNullable(); // pending | done | failed
  table.string('etag', 255).nullable();
  table.bigInteger('size').nullable();
  table.integer('attempts').notNullable().defaultTo(0);
  table.integer('failures').notNullable().defaultTo(0);
  table.bigInteger('loaded').notNullable().defaultTo(0);
  table.bigInteger('rejected').notNullable().defaultTo(0);
  table.bigInteger('skipped').notNullable().defaultTo(0);
  table.text('error').nullable();
  table.string('first_seen_at', 32).notNullable();
  table.string('updated_at', 32).notNullable();
  table.string('done_at', 32).nullable();
  table.string('checked_at', 32).nullable();
  table.string('next_attempt_at', 32).nullable();
  table.boolean('reprocess').notNullable().defaultTo(false);
  table.string('claimed_by', 128).nullable();
  /** Milliseconds since the epoch, compared with the database's clock-free arithmetic in claims. */
  table.bigInteger('lease_expires_at').nullable();
  if (keyedBy === 'bucket') table.index(['bucket', 'status'], `${FILES_TABLE}_bucket_status`);
  else table.index(['status'], `${FILES_TABLE}_status`);
}

/**
 * Migrations live in code (not files on disk) so the built package, the Docker image and the tests all run
 * the same list without caring about paths. Append; never edit a migration that has shipped.
 */
const migrations: Record<string, { up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> }> = {
  /**
   * Record tables are not migrations: they follow the schema files (evolveRecordTables, run after the migrations).
   * This one created the three MacPaw tables of the first version; databases it ran on keep them, new ones get
   * their tables from the schemas.
   */
  '001_record_tables': {
    async up() {},
    async down() {},
  },
  '002_rejected_records': {
    async up(knex) {
      const options = await tableOptions(knex);
      await knex.schema.createTable(REJECTED_TABLE, (table) => {
        options(table);
        table.bigIncrements('id');
        table.string('source_key', 512).notNullable();
        table.integer('record_index').notNullable();
        table.string('type', 255).nullable();
        table.text('reason').notNullable();
        table.text('raw', 'longtext').notNullable();
        table.string('rejected_at', 32).notNullable();
        table.index(['source_key'], `${REJECTED_TABLE}_source_key`);
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(REJECTED_TABLE);
    },
  },
  '003_database_registry': {
    async up(knex) {
      const options = await tableOptions(knex);
      await knex.schema.createTable(FILES_TABLE, (table) => {
        options(table);
        registryColumns(table, 'key');
      });
      await knex.schema.createTable(LISTING_TABLE, (table) => {
        options(table);
        table.string('name', 64).primary();
        table.bigInteger('listed_at').notNullable();
        table.string('listed_by', 128).notNullable();
        table.bigInteger('lease_until').notNullable().defaultTo(0);
        table.text('keys', 'longtext').notNullable();
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(FILES_TABLE);
      await knex.schema.dropTableIfExists(LISTING_TABLE);
    },
  },
  /**
   * The data tables' `source_key` indexes served no query of the daemon or its commands, and cost every row
   * written a third B-tree insert (SQLite: about a quarter of the time spent inserting, README Performance).
   * `source_key` stays on every row; an operator who looks rows up by file can index it (see README).
   */
  '004_drop_data_source_key_indexes': {
    async up(knex) {
      // Only the tables the first version's migration 001 made have the index (record tables made since do not).
      for (const table of ['songs', 'movies', 'apps']) {
        if (!(await hasIndex(knex, table, `${table}_source_key`))) continue;
        await knex.schema.alterTable(table, (t) => {
          t.dropIndex(['source_key'], `${table}_source_key`);
        });
      }
    },
    async down() {},
  },
  /**
   * Registries bound to what they describe (README, What it promises). The database gets its identity, so a JSON
   * registry written for another (or a deleted) database is not trusted; registry rows get the bucket they are
   * about, so two buckets sharing a database never skip each other's files of the same name. Rows written before
   * this have no bucket (''): no bucket reads them, and their files are processed again (the upserts make that
   * exact). The shared listing row is named after the bucket from now on.
   */
  '005_bound_registry': {
    async up(knex) {
      const options = await tableOptions(knex);
      await knex.schema.createTable(DATABASE_TABLE, (table) => {
        options(table);
        table.string('id', 36).primary();
        table.string('created_at', 32).notNullable();
      });
      await knex(DATABASE_TABLE).insert({ id: randomUUID(), created_at: new Date().toISOString() });
      const next = `${FILES_TABLE}_bound`;
      await knex.schema.createTable(next, (table) => {
        options(table);
        registryColumns(table, 'bucket');
      });
      const columns = REGISTRY_COLUMNS.filter((c) => c !== 'bucket');
      await knex.raw(`INSERT INTO ?? (${columns.map(() => '??').join(', ')}, ??) SELECT ${columns.map(() => '??').join(', ')}, '' FROM ??`, [
        next, ...columns, 'bucket', ...columns, FILES_TABLE,
      ]);
      await knex.schema.dropTable(FILES_TABLE);
      await knex.schema.renameTable(next, FILES_TABLE);
      await knex(LISTING_TABLE).delete();
      // A file's rejections are replaced when it is loaded again: only those of the same bucket.
      await knex.schema.alterTable(REJECTED_TABLE, (table) => {
        table.string('bucket', 32).notNullable().defaultTo('');
        table.index(['bucket', 'source_key'], `${REJECTED_TABLE}_bucket_source_key`);
      });
    },
    async down(knex) {
      const options = await tableOptions(knex);
      await knex.schema.alterTable(REJECTED_TABLE, (table) => {
        table.dropIndex(['bucket', 'source_key'], `${REJECTED_TABLE}_bucket_source_key`);
        table.dropColumn('bucket');
      });
      await knex.schema.dropTableIfExists(DATABASE_TABLE);
      const previous = `${FILES_TABLE}_unbound`;
      await knex.schema.createTable(previous, (table) => {
        options(table);
        registryColumns(table, 'key');
      });
      const columns = REGISTRY_COLUMNS.filter((c) => c !== 'bucket');
      await knex.raw(`INSERT INTO ?? (${columns.map(() => '??').join(', ')}) SELECT ${columns.map(() => '??').join(', ')} FROM ?? WHERE ?? = ''`, [
        previous, ...columns, ...columns, FILES_TABLE, 'bucket',
      ]);
      await knex.schema.dropTable(FILES_TABLE);
      await knex.schema.renameTable(previous, FILES_TABLE);
    },
  },
  /**
   * The erasure list (src/load/erasures.ts): one row per erased value of a type's field. `value` is the HMAC a PII
   * field stores (never the value), or, for a field the schema does not declare personal, the value itself, which
   * later loads are matched against. Values are unbounded, so the unique index is on their SHA-256 (`value_digest`).
   */
  '006_erasures': {
    async up(knex) {
      const options = await tableOptions(knex);
      await knex.schema.createTable(ERASURES_TABLE, (table) => {
        options(table);
        table.bigIncrements('id');
        table.string('type', 255).notNullable();
        table.string('field', 64).notNullable();
        table.text('value', 'longtext').notNullable();
        table.string('value_digest', 64).notNullable();
        table.boolean('pii').notNullable();
        table.string('erased_at', 32).notNullable();
        table.unique(['type', 'field', 'value_digest'], { indexName: `${ERASURES_TABLE}_value` });
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(ERASURES_TABLE);
    },
  },
  /**
   * A rejection keeps its file's place in the bucket index, so `reprocess --rejected` can load it later under the
   * ordering rule of files (a record never overwrites a row of a later file). Rejections stored before have none
   * (NULL): replay takes their file's position from the registry or the file's rows (src/load/replay.ts).
   */
  '007_rejected_positions': {
    async up(knex) {
      await knex.schema.alterTable(REJECTED_TABLE, (table) => {
        table.bigInteger('source_position').nullable();
      });
    },
    async down(knex) {
      await knex.schema.alterTable(REJECTED_TABLE, (table) => {
        table.dropColumn('source_position');
      });
    },
  },
  /**
   * AFTER_LOAD (src/load/after-load.ts): the action on a loaded file, recorded pending in the file's own transaction,
   * then done (or its failure, and when to try again). NULL state: nothing to do (AFTER_LOAD=keep, or loaded before).
   */
  '008_after_load': {
    async up(knex) {
      await knex.schema.alterTable(FILES_TABLE, (table) => {
        table.string('after_load_action', 600).nullable();
        table.string('after_load_state', 16).nullable(); // pending | done
        table.integer('after_load_attempts').notNullable().defaultTo(0);
        table.text('after_load_error').nullable();
        table.string('after_load_next_at', 32).nullable();
        table.string('after_load_done_at', 32).nullable();
      });
    },
    async down(knex) {
      await knex.schema.alterTable(FILES_TABLE, (table) => {
        table.dropColumns('after_load_action', 'after_load_state', 'after_load_attempts', 'after_load_error', 'after_load_next_at', 'after_load_done_at');
      });
    },
  },
  /**
   * What every cycle asks of the whole registry table besides its listed keys: the claims held (to free those of dead
   * workers) and the AFTER_LOAD actions pending. Indexed, each is a short range of the index instead of a scan of
   * every row: at 1,000,000 done keys the two scans took ~0.4 s of each ordered cycle's 0.5 s.
   */
  '009_registry_claims_index': {
    async up(knex) {
      await knex.schema.alterTable(FILES_TABLE, (table) => {
        table.index(['bucket', 'claimed_by'], `${FILES_TABLE}_bucket_claimed_by`);
        table.index(['bucket', 'after_load_state'], `${FILES_TABLE}_bucket_after_load`);
      });
    },
    async down(knex) {
      await knex.schema.alterTable(FILES_TABLE, (table) => {
        table.dropIndex(['bucket', 'claimed_by'], `${FILES_TABLE}_bucket_claimed_by`);
        table.dropIndex(['bucket', 'after_load_state'], `${FILES_TABLE}_bucket_after_load`);
      });
    },
  },
};

/** The migrations in order, for knex's migrator (exported for the schema tests). */
export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(migrations),
  getMigrationName: (name) => name,
  getMigration: async (name) => migrations[name] as Knex.Migration,
};

export const MIGRATIONS_TABLE = 'bucket_ingest_migrations';

export interface MigrateOptions {
  /** The record types whose tables must exist once migrated. */
  catalog: Catalog;
  /** The database as people read it (masked), for the error. */
  display?: string;
  /** Gives up waiting for a lock after this long (DATABASE_LOCK_TIMEOUT_SECONDS). */
  lockTimeoutMs?: number;
  /** Told once, when the migration starts waiting for a lock, what it waits for. */
  onWait?: (what: string) => void;
  /** Told of each change schema evolution made to a record table (a column added, a type widened). */
  onEvolved?: (change: Change) => void;
}

/** What a failed migration attempt waits for, or null when waiting cannot help. */
function lockWaitedFor(err: unknown): string | null {
  const e = err as { name?: string; code?: string; message?: string };
  // knex turns any failure to take its lock row into MigrationLocked, keeping the message: SQLite's own lock first.
  if (e.code === 'SQLITE_BUSY' || e.code === 'SQLITE_LOCKED' || /database is locked/i.test(e.message ?? '')) {
    return 'the SQLite database lock, held by another process with a transaction open on the file';
  }
  if (e.name === 'MigrationLocked') {
    return `the migration lock (table ${MIGRATIONS_TABLE}_lock), held by another process migrating this database`;
  }
  // Daemons starting together race to create knex's own bookkeeping tables before any lock exists.
  if (e.code === '42P07' || e.code === '23505' || e.code === 'ER_TABLE_EXISTS_ERROR' || /already exists/i.test(e.message ?? '')) {
    return 'another process creating the migration tables';
  }
  // Or to evolve a record table: the first adds the column, the second's plan (made again) finds it there.
  if (e.code === '42701' || e.code === 'ER_DUP_FIELDNAME' || /duplicate column name/i.test(e.message ?? '')) {
    return 'another process evolving the record tables';
  }
  return null;
}

/**
 * Brings the schema up to date; safe to run at every start and from several processes at once (knex takes
 * a lock row in `<table>_lock`; a second daemon waits for it). Waiting is said once (`onWait`) and bounded: after
 * `lockTimeoutMs` the start fails with one BI_DATABASE line naming the database and the lock.
 */
export async function migrate(db: Knex, opts: MigrateOptions): Promise<void> {
  const timeoutMs = opts.lockTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  // SQLite would wait out its whole busy timeout (10 s) in silence at each attempt: here, a second at a time, so the
  // wait is said at once and the bound holds.
  const sqlite = dialectOf(db) === 'better-sqlite3';
  const busy = sqlite ? Object.values(((await db.raw('PRAGMA busy_timeout')) as Array<Record<string, number>>)[0] ?? {})[0] : undefined;
  if (sqlite) await db.raw(`PRAGMA busy_timeout = ${Math.min(1000, timeoutMs)}`);
  let told = false;
  try {
    for (;;) {
      try {
        await db.migrate.latest({ migrationSource, tableName: MIGRATIONS_TABLE });
        // Record tables follow the schema files: created, or evolved where that loses nothing (load/evolve.ts).
        await evolveRecordTables(db, opts.catalog, opts.onEvolved ? { onEvolved: opts.onEvolved } : {});
        return;
      } catch (err) {
        const what = lockWaitedFor(err);
        if (what === null) throw err;
        if (!told) opts.onWait?.(what);
        told = true;
        if (Date.now() >= deadline) {
          throw new IngestError('BI_DATABASE', `${opts.display ?? 'the database'}: gave up after ${Math.round(timeoutMs / 1000)} s waiting for ${what}; ` +
            'stop that process (or, if none runs, see README: Databases) and start again', { cause: err });
        }
        await new Promise((resolve) => setTimeout(resolve, 250 + Math.random() * 250));
      }
    }
  } finally {
    if (busy !== undefined) await db.raw(`PRAGMA busy_timeout = ${Number(busy)}`);
  }
}
