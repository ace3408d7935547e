import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import knexFactory from 'knex';
import { runCli, tempDir } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/tables.js';
import { startTestBucket } from '../helpers/test-bucket.js';

/**
 * SQLite writes a group's files in one savepoint; when the database refuses one of them, that savepoint is rolled
 * back and the group written again file by file, so only the refused file is recorded failed.
 */
describe('a file SQLite refuses (integration)', function () {
  this.timeout(60_000);

  it('is recorded failed with the database error, and the rest of its group commits', async () => {
    const t = await tempDir();
    const song = (title: string) => JSON.stringify([{ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } }, { type: 'song', data: null }]);
    const bucket = await startTestBucket({ files: { 'a.data': song('a'), 'bad.data': song('bad'), 'c.data': song('c'), 'd.data': song('d') }, index: 'a.data' });
    try {
      const env = { BUCKET_URL: bucket.url, DATABASE_URL: 'sqlite://db.sqlite3', REGISTRY_PATH: 'registry.json', CONCURRENCY: '4', RETRY_FAILED_SECONDS: '3600' };
      expect((await runCli(['run', '--once'], { cwd: t.dir, env })).code).to.equal(0); // creates the tables
      const k = knexFactory({ client: 'better-sqlite3', connection: { filename: join(t.dir, 'db.sqlite3') }, useNullAsDefault: true });
      try {
        await k.raw(`create trigger refuse before insert on songs when new.source_key = 'bad.data' begin select raise(abort, 'refused by a trigger'); end`);
      } finally {
        await k.destroy();
      }
      bucket.setIndex('a.data\nbad.data\nc.data\nd.data');
      const r = await runCli(['run', '--once'], { cwd: t.dir, env });
      expect(r.code, r.stderr).to.equal(1);
      const entries = (JSON.parse(readFileSync(join(t.dir, 'registry.json'), 'utf8')) as { entries: Record<string, { status: string; error: string | null }> }).entries;
      expect(entries['bad.data']?.status).to.equal('failed');
      expect(entries['bad.data']?.error).to.match(/^BI_DATABASE: .*refused by a trigger/);
      for (const key of ['a.data', 'c.data', 'd.data']) expect(entries[key]?.status, key).to.equal('done');
      const tables = await dumpSqlite(join(t.dir, 'db.sqlite3'));
      expect(tables.songs!.map((row) => row.title)).to.have.members(['a', 'c', 'd']);
      // Nothing of the refused file is left behind, its rejection included; the others keep theirs.
      expect(tables.rejected_records!.map((row) => row.source_key)).to.have.members(['a.data', 'c.data', 'd.data']);
    } finally {
      await bucket.close();
      await t.cleanup();
    }
  });
});
