import type { Knex } from 'knex';
import { recordTypes } from '../records/index.js';
import type { ColumnSpec, RecordType } from '../records/types.js';

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

/**
 * Longest text a column holds, where the column is bounded. Key columns are VARCHARs so every dialect can
 * index them (MySQL's unique index is at most 3072 bytes: 755 utf8mb4 characters per key). Values longer
 * than this are rejected by validation with a reason, identically on every dialect.
 */
export function maxLength(type: RecordType, column: ColumnSpec): number | null {
  const inKey = type.key.includes(column.name);
  if (column.kind === 'string') return inKey ? 255 : 512;
  if (column.kind === 'text') return inKey ? 500 : null;
  return null;
}

function dialectOf(knex: Knex): string {
  return String(knex.client.config.client);
}

/** Byte-exact, no-pad collation on MySQL/MariaDB, so keys compare as they do in SQLite and PostgreSQL. */
async function mysqlCollation(knex: Knex): Promise<string> {
  const [rows] = (await knex.raw('select version() as v')) as [Array<{ v: string }>];
  return /mariadb/i.test(rows[0]?.v ?? '') ? 'utf8mb4_nopad_bin' : 'utf8mb4_0900_bin';
}

async function tableOptions(knex: Knex): Promise<(table: Knex.CreateTableBuilder) => void> {
  if (dialectOf(knex) !== 'mysql2') return () => undefined;
  const collation = await mysqlCollation(knex);
  return (table) => {
    table.charset('utf8mb4');
    table.collate(collation);
  };
}

function addColumn(table: Knex.CreateTableBuilder, type: RecordType | null, column: ColumnSpec): void {
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
  builder.notNullable();
}

/**
 * Migrations live in code (not files on disk) so the built package, the Docker image and the tests all run
 * the same list without caring about paths. Append; never edit a migration that has shipped.
 */
const migrations: Record<string, { up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> }> = {
  '001_record_tables': {
    async up(knex) {
      const options = await tableOptions(knex);
      for (const type of recordTypes) {
        await knex.schema.createTable(type.table, (table) => {
          options(table);
          for (const column of type.columns) addColumn(table, type, column);
          for (const column of PROVENANCE) addColumn(table, null, column);
          table.unique([...type.key], { indexName: `${type.table}_key` });
          table.index(['source_key'], `${type.table}_source_key`);
        });
      }
    },
    async down(knex) {
      for (const type of recordTypes) await knex.schema.dropTableIfExists(type.table);
    },
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
        table.string('key', 700).primary();
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
        table.index(['status'], `${FILES_TABLE}_status`);
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
      for (const type of recordTypes) {
        await knex.schema.alterTable(type.table, (table) => {
          table.dropIndex(['source_key'], `${type.table}_source_key`);
        });
      }
    },
    async down(knex) {
      for (const type of recordTypes) {
        await knex.schema.alterTable(type.table, (table) => {
          table.index(['source_key'], `${type.table}_source_key`);
        });
      }
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

/**
 * Brings the schema up to date; safe to run at every start and from several processes at once (knex takes
 * a lock row in `<table>_lock`; a second daemon waits for it).
 */
export async function migrate(db: Knex): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await db.migrate.latest({ migrationSource, tableName: MIGRATIONS_TABLE });
      return;
    } catch (err) {
      // knex refuses rather than waits when another process holds the migration lock, and daemons starting
      // together race to create knex's own bookkeeping tables before any lock exists: both pass after a pause.
      const e = err as { name?: string; code?: string; message?: string };
      const raced = e.name === 'MigrationLocked' || e.code === '42P07' || e.code === '23505' || e.code === 'ER_TABLE_EXISTS_ERROR' || /already exists/i.test(e.message ?? '');
      if (!raced || attempt >= 60) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250 + Math.random() * 250));
    }
  }
}
