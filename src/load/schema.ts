import type { Knex } from 'knex';
import { recordTypes } from '../records/index.js';
import type { ColumnSpec, RecordType } from '../records/types.js';

/** Provenance columns every loaded row carries. */
export const PROVENANCE: readonly ColumnSpec[] = [
  { name: 'source_key', kind: 'string' },
  { name: 'loaded_at', kind: 'string' },
];

export const REJECTED_TABLE = 'rejected_records';

function addColumn(table: Knex.CreateTableBuilder, column: ColumnSpec, inKey: boolean): void {
  const { name, kind } = column;
  let builder: Knex.ColumnBuilder;
  switch (kind) {
    case 'string': builder = table.string(name, inKey ? 255 : 512); break;
    // Key columns must be indexable everywhere, so long text that is part of a key gets a bounded varchar.
    case 'text': builder = inKey ? table.string(name, 255) : table.text(name); break;
    case 'bigint': builder = table.bigInteger(name); break;
    case 'integer': builder = table.integer(name); break;
    case 'float': builder = table.double(name); break;
    case 'boolean': builder = table.boolean(name); break;
    case 'date': builder = table.date(name); break;
    case 'timestamp': builder = table.timestamp(name, { useTz: true }); break;
  }
  builder.notNullable();
}

function createRecordTable(type: RecordType): (knex: Knex) => Promise<void> {
  return async (knex) => {
    await knex.schema.createTable(type.table, (table) => {
      for (const column of type.columns) addColumn(table, column, type.key.includes(column.name));
      for (const column of PROVENANCE) addColumn(table, column, false);
      table.unique([...type.key], { indexName: `${type.table}_key` });
      table.index(['source_key'], `${type.table}_source_key`);
    });
  };
}

/**
 * Migrations live in code (not files on disk) so the built package, the Docker image and the tests all run
 * the same list without caring about paths. Append; never edit a migration that has shipped.
 */
const migrations: Record<string, { up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> }> = {
  '001_record_tables': {
    async up(knex) {
      for (const type of recordTypes) await createRecordTable(type)(knex);
    },
    async down(knex) {
      for (const type of recordTypes) await knex.schema.dropTableIfExists(type.table);
    },
  },
  '002_rejected_records': {
    async up(knex) {
      await knex.schema.createTable(REJECTED_TABLE, (table) => {
        table.bigIncrements('id');
        table.string('source_key', 512).notNullable();
        table.integer('record_index').notNullable();
        table.string('type', 255).nullable();
        table.text('reason').notNullable();
        table.text('raw').notNullable();
        table.string('rejected_at', 32).notNullable();
        table.index(['source_key'], `${REJECTED_TABLE}_source_key`);
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(REJECTED_TABLE);
    },
  },
};

const source: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(migrations),
  getMigrationName: (name) => name,
  getMigration: async (name) => migrations[name] as Knex.Migration,
};

/** Brings the schema up to date; safe to run at every start and from several processes. */
export async function migrate(db: Knex): Promise<void> {
  await db.migrate.latest({ migrationSource: source, tableName: 'bucket_ingest_migrations' });
}
