import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { FILES_TABLE } from '../src/load/schema.js';
import { DbRegistry, deadLocalClaimers } from '../src/registry/db-registry.js';
import { LeaseLostError } from '../src/registry/types.js';
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
      const worker = (host: string): DbRegistry => new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, host });
      const a = worker('host-a');
      await a.refresh();
      // More keys than one lock query takes.
      const keys = Array.from({ length: 503 }, (_, i) => `k${String(i).padStart(4, '0')}.data`);
      for (const [index, key] of keys.entries()) expect(await a.claim({ key, index, reason: 'new' })).to.equal(true);
      const shuffled = [...keys].reverse();
      const locked = await db.transaction((trx) => a.lockEntries(trx, shuffled));
      expect([...locked.keys()]).to.deep.equal(shuffled);
      expect([...locked.values()].every((e) => e === undefined)).to.equal(true); // claimed, never finished

      // a's lease on one key runs out and another worker takes it: a's group must not commit that key.
      const stolen = keys[321] as string;
      await db(FILES_TABLE).where({ key: stolen }).update({ lease_expires_at: 0 });
      const b = worker('host-b');
      await b.refresh();
      expect(await b.claim({ key: keys[0] as string, index: 0, reason: 'new' }), 'a live claim is not taken').to.equal(false);
      expect(await b.claim({ key: stolen, index: 321, reason: 'new' })).to.equal(true);
      const refused = await db.transaction((trx) => a.lockEntries(trx, keys)).then(() => null, (err: unknown) => err);
      expect(refused).to.be.instanceOf(LeaseLostError);
      expect((refused as Error).message).to.contain(stolen);
      await a.close();
      await b.close();
    }));
  }
});

describe('database registry: refresh', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    it(`${dialect.name}: reads the whole table only when something changed, and sees what other workers changed`, () => withMigratedDatabase(dialect, async (db) => {
      const fullReads: string[] = [];
      db.on('query', (q: { sql: string }) => {
        if (/^select \* from .ingest_files.$/i.test(q.sql)) fullReads.push(q.sql);
      });
      const worker = (host: string): DbRegistry => new DbRegistry(db, { dialect: dialect.name, leaseMs: 60_000, listingFreshMs: 0, host });
      const a = worker('host-a');
      await a.refresh();
      for (const [index, key] of ['x.data', 'y.data'].entries()) {
        expect(await a.claim({ key, index, reason: 'new' })).to.equal(true);
        const done = entry({ updatedAt: `2026-01-01T00:00:0${index}.000Z` });
        await db.transaction(async (trx) => {
          await a.lockEntries(trx, [key]);
          await a.stage(trx, key, done);
        });
        await a.committed(new Map([[key, done]]));
      }
      const b = worker('host-b');
      await b.refresh();
      expect(b.get('y.data')).to.include({ status: 'done' });

      fullReads.length = 0;
      await b.refresh();
      await b.refresh();
      expect(fullReads, 'no change: no full read').to.have.length(0);

      expect(await a.markReprocess(['x.data'])).to.equal(1);
      await b.refresh();
      expect(fullReads).to.have.length(1);
      expect(b.get('x.data')).to.include({ reprocess: true });
      await a.close();
      await b.close();
    }));
  }
});
