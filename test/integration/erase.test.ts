import { join } from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { hashPii } from '../../src/records/pii.js';
import { erase, erasureTarget } from '../../src/load/erase.js';
import { erasuresIn } from '../../src/load/erasures.js';
import { ERASURES_TABLE, REJECTED_TABLE } from '../../src/load/schema.js';
import { Catalog } from '../../src/schemas/catalog.js';
import { events, runCli } from '../helpers/cli.js';
import { dialects, dump, withMigratedDatabase, type Dialect, type TestDatabase } from '../helpers/databases.js';
import { schemaSuite, type SchemaSetup } from '../helpers/schema-suite.js';

/**
 * `bucket-ingest erase` on every dialect: exactly the rows and stored rejections carrying the values go, in one
 * transaction, the counts are printed (never a PII value), and a reload of the same files does not bring them back.
 */
const CUSTOMER_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'customer',
  type: 'object',
  'x-table': 'customers',
  properties: {
    customer_id: { type: 'string', maxLength: 36 },
    email: { type: 'string', maxLength: 255, 'x-pii': 'hash' },
    city: { type: 'string', maxLength: 100 },
    age: { type: 'integer', minimum: 0 },
  },
  required: ['customer_id', 'email', 'city'],
  'x-key': ['customer_id'],
};
const KEY = 'test-pii-key-not-a-secret';
const catalog = new Catalog([{ file: 'types/customer.json', doc: CUSTOMER_SCHEMA }], { piiKey: KEY });
const customer = (id: string, city: string, extra: Record<string, unknown> = {}) => ({ type: 'customer', data: { customer_id: id, email: `${id}@example.com`, city, ...extra } });

const FILES: Record<string, string> = {
  'a.data': JSON.stringify([
    customer('c1', 'Paris'), customer('c2', 'Lyon'), customer('c3', 'Paris', { age: 40 }),
    customer('c4', 'Paris', { age: -1 }), customer('c5', 'Rome', { age: -1 }),
  ]),
  // c2 again, now in Paris: the later file's version of the key carries the erased value.
  'b.data': JSON.stringify([customer('c6', 'Paris'), customer('c7', 'Oslo'), customer('c2', 'Paris'), customer('c8', 'Paris', { age: 'old' })]),
};

const cities = async (db: TestDatabase): Promise<Record<string, unknown>> => {
  const d = await dump(db.knex(), ['customers', REJECTED_TABLE]);
  return {
    customers: (d.customers ?? []).map((r) => `${String(r.customer_id)}:${String(r.city)}`),
    rejected: (d[REJECTED_TABLE] ?? []).map((r) => `${String(r.source_key)}#${String(r.record_index)}`),
  };
};

describe('bucket-ingest erase (integration)', function () {
  this.timeout(180_000);
  const suite = schemaSuite(FILES, { 'customer.json': CUSTOMER_SCHEMA });

  async function setUp(dialect: Dialect): Promise<SchemaSetup> {
    const made = await suite.setUp((d) => dialect.create(d));
    return { ...made, env: { ...made.env, PII_HASH_KEY: KEY, DECODE_THREADS: '0' } };
  }

  for (const dialect of dialects()) {
    it(`${dialect.name}: erases exactly the rows and rejections holding a value of a field, lists it, and a reload does not bring them back`, async () => {
      const { dir, db, env } = await setUp(dialect);
      const run = await runCli(['run', '--once'], { cwd: dir, env });
      expect(run.code, run.stderr + run.stdout).to.equal(0);
      expect(await cities(db)).to.deep.equal({
        customers: ['c1:Paris', 'c2:Paris', 'c3:Paris', 'c6:Paris', 'c7:Oslo'],
        rejected: ['a.data#3', 'a.data#4', 'b.data#3'],
      });

      const erased = await runCli(['erase', '--type', 'customer', '--field', 'city', 'Paris', 'Nowhere'], { cwd: dir, env });
      expect(erased.code, erased.stderr + erased.stdout).to.equal(0);
      expect(erased.stdout).to.contain('erased 2 value(s) of customer.city:');
      expect(erased.stdout).to.contain('customers: 4 row(s) deleted');
      expect(erased.stdout).to.contain('rejected_records: 2 row(s) deleted');
      expect(erased.stdout).to.contain('erasures: 2 value(s) added, 0 already listed');
      expect(erased.stdout).to.not.contain('Paris');
      const after = { customers: ['c7:Oslo'], rejected: ['a.data#4'] };
      expect(await cities(db)).to.deep.equal(after);
      const listed = (await dump(db.knex(), [ERASURES_TABLE]))[ERASURES_TABLE];
      expect(listed?.map((r) => [r.type, r.field, r.value, r.pii])).to.deep.equal([['customer', 'city', 'Nowhere', 0], ['customer', 'city', 'Paris', 0]]);

      // The same files again, the registry's way (reprocess, then a cycle) and with --force: the erased records are
      // not stored. c2 of a.data (Lyon) is now the latest version of its key left, as a load without the erased
      // records gives, whichever way and order the files load.
      const reloaded = { customers: ['c2:Lyon', 'c7:Oslo'], rejected: ['a.data#4'] };
      expect((await runCli(['reprocess', 'a.data'], { cwd: dir, env })).code).to.equal(0);
      const again = await runCli(['run', '--once'], { cwd: dir, env });
      expect(again.code, again.stderr + again.stdout).to.equal(0);
      expect(events(again.stdout).filter((e) => e.event === 'RecordsErased').map((e) => [e.key, e.erased])).to.deep.equal([['a.data', 3]]);
      expect(events(again.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 1, recordsLoaded: 1, recordsRejected: 1 });
      expect(await cities(db)).to.deep.equal(reloaded);
      const forced = await runCli(['run', '--once', '--force'], { cwd: dir, env });
      expect(forced.code, forced.stderr + forced.stdout).to.equal(0);
      expect(events(forced.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 2, recordsLoaded: 2, recordsRejected: 1 });
      expect(events(forced.stdout).filter((e) => e.event === 'RecordsErased').map((e) => [e.key, e.erased]).sort()).to.deep.equal([['a.data', 3], ['b.data', 3]]);
      expect(await cities(db)).to.deep.equal(reloaded);

      const twice = await runCli(['erase', '--type', 'customer', '--field', 'city', 'Paris'], { cwd: dir, env });
      expect(twice.stdout, twice.stderr).to.contain('customers: 0 row(s) deleted');
      expect(twice.stdout).to.contain('erasures: 0 value(s) added, 1 already listed');
    });

    it(`${dialect.name}: a failure midway leaves nothing erased (one transaction)`, async () => {
      const { dir, db, env } = await setUp(dialect);
      expect((await runCli(['run', '--once'], { cwd: dir, env })).code).to.equal(0);
      const before = await cities(db);
      // The rows are deleted first, then the stored rejections are read: without them, the erase fails after its first delete.
      const k = db.knex();
      await k.schema.renameTable(REJECTED_TABLE, 'rejected_elsewhere');
      const failed = await runCli(['erase', '--type', 'customer', '--field', 'city', 'Paris'], { cwd: dir, env });
      await k.schema.renameTable('rejected_elsewhere', REJECTED_TABLE);
      const listed = await k(ERASURES_TABLE).count({ n: '*' });
      await k.destroy();
      expect(failed.code).to.equal(2);
      expect(failed.stderr).to.match(/^bucket-ingest: BI_DATABASE: cannot erase in .*rejected_records/);
      expect(await cities(db)).to.deep.equal(before);
      expect(Number(listed[0]?.n)).to.equal(0);
    });

    it(`${dialect.name}: a PII field is erased by the HMAC of each value, which is all the list and the output ever hold`, async () => {
      await withMigratedDatabase(dialect, async (k) => {
        const ann = hashPii(KEY, 'ann@example.com');
        const bob = hashPii(KEY, 'bob@example.com');
        const row = (id: string, email: string) => ({ customer_id: id, email, city: 'Paris', age: null, source_key: 'a.data', source_position: 0, loaded_at: '2024-01-01T00:00:00.000Z' });
        // What a load with x-pii hashing stores: the hash in the column and in the raw JSON of a rejection.
        await k('customers').insert([row('c1', ann), row('c2', bob), row('c3', ann)]);
        const rejection = (i: number, email: string) => ({
          bucket: 'b', source_key: 'a.data', record_index: i, type: 'customer', reason: 'age: expected NonNegativeSafeInteger, got -1',
          raw: JSON.stringify({ type: 'customer', data: { customer_id: `r${i}`, email, city: 'Rome', age: -1 } }), rejected_at: '2024-01-01T00:00:00.000Z',
        });
        // The last: a rejection stored before the field was declared personal holds the value itself.
        await k(REJECTED_TABLE).insert([rejection(0, ann), rejection(1, bob), rejection(2, 'ann@example.com')]);
        const target = erasureTarget(catalog, 'customer', 'email', ['ann@example.com'], KEY);
        expect(target.listed).to.deep.equal([ann]);
        const result = await erase(k, target);
        expect(result).to.deep.include({ table: 'customers', rows: 2, rejected: 2, added: 1 });
        expect((await k('customers').select('customer_id')).map((r: { customer_id: string }) => r.customer_id)).to.deep.equal(['c2']);
        expect((await k(REJECTED_TABLE).select('record_index')).map((r: { record_index: number }) => r.record_index)).to.deep.equal([1]);
        const listed = (await k(ERASURES_TABLE).select('value', 'pii')) as Array<{ value: string; pii: unknown }>;
        expect(listed.map((r) => [r.value, Boolean(r.pii)])).to.deep.equal([[ann, true]]);
        // A later load of a record carrying the hashed value stores neither its row nor its rejection.
        const list = await k.transaction((trx) => erasuresIn(trx, k));
        const type = catalog.typeFor('customer');
        if (!type) throw new Error('no customer type');
        const applied = list.apply({
          rows: new Map([[type, [ 'c9', ann, 'Oslo', null, 'c10', bob, 'Oslo', null ]]]),
          rejections: [{ recordIndex: 0, type: 'customer', reason: 'x', raw: rejection(0, ann).raw }, { recordIndex: 1, type: 'customer', reason: 'x', raw: rejection(1, bob).raw }],
          loaded: 2, skipped: 0,
        });
        expect(applied.erased).to.equal(2);
        expect(applied.file.rows.get(type)).to.deep.equal(['c10', bob, 'Oslo', null]);
        expect(applied.file.rejections.map((r) => r.recordIndex)).to.deep.equal([1]);
        expect(applied.file.loaded).to.equal(1);
      }, catalog);
    });
  }

  it('the output of erasing a PII field holds neither the values nor the key', async () => {
    const { dir, db, env } = await setUp(dialects()[0] as Dialect);
    expect((await runCli(['run', '--once'], { cwd: dir, env })).code).to.equal(0);
    const erased = await runCli(['erase', '--type', 'customer', '--field', 'email', 'c1@example.com', 'c4@example.com'], { cwd: dir, env });
    expect(erased.code, erased.stderr).to.equal(0);
    expect(erased.stdout).to.contain('erased 2 value(s) of customer.email (x-pii: matched by the HMAC of each value):');
    expect(erased.stdout + erased.stderr).to.not.match(/c1@example|c4@example/);
    expect(erased.stdout + erased.stderr).to.not.contain(KEY);
    expect(erased.stdout).to.contain('erasures: 2 value(s) added');
    const listed = (await dump(db.knex(), [ERASURES_TABLE]))[ERASURES_TABLE] ?? [];
    expect(listed.map((r) => r.value).sort()).to.deep.equal([hashPii(KEY, 'c1@example.com'), hashPii(KEY, 'c4@example.com')].sort());
  });

  it('refuses an unknown type, a field that is not a column, a value the column cannot hold, and a PII field without PII_HASH_KEY, erasing nothing', async () => {
    const { dir, db, env } = await setUp(dialects()[0] as Dialect);
    expect((await runCli(['run', '--once'], { cwd: dir, env })).code).to.equal(0);
    const before = await cities(db);
    const refused = async (args: string[], extra: Record<string, string> = {}): Promise<string> => {
      const r = await runCli(['erase', ...args], { cwd: dir, env: { ...env, ...extra } });
      expect(r.code, r.stdout).to.equal(2);
      expect(r.stdout).to.equal('');
      return r.stderr.trim();
    };
    expect(await refused(['--type', 'custmer', '--field', 'city', 'Paris'])).to.equal(
      'bucket-ingest: BI_USAGE: --type custmer: no record type of that name in SCHEMAS; did you mean customer? (types: customer)');
    expect(await refused(['--type', 'customer', '--field', 'ctiy', 'Paris'])).to.equal(
      `bucket-ingest: BI_USAGE: --field ctiy: not a column of customer (${join(dir, 'types', 'customer.json')}); did you mean city? (columns: customer_id, email, city, age)`);
    expect(await refused(['--type', 'customer', '--field', 'age', 'forty'])).to.equal('bucket-ingest: BI_USAGE: --field age holds integers: got "forty"');
    const noKey = await refused(['--type', 'customer', '--field', 'email', 'c1@example.com'], { PII_HASH_KEY: '' });
    // Refused when the configuration is read, as every command is with such a schema and no key.
    expect(noKey).to.match(/^bucket-ingest: BI_CONFIG: PII_HASH_KEY is not set, and \S+customer\.json at #\/properties\/email\/x-pii declares "email" personal data/);
    expect(noKey).to.not.contain('c1@example.com');
    expect(await refused(['--type', 'customer', '--field', 'city'])).to.match(/^bucket-ingest: BI_USAGE: Not enough non-option arguments/);
    expect(await cities(db)).to.deep.equal(before);
  });
});

/**
 * An erasure made while a load is in flight: the loader's transaction reads the list under a shared lock that erase
 * takes exclusively, so erase waits for the commit and then deletes what it wrote (without the lock, erase would
 * finish first and the commit would store a row carrying the erased value). PostgreSQL and MySQL: SQLite has a
 * single writer, and a transaction that read the list before an erasure cannot write after it.
 */
describe('erase next to a commit in flight', function () {
  this.timeout(60_000);
  for (const dialect of dialects().filter((d) => d.name !== 'sqlite')) {
    it(`${dialect.name}: waits for the loading transaction, then erases what it wrote`, async () => {
      await withMigratedDatabase(dialect, async (k) => {
        let commit!: () => void;
        const released = new Promise<void>((resolve) => (commit = resolve));
        let read!: () => void;
        const listRead = new Promise<void>((resolve) => (read = resolve));
        const loading = k.transaction(async (trx) => {
          const list = await erasuresIn(trx, k);
          expect(list.size).to.equal(0);
          read();
          await released;
          await trx('customers').insert({ customer_id: 'c1', email: 'e', city: 'Paris', age: null, source_key: 'a.data', source_position: 0, loaded_at: 'x' });
        });
        await listRead;
        const erasing = erase(k, erasureTarget(catalog, 'customer', 'city', ['Paris'], KEY));
        try {
          await waitUntilBlocked(k, dialect.name);
        } finally {
          commit(); // whatever happened: a transaction left open would hold its connection, and the database, for ever
        }
        await loading;
        expect(await erasing).to.deep.include({ rows: 1, added: 1 });
        const left = (await k('customers').count({ n: '*' })) as Array<{ n: number | string }>;
        expect(Number(left[0]?.n)).to.equal(0);
      }, catalog);
    });
  }
});

/** Resolves once a session of this test's database waits for a lock (the erase, here); fails after 30 s of none. */
async function waitUntilBlocked(k: Knex, dialect: string): Promise<void> {
  const sql = dialect === 'postgres'
    ? "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    // This test's database only (the server is shared with other suites). MariaDB's innodb_trx does not always list a
    // transaction waiting in its first statement, so: the erase's locking read still running a second after it began.
    : "SELECT count(*) AS n FROM information_schema.processlist WHERE db = DATABASE() AND info LIKE '%for update%' AND time >= 1";
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const result = (await k.raw(sql)) as { rows?: Array<{ n: unknown }> } | Array<Array<{ n: unknown }>>;
    const rows = Array.isArray(result) ? result[0] : result.rows;
    if (Number(rows?.[0]?.n ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('erase never waited for the loading transaction: it does not take the lock');
}
