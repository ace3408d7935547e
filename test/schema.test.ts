import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase, parseDatabaseUrl } from '../src/load/database.js';
import { createRecordTable, migrate, migrationSource, MIGRATIONS_TABLE } from '../src/load/schema.js';
import { catalog } from './helpers/types.js';
import { tempDir } from './helpers/cli.js';
import { dialects, type Dialect, type TestDatabase } from './helpers/databases.js';

/** Index names on a table, in each dialect's catalogue. */
async function indexes(db: Knex, dialect: Dialect['name'], table: string): Promise<string[]> {
  if (dialect === 'sqlite') {
    return ((await db.raw("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", [table])) as Array<{ name: string }>).map((r) => r.name);
  }
  if (dialect === 'postgres') {
    const r = (await db.raw('SELECT indexname AS name FROM pg_indexes WHERE tablename = ? AND schemaname = current_schema()', [table])) as { rows: Array<{ name: string }> };
    return r.rows.map((x) => x.name);
  }
  const [rows] = (await db.raw('SELECT DISTINCT INDEX_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [table])) as [Array<{ name: string }>];
  return rows.map((x) => x.name);
}

describe('schema migrations', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: an existing database loses the unused source_key indexes of the data tables, and keeps its rows and key indexes`, async () => {
      const { dir, cleanup } = await tempDir('bucket-ingest-schema-');
      let created: TestDatabase | undefined;
      let db: Knex | undefined;
      try {
        created = await dialect.create(dir);
        db = await openDatabase(parseDatabaseUrl(created.url, dir));
        // A database as the first three migrations of the first version left it: its 001 made the MacPaw tables,
        // with an index on source_key each (tables come from the schema files now, and 001 does nothing).
        for (let i = 0; i < 3; i++) await db.migrate.up({ migrationSource, tableName: MIGRATIONS_TABLE });
        for (const type of catalog.types) {
          await createRecordTable(db, type);
          await db.schema.alterTable(type.table, (t) => {
            t.index(['source_key'], `${type.table}_source_key`);
          });
        }
        for (const type of catalog.types) expect(await indexes(db, dialect.name, type.table)).to.include(`${type.table}_source_key`);
        await db('songs').insert({
          artist_name: 'a', title: 't', year: 1990, release: 'r', ingestion_time: 'i', source_key: 'f.data', source_position: 1, loaded_at: 'l',
        });

        await migrate(db, { catalog });
        for (const type of catalog.types) {
          const names = await indexes(db, dialect.name, type.table);
          expect(names, type.table).to.not.include(`${type.table}_source_key`);
          expect(names, type.table).to.include(`${type.table}_key`);
        }
        expect(await indexes(db, dialect.name, 'rejected_records'), 'rejections are looked up by file').to.include('rejected_records_source_key');
        expect(await db('songs').select('title', 'source_key')).to.deep.equal([{ title: 't', source_key: 'f.data' }]);
      } finally {
        await db?.destroy();
        await created?.drop();
        await cleanup();
      }
    });
  }
});
