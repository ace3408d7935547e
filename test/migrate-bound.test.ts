import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase, parseDatabaseUrl } from '../src/load/database.js';
import { DATABASE_TABLE, FILES_TABLE, MIGRATIONS_TABLE, migrate, migrationSource } from '../src/load/schema.js';
import { readDatabaseId } from '../src/registry/binding.js';
import { DbRegistry } from '../src/registry/db-registry.js';
import { dialects } from './helpers/databases.js';
import { catalog } from './helpers/types.js';

/** The migrations up to (and with) `last`, as an older release of the daemon ran them. */
async function migrateUpTo(db: Knex, last: string): Promise<void> {
  const names = await migrationSource.getMigrations([]);
  const upTo = names.slice(0, names.indexOf(last) + 1);
  await db.migrate.latest({ tableName: MIGRATIONS_TABLE, migrationSource: { ...migrationSource, getMigrations: async () => upTo } });
}

describe('migration 005: registries bound to their database and bucket', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: gives the database one identity, keeps old registry rows under no bucket, and no bucket reads them`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'bucket-ingest-migrate-'));
      const created = await dialect.create(dir);
      const db = await openDatabase(parseDatabaseUrl(created.url, dir));
      try {
        await migrateUpTo(db, '004_drop_data_source_key_indexes');
        const at = '2026-01-01T00:00:00.000Z';
        await db(FILES_TABLE).insert({ key: 'a.data', position: 0, status: 'done', loaded: 3, first_seen_at: at, updated_at: at, done_at: at });
        await migrate(db, { catalog });
        const id = await readDatabaseId(db);
        expect(id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        await migrate(db, { catalog }); // a second start changes nothing
        expect(await db(DATABASE_TABLE).select('id')).to.deep.equal([{ id }]);
        expect(await db(FILES_TABLE).select('bucket', 'key', 'loaded')).to.deep.equal([{ bucket: '', key: 'a.data', loaded: 3 }]);
        const registry = new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, bucket: 'file:///b/#files_list.data' });
        await registry.checkUnbound();
        await registry.refresh();
        expect((await registry.lookup(['a.data'])).size).to.equal(0);
        expect(await registry.count()).to.equal(0);
        expect(registry.untrusted).to.include({ entries: 1 });
        expect(registry.untrusted?.reason).to.contain("DELETE FROM ingest_files WHERE bucket = ''");
        await registry.close();
      } finally {
        await db.destroy();
        await created.drop();
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
