import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { inThread } from '../src/formats/threads/pool.js';
import { catalog } from './helpers/types.js';
import { commitGroup, type CommitContext } from '../src/load/commit.js';
import { UpsertCompiler } from '../src/load/upsert.js';
import type { Prepared } from '../src/pipeline.js';
import { JsonRegistry } from '../src/registry/json-registry.js';
import { dialects, withMigratedDatabase } from './helpers/databases.js';

/**
 * SQLite writes a group as its files become ready: `more` hands the writer each file that arrived meanwhile, in the
 * same transaction. Files taken in that way are committed, recorded and, when the database refuses one, written
 * again file by file exactly like the files the group started with.
 */
describe('a SQLite group that takes files in as they arrive', function () {
  this.timeout(30_000);
  const sqlite = dialects().find((d) => d.name === 'sqlite')!;
  const NOW = '2026-01-01T00:00:00.000Z';

  async function prepared(key: string, index: number, title: string): Promise<Prepared> {
    const body = JSON.stringify([{ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } }, { type: 'song', data: null }]);
    const file = await inThread(catalog).decode(key, Buffer.from(body), NOW);
    return { kind: 'load', item: { key, index, reason: 'new' }, etag: `"${key}"`, size: body.length, file, startedAt: 0 };
  }

  async function withContext(fn: (ctx: CommitContext, db: Knex, registry: JsonRegistry) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'bucket-ingest-commit-'));
    const registry = await JsonRegistry.open(join(dir, 'registry.json'), { writable: true });
    try {
      await withMigratedDatabase(sqlite, (db) => fn({
        db, catalog, bucket: 'b', batchGroups: false, registry, compiler: new UpsertCompiler('sqlite'), maxAttempts: 1, retryFailedMs: 60_000,
        firstSeen: () => Date.parse(NOW), onRetry: () => undefined,
      }, db, registry));
    } finally {
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** `more` as the pipeline gives it: the next file after a pause, then "the group is full". */
  const arriving = (files: Prepared[]): (() => Promise<Prepared | null>) => async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return files.shift() ?? null;
  };

  it('commits and records the files taken in with the first', () => withContext(async (ctx, db, registry) => {
    const later = [await prepared('b.data', 1, 'b'), await prepared('c.data', 2, 'c')];
    const outcomes = await commitGroup(ctx, [await prepared('a.data', 0, 'a')], arriving(later));
    expect(outcomes.map((o) => [o.p.item.key, o.kind])).to.deep.equal([['a.data', 'done'], ['b.data', 'done'], ['c.data', 'done']]);
    expect(((await db('songs').select('title')) as Array<{ title: string }>).map((r) => r.title)).to.have.members(['a', 'b', 'c']);
    expect(await db('rejected_records').count({ n: '*' }).first()).to.satisfy((r: { n: number }) => Number(r.n) === 3);
    for (const key of ['a.data', 'b.data', 'c.data']) expect(registry.get(key)?.status, key).to.equal('done');
  }));

  it('writes the group again file by file when the database refuses a file taken in, and records only that one failed', () => withContext(async (ctx, db, registry) => {
    await db.raw(`create trigger refuse before insert on songs when new.source_key = 'bad.data' begin select raise(abort, 'refused by a trigger'); end`);
    const later = [await prepared('b.data', 1, 'b'), await prepared('bad.data', 2, 'bad'), await prepared('d.data', 3, 'd')];
    const outcomes = await commitGroup(ctx, [await prepared('a.data', 0, 'a')], arriving(later));
    // The refusal ends the group: d.data was not taken in, and goes to the next group (the pipeline keeps it ready).
    expect(outcomes.map((o) => [o.p.item.key, o.kind])).to.deep.equal([['a.data', 'done'], ['b.data', 'done'], ['bad.data', 'failed']]);
    expect(later.map((p) => p.item.key)).to.deep.equal(['d.data']);
    expect(((await db('songs').select('title')) as Array<{ title: string }>).map((r) => r.title)).to.have.members(['a', 'b']);
    expect(((await db('rejected_records').select('source_key')) as Array<{ source_key: string }>).map((r) => r.source_key)).to.have.members(['a.data', 'b.data']);
    expect(registry.get('bad.data')).to.include({ status: 'failed' });
    expect(registry.get('bad.data')?.error).to.match(/^BI_DATABASE: .*refused by a trigger/);
  }));
});
