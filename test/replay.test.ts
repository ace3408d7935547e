import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { replayRejections, type ReplayReport } from '../src/load/replay.js';
import { FILES_TABLE, REJECTED_TABLE } from '../src/load/schema.js';
import { replaceRejections, UpsertCompiler, upsertRows } from '../src/load/upsert.js';
import type { DatabaseTarget } from '../src/load/database.js';
import { validateRecords } from '../src/validate.js';
import { dialects, withMigratedDatabase } from './helpers/databases.js';
import { catalog, song } from './helpers/types.js';
import { hashPii } from '../src/records/pii.js';
import { Catalog } from '../src/schemas/catalog.js';

/**
 * The replay of stored rejections (src/load/replay.ts), driven directly: where a rejection stored before positions
 * were gets its file's place, what is left when the order within a file is not known, and a load of the same file
 * committing while a replay reads its rejections.
 */

const BUCKET = 'b';
const record = (title: string, release: string) => ({ type: 'song', data: { artist_name: 'x', title, year: 0, release } });

/** Stores a rejection as an older schema would have: `position` null for one stored before migration 007. */
async function reject(db: Knex, sourceKey: string, position: number | null, raw: unknown, at = 'at-0', index = 0): Promise<void> {
  await db(REJECTED_TABLE).insert({
    bucket: BUCKET, source_key: sourceKey, source_position: position, record_index: index, type: 'song', reason: 'year: old rule', raw: JSON.stringify(raw), rejected_at: at,
  });
}

/** Loads `records` as the daemon loads a file (rows with its key and position, at `at`), in `db`'s own transaction. */
async function load(db: Knex, target: DatabaseTarget, sourceKey: string, position: number, records: unknown[], at = 'at-0'): Promise<void> {
  const file = validateRecords(catalog, records, at);
  await db.transaction(async (trx) => {
    await replaceRejections(trx, BUCKET, { sourceKey, position }, file.rejections, at);
    for (const [type, cells] of file.rows) await upsertRows(trx, new UpsertCompiler(target.dialect), type, cells, { sourceKey, position, loadedAt: at });
  });
}

const songs = async (db: Knex): Promise<Array<Record<string, unknown>>> =>
  ((await db(song.table).select('title', 'release', 'source_key', 'source_position').orderBy('title')) as Array<Record<string, unknown>>)
    .map((r) => ({ ...r, source_position: Number(r.source_position) }));
const rejections = async (db: Knex): Promise<string[]> => ((await db(REJECTED_TABLE).select('source_key').orderBy('id')) as Array<{ source_key: string }>).map((r) => r.source_key);

function replay(db: Knex, target: DatabaseTarget, extra: { now?: () => Date; batchSize?: number } = {}): Promise<ReplayReport> {
  return replayRejections({ db, dialect: target.dialect, catalog, bucket: BUCKET, ...extra });
}

/** A type with personal data, strict (`age` at least 18) and then relaxed: the schema fix a replay follows. */
const PII_KEY = 'replay-test-key';
const person = (minimum: number): Catalog => new Catalog([{
  file: 'types/person.json',
  doc: {
    title: 'person', type: 'object', 'x-table': 'people',
    properties: { id: { type: 'string', maxLength: 36 }, email: { type: 'string', format: 'email', maxLength: 254, 'x-pii': 'hash' }, age: { type: 'integer', minimum } },
    required: ['id', 'email', 'age'], 'x-key': ['id'],
  },
}], { piiKey: PII_KEY });

describe('replay of rejections', function () {
  this.timeout(60_000);

  for (const dialect of dialects()) {
    it(`${dialect.name}: personal data: a record rejected for another field loads with its stored hash (not hashed again); one whose personal value failed stays`, async () => {
      const strict = person(18);
      const relaxed = person(0);
      await withMigratedDatabase(dialect, async (db, target) => {
        const file = validateRecords(strict, [
          { type: 'person', data: { id: 'p1', email: 'ann@example.com', age: 16 } },
          { type: 'person', data: { id: 'p2', email: 'not an address', age: 30 } },
        ], 'at-0');
        await db.transaction((trx) => replaceRejections(trx, BUCKET, { sourceKey: 'a.data', position: 0 }, file.rejections, 'at-0'));
        expect(JSON.stringify(await db(REJECTED_TABLE).select('raw'))).to.not.contain('ann@example.com');
        const report = await replayRejections({ db, dialect: target.dialect, catalog: relaxed, bucket: BUCKET });
        expect(report.groups.map((g) => [g.loaded, g.stillRejected])).to.have.deep.members([[1, 0], [0, 1]]);
        expect(report.groups.flatMap((g) => g.reasonsNow)).to.deep.equal(['email is personal data, stored only as its hash: it cannot be validated again']);
        const rows = (await db('people').select('id', 'email', 'age')) as Array<Record<string, unknown>>;
        expect(rows.map((r) => ({ ...r, age: Number(r.age) }))).to.deep.equal([{ id: 'p1', email: hashPii(PII_KEY, 'ann@example.com'), age: 16 }]);
        expect((await db(REJECTED_TABLE).select('record_index')).map((r: { record_index: number }) => r.record_index)).to.deep.equal([1]);
      }, relaxed);
    });
  }

  for (const dialect of dialects()) {
    describe(dialect.name, () => {
      it("takes the position of a rejection stored without one from the registry, else from its file's rows, else leaves it and says so", () => withMigratedDatabase(dialect, async (db, target) => {
        await db(FILES_TABLE).insert({ bucket: BUCKET, key: 'registered.data', position: 5, status: 'done', first_seen_at: 'x', updated_at: 'x' });
        await load(db, target, 'loaded.data', 3, [record('loaded row', 'r')]);
        // Later files hold the keys: positions 5 and 3 decide whether the replayed record overwrites them.
        await load(db, target, 'four.data', 4, [record('a', 'from four'), record('b', 'from four')]);
        await reject(db, 'registered.data', null, record('a', 'from registered'));
        await reject(db, 'loaded.data', null, record('b', 'from loaded'));
        await reject(db, 'unknown.data', null, record('c', 'from unknown'));
        const report = await replay(db, target, { batchSize: 2 });
        expect(report.groups).to.deep.equal([{ type: 'song', reason: 'year: old rule', loaded: 1, superseded: 1, stillRejected: 0, reasonsNow: [], skipped: 1, replaced: 0 }]);
        expect(report.skipped).to.deep.equal([{ sourceKey: 'unknown.data', recordIndex: 0, why: 'no-position' }]);
        expect(await songs(db)).to.deep.equal([
          { title: 'a', release: 'from registered', source_key: 'registered.data', source_position: 5 },
          { title: 'b', release: 'from four', source_key: 'four.data', source_position: 4 },
          { title: 'loaded row', release: 'r', source_key: 'loaded.data', source_position: 3 },
        ]);
        expect(await rejections(db)).to.deep.equal(['unknown.data']);
      }));

      it('leaves a record whose key a record of the same load of its file holds (their order is not stored), and replays one of an earlier load', () => withMigratedDatabase(dialect, async (db, target) => {
        await load(db, target, 'f.data', 2, [record('same load', 'valid one'), record('earlier load', 'valid one')], 'at-2');
        await reject(db, 'f.data', 2, record('same load', 'rejected one'), 'at-2', 1);
        await reject(db, 'f.data', 2, record('earlier load', 'rejected one'), 'at-1', 1);
        const report = await replay(db, target);
        expect(report.skipped).to.deep.equal([{ sourceKey: 'f.data', recordIndex: 1, why: 'same-file' }]);
        expect((await songs(db)).map((r) => r.release)).to.deep.equal(['rejected one', 'valid one']);
        expect(await rejections(db)).to.have.length(1);
      }));

      it('of two rejections with one key, the later file wins, and of one file the later record, whatever the batches', () => withMigratedDatabase(dialect, async (db, target) => {
        await reject(db, 'late.data', 7, record('k', 'late'));
        await reject(db, 'early.data', 1, record('k', 'early'));
        await reject(db, 'late.data', 7, record('j', 'late, first'), 'at-0', 0);
        await reject(db, 'late.data', 7, record('j', 'late, second'), 'at-0', 1);
        for (const batchSize of [1, 1000]) {
          await db(song.table).delete();
          const stored = (await db(REJECTED_TABLE).select()) as Array<Record<string, unknown>>;
          await replay(db, target, { batchSize });
          expect((await songs(db)).map((r) => r.release), `batches of ${batchSize}`).to.deep.equal(['late, second', 'late']);
          expect(await rejections(db)).to.deep.equal([]);
          await db(REJECTED_TABLE).insert(stored.map(({ id: _, ...r }) => r));
        }
      }));

      it('--reason: a glob whose * matches any text of the stored reason, slashes of dates included; --type: one type', () => withMigratedDatabase(dialect, async (db, target) => {
        await reject(db, 'f.data', 1, record('a', 'r'));
        await db(REJECTED_TABLE).update({ reason: 'release_date: expected CalendarDate(YYYY-MM-DD), got "03/12/2019"' });
        await reject(db, 'f.data', 1, record('b', 'r'));
        const byReason = await replayRejections({ db, dialect: target.dialect, catalog, bucket: BUCKET, reason: 'release_date: *' });
        expect(byReason.matched).to.equal(1);
        expect((await songs(db)).map((r) => r.title)).to.deep.equal(['a']);
        const byType = await replayRejections({ db, dialect: target.dialect, catalog, bucket: BUCKET, type: 'movie' });
        expect(byType.matched).to.equal(0);
        expect(await rejections(db)).to.have.length(1);
      }));

      it('a load of the same file committing while the replay reads its rejections wins: the replay writes none of the stale ones', () => withMigratedDatabase(dialect, async (db, target) => {
        await reject(db, 'f.data', 2, record('k', 'stale rejection'));
        // The daemon's load of f.data, on a connection of its own, holding its transaction open.
        const other = knexFactory({ ...db.client.config, pool: { min: 1, max: 1 } } as Knex.Config);
        let release!: () => void;
        const released = new Promise<void>((r) => (release = r));
        let loading!: Promise<void>;
        const started = new Promise<void>((ready) => {
          loading = other.transaction(async (trx) => {
            const file = validateRecords(catalog, [record('k', 'the file as loaded now')], 'at-9');
            await replaceRejections(trx, BUCKET, { sourceKey: 'f.data', position: 2 }, [], 'at-9');
            for (const [type, cells] of file.rows) await upsertRows(trx, new UpsertCompiler(target.dialect), type, cells, { sourceKey: 'f.data', position: 2, loadedAt: 'at-9' });
            ready();
            await released;
          });
        });
        try {
          await started;
          // The replay has read the stale rejection (`now` is asked once a page is read): let the load commit.
          const report = await replay(db, target, { now: () => (release(), new Date()) });
          await loading;
          expect(report.replacedMeanwhile).to.equal(1);
          expect(report.groups[0]).to.include({ loaded: 0, superseded: 0, replaced: 1 });
          expect((await songs(db)).map((r) => r.release)).to.deep.equal(['the file as loaded now']);
          expect(await rejections(db)).to.deep.equal([]);
        } finally {
          release();
          await loading.catch(() => undefined);
          await other.destroy();
        }
      }));
    });
  }
});
