import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { FILES_TABLE } from '../src/load/schema.js';
import { DbRegistry, deadLocalClaimers } from '../src/registry/db-registry.js';
import { LeaseLostError, sumEntries } from '../src/registry/types.js';
import type { RegistryEntry } from '../src/registry/entry.js';
import { LocalSource } from '../src/sources/local.js';
import { tempDir } from './helpers/cli.js';
import { entry } from './helpers/registry.js';
import { dialects, withMigratedDatabase } from './helpers/databases.js';

describe('database registry: claims of dead local workers', () => {
  const gone = spawnSync(process.execPath, ['-e', '0']).pid as number; // a pid that has exited
  it('frees claims of exited processes and of an earlier incarnation of this pid, under this host name only', () => {
    const me = `h1:${process.pid}:aaaaaa`;
    const claimers = [
      null, me, `h1:${gone}:bbbbbb`, `h1:${process.pid}:cccccc`, `h1:${process.ppid}:dddddd`, `h2:${gone}:eeeeee`, 'garbage',
    ];
    expect(deadLocalClaimers(claimers, me, 'h1')).to.deep.equal([`h1:${gone}:bbbbbb`, `h1:${process.pid}:cccccc`]);
  });
});

describe('database registry: locking a group', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: reads every claimed key of a group in one go, and refuses a group holding a key claimed away`, () => withMigratedDatabase(dialect, async (db) => {
      const worker = (host: string): DbRegistry => new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, host, bucket: 'file:///bucket/#files_list.data' });
      const a = worker('host-a');
      await a.refresh();
      // More keys than one lock query takes.
      const keys = Array.from({ length: 503 }, (_, i) => `k${String(i).padStart(4, '0')}.data`);
      expect(await a.claim(keys.map((key, index) => ({ key, index, reason: 'new' as const })))).to.deep.equal(new Set(keys));
      const shuffled = [...keys].reverse();
      const locked = await db.transaction((trx) => a.lockEntries(trx, shuffled));
      expect([...locked.keys()]).to.deep.equal(shuffled);
      expect([...locked.values()].every((e) => e === undefined)).to.equal(true); // claimed, never finished

      // a's lease on one key runs out and another worker takes it: a's group must not commit that key.
      const stolen = keys[321] as string;
      await db(FILES_TABLE).where({ key: stolen }).update({ lease_expires_at: 0 });
      const b = worker('host-b');
      await b.refresh();
      expect(await b.claim([{ key: keys[0] as string, index: 0, reason: 'new' }, { key: stolen, index: 321, reason: 'new' }]), 'a live claim is not taken')
        .to.deep.equal(new Set([stolen]));
      const refused = await db.transaction((trx) => a.lockEntries(trx, keys)).then(() => null, (err: unknown) => err);
      expect(refused).to.be.instanceOf(LeaseLostError);
      expect((refused as Error).message).to.contain(stolen);
      await a.close();
      await b.close();
    }));
  }
});

describe('database registry: lookups', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: reads only the keys asked for, never the whole table, and sees at once what other workers changed`, () => withMigratedDatabase(dialect, async (db) => {
      const queries: string[] = [];
      db.on('query', (q: { sql: string }) => queries.push(q.sql));
      const worker = (host: string): DbRegistry => new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, host, bucket: 'file:///bucket/#files_list.data' });
      const a = worker('host-a');
      const b = worker('host-b');
      for (const [index, key] of ['x.data', 'y.data'].entries()) {
        expect(await a.claim([{ key, index, reason: 'new' }])).to.deep.equal(new Set([key]));
        const done = entry({ updatedAt: `2026-01-01T00:00:0${index}.000Z` });
        await db.transaction(async (trx) => {
          await a.lockEntries(trx, [key]);
          await a.stage(trx, new Map([[key, done]]));
        });
        await a.committed(new Map([[key, done]]));
      }
      // A claimed key never finished has no entry.
      await a.claim([{ key: 'z.data', index: 2, reason: 'new' }]);

      queries.length = 0;
      await b.refresh();
      expect(queries.filter((q) => /^select/i.test(q) && !/distinct/i.test(q)), 'a refresh reads no entry').to.deep.equal([]);
      queries.length = 0;
      const found = await b.lookup(['y.data', 'z.data', 'nope.data']);
      expect([...found.keys()]).to.deep.equal(['y.data']);
      expect(found.get('y.data')).to.include({ status: 'done', updatedAt: '2026-01-01T00:00:01.000Z' });
      expect(queries, 'one read, of the keys asked for').to.have.length(1);
      expect(queries[0]).to.match(dialect.name === 'postgres'
        ? /^SELECT f\.\* FROM json_array_elements_text\(\$1::json\) AS k\("key"\) CROSS JOIN LATERAL \(SELECT .* WHERE "bucket" = \$2 AND "key" = k\."key" LIMIT 1\) AS f$/
        : /^select .* where .bucket. = \S+ and .key. in \(\S+, \S+, \S+\)$/i);

      // Marked by a: b sees it at its next lookup, with no refresh in between.
      expect(await a.markReprocess(['x.data'])).to.equal(1);
      expect((await b.lookup(['x.data'])).get('x.data')).to.include({ reprocess: true });
      await a.close();
      await b.close();
    }));
  }
});

describe('database registry: a large table', function () {
  this.timeout(120_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: pages through a table of more rows than one page takes, every row once in key order, keys of every shape`, () => withMigratedDatabase(dialect, async (db) => {
      const a = new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, host: 'h', bucket: 'file:///bucket/#files_list.data' });
      await a.refresh();
      // Claimed and staged through the registry once, then copied by SQL: 25,003 rows, across three pages.
      const key = 'k00000.data';
      await a.claim([{ key, index: 0, reason: 'new' }]);
      const done = entry({});
      await db.transaction(async (trx) => {
        await a.lockEntries(trx, [key]);
        await a.stage(trx, new Map([[key, done]]));
      });
      const [row] = (await db(FILES_TABLE).where({ key })) as Array<Record<string, unknown>>;
      const odd = ['a b.data', 'Z.data', 'é.data', '日本.data', 'k%2B.data'];
      const keys = [...Array.from({ length: 24_998 }, (_, i) => `k${String(i + 1).padStart(5, '0')}.data`), ...odd];
      for (let i = 0; i < keys.length; i += 500) {
        await db(FILES_TABLE).insert(keys.slice(i, i + 500).map((k, j) => ({ ...row, key: k, position: i + j + 1 })));
      }
      // Two rows only claimed (pending) and one failed: neither is counted as done.
      await db(FILES_TABLE).insert([{ ...row, key: 'p1.data', status: 'pending' }, { ...row, key: 'p2.data', status: 'pending' }]);
      await db(FILES_TABLE).where({ key: 'k12345.data' }).update({ status: 'failed' });
      const b = new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, host: 'h2', bucket: 'file:///bucket/#files_list.data' });
      expect(await b.count()).to.equal(keys.length + 1);
      expect(await b.count({ status: 'failed' })).to.equal(1);
      const seen: string[] = [];
      for await (const [k, e] of b.entries()) {
        seen.push(k);
        expect(e.status, k).to.equal(k === 'k12345.data' ? 'failed' : 'done');
      }
      // Every row once, in the table's own key order (its collation's: byte order but on a PostgreSQL not collated "C").
      expect([...seen].sort()).to.deep.equal([key, ...keys].sort());
      const byteOrder = ((await db(FILES_TABLE).select('key').whereIn('status', ['done', 'failed']).orderBy('key')) as Array<{ key: string }>).map((r) => r.key);
      expect(seen).to.deep.equal(byteOrder);
      // From a key on (the files API's cursor): the rest, in the same order.
      const rest: string[] = [];
      for await (const [k] of b.entries({ after: 'k20000.data' })) rest.push(k);
      expect(rest).to.deep.equal(byteOrder.slice(byteOrder.indexOf('k20000.data') + 1));
      // Summed by the database as the JSON registry sums its entries in memory.
      await db(FILES_TABLE).where('key', '<', 'k00100.data').update({ loaded: 7, rejected: 2, after_load_action: 'delete', after_load_state: 'pending' });
      await db(FILES_TABLE).where({ key: 'k00050.data' }).update({ after_load_state: 'done', done_at: '2027-01-01T00:00:00.000Z' });
      const read: RegistryEntry[] = [];
      for await (const [, e] of b.entries()) read.push(e);
      const totals = await b.totals();
      expect(totals).to.deep.equal(sumEntries(read));
      expect(totals.lastDoneAt).to.equal('2027-01-01T00:00:00.000Z');
      expect(totals.afterLoad.done).to.equal(1);
      expect(totals.afterLoad.pending).to.be.above(98);
      expect(totals.files).to.deep.equal({ total: keys.length + 1, done: keys.length, failed: 1 });
      const found = await b.lookup([key, ...odd, 'k10000.data', 'k20001.data', 'p1.data']);
      expect(found.size).to.equal(odd.length + 3);
      for (const e of found.values()) expect(e).to.include({ status: 'done' });
      await a.close();
      await b.close();
    }));
  }
});

describe('database registry: claims and entries in batches', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: claims only the keys nobody else holds or finished, and stages a group's entries exactly, or none`, () => withMigratedDatabase(dialect, async (db) => {
      const worker = (host: string): DbRegistry => new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, host, bucket: 'file:///bucket/#files_list.data' });
      const a = worker('host-a');
      const b = worker('host-b');
      await a.refresh();
      await b.refresh();
      const keys = Array.from({ length: 520 }, (_, i) => `f${String(i).padStart(4, '0')}.data`);
      const items = keys.map((key, index) => ({ key, index, reason: 'new' as const }));
      // b holds two keys live, and has finished a third since a planned: a gets all the others, and only those.
      const item = (i: number): (typeof items)[number] => items[i] as (typeof items)[number];
      expect(await b.claim([item(5), item(400)])).to.deep.equal(new Set([keys[5], keys[400]]));
      const finished = keys[7] as string;
      expect(await b.claim([item(7)])).to.deep.equal(new Set([finished]));
      await db.transaction(async (trx) => {
        await b.lockEntries(trx, [finished]);
        await b.stage(trx, new Map([[finished, entry()]]));
      });
      const mine = keys.filter((k) => k !== keys[5] && k !== keys[400] && k !== finished);
      expect(await a.claim(items)).to.deep.equal(new Set(mine));
      const rows = (await db(FILES_TABLE).select('key', 'claimed_by', 'position')) as Array<{ key: string; claimed_by: string | null; position: number | string }>;
      expect(rows.filter((r) => r.claimed_by === a.workerId).map((r) => r.key).sort()).to.deep.equal(mine);
      expect(rows.every((r) => Number(r.position) === keys.indexOf(r.key))).to.equal(true);

      // Every field of every entry lands as given, nulls, flags and large numbers included (more entries than one statement takes).
      const staged = new Map(mine.map((key, i) => [key, entry({
        status: i % 3 === 0 ? 'failed' : 'done', etag: i % 2 ? null : `"${key}"`, size: i % 5 ? 2 ** 40 + i : null, attempts: i, failures: i % 3,
        loaded: 1000 + i, rejected: i % 7, skipped: 3 * i, error: i % 3 === 0 ? `BI_FETCH: ${key}: it's "broken"` : null,
        updatedAt: `2026-02-01T00:00:00.${String(i % 1000).padStart(3, '0')}Z`, doneAt: i % 3 === 0 ? null : '2026-02-01T00:00:00.000Z',
        checkedAt: i % 4 ? '2026-02-02T00:00:00.000Z' : null, nextAttemptAt: i % 3 === 0 ? '2026-03-01T00:00:00.000Z' : null,
        ...(i % 10 === 0 ? { reprocess: true } : {}),
      })]));
      // One key of the group claimed away meanwhile: the group stages nothing.
      const lost = mine[300] as string;
      await db(FILES_TABLE).where({ key: lost }).update({ claimed_by: b.workerId });
      const refused = await db.transaction((trx) => a.stage(trx, staged)).then(() => null, (err: unknown) => err);
      expect(refused).to.be.instanceOf(LeaseLostError);
      expect((refused as Error).message).to.contain(lost);
      expect(await db(FILES_TABLE).whereIn('key', mine).andWhere('status', 'done').count({ n: '*' }).first()).to.satisfy((r: { n: number | string }) => Number(r.n) === 0);

      await db(FILES_TABLE).where({ key: lost }).update({ claimed_by: a.workerId });
      await db.transaction((trx) => a.stage(trx, staged));
      const c = worker('host-c');
      const read = await c.lookup([...staged.keys()]);
      for (const [key, e] of staged) expect(read.get(key), key).to.deep.equal(e);
      const left = (await db(FILES_TABLE).whereIn('key', mine).whereNotNull('claimed_by').count({ n: '*' }).first()) as { n: number | string };
      expect(Number(left.n), 'staging gives the claims back').to.equal(0);
      await a.close();
      await b.close();
    }));
  }
});

describe('database registry: a claim that fails halfway', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: what it took is given back by release, not left to its lease`, () => withMigratedDatabase(dialect, async (db) => {
      const a = new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, host: 'host-a', bucket: 'file:///bucket/#files_list.data' });
      await a.refresh();
      // A key done before, so the batch needs a second statement after the new keys' claim; that one fails.
      expect(await a.claim([{ key: 'old.data', index: 0, reason: 'new' }])).to.deep.equal(new Set(['old.data']));
      await db.transaction(async (trx) => {
        await a.lockEntries(trx, ['old.data']);
        await a.stage(trx, new Map([['old.data', entry({ status: 'failed' })]]));
      });
      await a.committed(new Map([['old.data', entry({ status: 'failed' })]]));
      (a as unknown as { claimPlanned(): Promise<boolean> }).claimPlanned = () => Promise.reject(new Error('connection lost'));
      const items = [{ key: 'new.data', index: 1, reason: 'new' as const }, { key: 'old.data', index: 0, reason: 'retry' as const, entry: entry({ status: 'failed' }) }];
      const err = await a.claim(items).then(() => null, (e: unknown) => e);
      expect((err as Error).message).to.equal('connection lost');
      expect((await db(FILES_TABLE).where({ key: 'new.data' }).first()).claimed_by, 'the new key was claimed').to.equal(a.workerId);
      await a.release(items.map((i) => i.key));
      const rows = (await db(FILES_TABLE).select('key', 'claimed_by')) as Array<{ key: string; claimed_by: string | null }>;
      expect(rows.filter((r) => r.claimed_by !== null)).to.deep.equal([]);
      await a.close();
    }));
  }
});

describe('database registry: the shared listing', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: is shared with workers started before it was made, never with a run started after it (which lists again and sees new files)`, () => withMigratedDatabase(dialect, async (db) => {
      const t = await tempDir('bucket-ingest-listing-');
      try {
        await writeFile(join(t.dir, 'files_list.data'), 'a.data\n');
        const source = new LocalSource(t.dir, 'files_list.data', 1 << 20);
        // Each as a process started at `startedAt`.
        const open = (host: string, startedAt = Date.now()): DbRegistry => new DbRegistry(db, {
          dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 60_000, host, bucket: `file://${t.dir}/#files_list.data`, startedAt,
        });
        const early = open('early');
        const first = open('first');
        expect(await first.listKeys(source, new AbortController().signal)).to.deep.equal(['a.data']);
        await writeFile(join(t.dir, 'files_list.data'), 'a.data\nb.data\n');
        // Started before the listing: shares it (one listing for workers started together).
        expect(await early.listKeys(source, new AbortController().signal)).to.deep.equal(['a.data']);
        // Started after it, within its freshness: lists again, so a file added meanwhile is not missed.
        const later = open('later', Date.now() + 1);
        expect(await later.listKeys(source, new AbortController().signal)).to.deep.equal(['a.data', 'b.data']);
      } finally {
        await t.cleanup();
      }
    }));
  }
});

describe('database registry: AFTER_LOAD state', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: the pending action is staged with the done entry, recorded done only for the version it was about, and read back by another worker`, () => withMigratedDatabase(dialect, async (db) => {
      const worker = (host: string): DbRegistry => new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, host, bucket: 'file:///bucket/#files_list.data' });
      const a = worker('host-a');
      await a.refresh();
      await a.claim([{ key: 'k.data', index: 0, reason: 'new' }]);
      const loaded = entry({ doneAt: '2026-01-01T00:00:00.000Z', afterLoad: { action: 'delete', state: 'pending', attempts: 0, error: null, nextAttemptAt: null, doneAt: null } });
      await db.transaction(async (trx) => {
        await a.lockEntries(trx, ['k.data']);
        await a.stage(trx, new Map([['k.data', loaded]]));
      });
      await a.committed(new Map([['k.data', loaded]]));
      const b = worker('host-b');
      const afterLoad = async (r: DbRegistry) => (await r.lookup(['k.data'])).get('k.data')?.afterLoad;
      expect(await afterLoad(b)).to.deep.equal(loaded.afterLoad);
      expect(await b.count({ afterLoadPending: true })).to.equal(1);

      // A failure, then the action about an older version (another doneAt): the second is not recorded.
      const failed = { ...loaded, updatedAt: '2026-01-01T00:01:00.000Z', afterLoad: { ...loaded.afterLoad!, attempts: 1, error: 'BI_AFTER_LOAD: x', nextAttemptAt: '2026-01-01T00:02:00.000Z' } };
      await b.recordAfterLoad(new Map([['k.data', failed]]));
      await b.recordAfterLoad(new Map([['k.data', { ...failed, doneAt: '2025-12-31T00:00:00.000Z', afterLoad: { ...failed.afterLoad, state: 'done' as const } }]]));
      expect(await afterLoad(a)).to.deep.equal(failed.afterLoad);
      const done = { ...failed, updatedAt: '2026-01-01T00:03:00.000Z', afterLoad: { ...failed.afterLoad, state: 'done' as const, attempts: 2, error: null, nextAttemptAt: null, doneAt: '2026-01-01T00:03:00.000Z' } };
      await a.recordAfterLoad(new Map([['k.data', done]]));
      expect(await afterLoad(b)).to.deep.equal(done.afterLoad);
      expect(await b.count({ afterLoadPending: true })).to.equal(0);
      // Done is done: a late failure report from a slower worker changes nothing.
      await b.recordAfterLoad(new Map([['k.data', failed]]));
      expect((await afterLoad(a))?.state).to.equal('done');
      await a.close();
      await b.close();
    }));
  }
});
