import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import knexFactory from 'knex';
import { events, runCli, tempDir } from '../helpers/cli.js';
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

  it('claims the database refuses: one line for the batch, nothing fetched or recorded, the files left for a later cycle', async () => {
    const t = await tempDir();
    const song = (title: string) => JSON.stringify([{ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } }]);
    const files = { 'a.data': song('a'), 'b.data': song('b'), 'c.data': song('c') };
    const bucket = await startTestBucket({ files, index: '' });
    try {
      const env = { BUCKET_URL: bucket.url, DATABASE_URL: 'sqlite://db.sqlite3', REGISTRY: 'database', LOG_FORMAT: 'json', MAX_ATTEMPTS: '1' };
      expect((await runCli(['run', '--once'], { cwd: t.dir, env })).code).to.equal(0); // creates the tables
      const k = knexFactory({ client: 'better-sqlite3', connection: { filename: join(t.dir, 'db.sqlite3') }, useNullAsDefault: true });
      try {
        await k.raw(`create trigger refuse_claims before insert on ingest_files begin select raise(abort, 'claims refused by a trigger'); end`);
        await k('ingest_listing').delete(); // the empty listing of the first run is still fresh: list again
        bucket.setIndex(Object.keys(files).join('\n'));
        const r = await runCli(['run', '--once'], { cwd: t.dir, env });
        expect(r.code, r.stderr).to.equal(0);
        const claimErrors = events(r.stdout).filter((e) => e.event === 'ClaimError');
        expect(claimErrors).to.have.length(1);
        expect(claimErrors[0]?.keys).to.deep.equal(Object.keys(files));
        expect(String(claimErrors[0]?.error)).to.contain('claims refused by a trigger');
        expect(bucket.requests.filter((q) => q.path !== '/files_list.data'), 'nothing fetched').to.deep.equal([]);
        expect(await k('ingest_files').count({ n: '*' }).first()).to.satisfy((x: { n: number }) => Number(x.n) === 0);
        expect(await k('songs').count({ n: '*' }).first()).to.satisfy((x: { n: number }) => Number(x.n) === 0);

        await k.raw('drop trigger refuse_claims');
        await k('ingest_listing').delete();
        expect((await runCli(['run', '--once'], { cwd: t.dir, env })).code).to.equal(0);
        expect(((await k('songs').select('title')) as Array<{ title: string }>).map((x) => x.title)).to.have.members(['a', 'b', 'c']);
      } finally {
        await k.destroy();
      }
    } finally {
      await bucket.close();
      await t.cleanup();
    }
  });
});
