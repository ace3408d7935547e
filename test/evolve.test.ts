import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase, parseDatabaseUrl } from '../src/load/database.js';
import { applyEvolution } from '../src/load/evolve-apply.js';
import { changesOf, planEvolution, type Statement } from '../src/load/evolve.js';
import { createRecordTable, migrate, migrationSource, MIGRATIONS_TABLE } from '../src/load/schema.js';
import { readTableState } from '../src/load/table-state.js';
import { Catalog } from '../src/schemas/catalog.js';
import { tempDir } from './helpers/cli.js';
import { dialects, type TestDatabase } from './helpers/databases.js';
import { catalog as bundled } from './helpers/types.js';

/**
 * Schema evolution on every dialect: what start-up does by itself (a column added), what it refuses (with the one
 * BI_SCHEMA line), what `schema apply` then does, and what nothing may do (cut values, invent them).
 */

const FILE = 'types/thing.json';
const CAUTION = 'this could lose or corrupt data, so start-up does not do it: `bucket-ingest schema check` shows the statements, ' +
  '`bucket-ingest schema apply` runs them (or change the schema back)';

type Props = Record<string, Record<string, unknown>>;
const BASE: Props = {
  id: { type: 'string', maxLength: 40 },
  n: { type: 'integer' },
  amount: { type: 'number' },
  note: { type: 'string' },
};

function thing(props: Props = BASE, more: { required?: string[]; key?: string[] } = {}): Catalog {
  return new Catalog([{
    file: FILE,
    doc: {
      $schema: 'https://json-schema.org/draft/2020-12/schema', title: 'thing', type: 'object', 'x-table': 'things',
      properties: props, required: more.required ?? ['id', 'n'], 'x-key': more.key ?? ['id'],
    },
  }]);
}

const row = (id: string, extra: Record<string, unknown> = {}) => ({
  id, n: 1, amount: 1.5, note: null, source_key: 'a.data', source_position: 0, loaded_at: 'l', ...extra,
});

async function refusedWith(db: Knex, catalog: Catalog): Promise<string> {
  try {
    await migrate(db, { catalog });
  } catch (err) {
    expect((err as { code?: string }).code).to.equal('BI_SCHEMA');
    return (err as Error).message;
  }
  throw new Error('start-up was not refused');
}

async function rows(db: Knex): Promise<Array<Record<string, unknown>>> {
  return (await db('things').select().orderBy('id')) as Array<Record<string, unknown>>;
}

describe('schema evolution', function () {
  this.timeout(60_000);
  for (const dialect of dialects()) {
    describe(dialect.name, () => {
      let created: TestDatabase | undefined;
      let db: Knex;
      let cleanup: () => Promise<void>;
      beforeEach(async () => {
        const t = await tempDir('bucket-ingest-evolve-');
        cleanup = t.cleanup;
        created = await dialect.create(t.dir);
        db = await openDatabase(parseDatabaseUrl(created.url, t.dir));
      });
      afterEach(async () => {
        await db?.destroy();
        await created?.drop();
        await cleanup();
      });

      it('the MacPaw tables the first version made (migration 001, with its source_key indexes) match the bundled schemas: nothing planned', async () => {
        await firstVersionTables(db);
        await migrate(db, { catalog: bundled });
        const plan = await planEvolution(db, bundled);
        expect(plan.tables.map((t) => [t.table, t.exists, t.changes, t.statements])).to.deep.equal([
          ['apps', true, [], []], ['movies', true, [], []], ['songs', true, [], []],
        ]);
      });

      it('adds an optional column and a defaulted one at start-up: old rows get NULL and the default, new rows their values', async () => {
        await migrate(db, { catalog: thing() });
        await db('things').insert([row('a'), row('b', { note: 'kept' })]);
        const evolved: string[] = [];
        const grown = thing({ ...BASE, colour: { type: 'string', maxLength: 20 }, tier: { type: 'string', enum: ['bronze', 'gold'], default: 'bronze' }, rank: { type: 'integer', default: 7 } });
        await migrate(db, { catalog: grown, onEvolved: (c) => evolved.push(`${c.table}.${c.column}: ${c.what}`) });
        expect(evolved).to.deep.equal([
          'things.colour: added (NULL in existing rows)',
          'things.tier: added ("bronze", its default, in existing rows)',
          'things.rank: added (7, its default, in existing rows)',
        ]);
        await db('things').insert(row('c', { colour: 'red', tier: 'gold', rank: 1 }));
        expect((await rows(db)).map((r) => [r.id, r.note, r.colour, r.tier, Number(r.rank)])).to.deep.equal([
          ['a', null, null, 'bronze', 7], ['b', 'kept', null, 'bronze', 7], ['c', null, 'red', 'gold', 1],
        ]);
        const state = await readTableState(db, 'things');
        expect(state?.columns.filter((c) => ['colour', 'tier', 'rank'].includes(c.name))).to.deep.equal([
          { name: 'colour', type: 'varchar(512)', nullable: true },
          { name: 'tier', type: 'varchar(512)', nullable: false },
          { name: 'rank', type: 'bigint', nullable: false },
        ]);
        expect(changesOf(await planEvolution(db, grown)), 'a second start changes nothing').to.deep.equal([]);
      });

      it('a property removed: refused, then schema apply drops the column and keeps the rest', async () => {
        await migrate(db, { catalog: thing() });
        await db('things').insert([row('a', { note: 'x' }), row('b', { note: 'y' }), row('c')]);
        const { note: _, ...less } = BASE;
        const smaller = thing(less);
        expect(await refusedWith(db, smaller)).to.equal(
          `${FILE}: table things, column note: removed from the schema (dropping it deletes its 2 stored value(s)); ${CAUTION}`);
        expect(await appliedStatements(db, smaller)).to.satisfy((s: Statement[]) => s.length > 0 && s.every((x) => !x.safe));
        await migrate(db, { catalog: smaller });
        expect((await rows(db)).map((r) => [r.id, 'note' in r, r.amount])).to.deep.equal([['a', false, 1.5], ['b', false, 1.5], ['c', false, 1.5]]);
      });

      it('a type narrowed: refused; applied when every stored value fits, blocked (apply too) when one does not', async () => {
        await migrate(db, { catalog: thing() });
        await db('things').insert([row('a', { n: 5 }), row('b', { n: -3 })]);
        const narrowed = thing({ ...BASE, n: { type: 'integer', 'x-column': 'integer', minimum: -100, maximum: 100 } });
        expect(await refusedWith(db, narrowed)).to.equal(`${FILE}: table things, column n: narrowed from bigint to integer; ${CAUTION}`);
        await appliedStatements(db, narrowed);
        await migrate(db, { catalog: narrowed });
        expect((await readTableState(db, 'things'))?.columns.find((c) => c.name === 'n')).to.deep.equal({ name: 'n', type: 'integer', nullable: false });
        expect((await rows(db)).map((r) => r.n)).to.deep.equal([5, -3]);

        // float → bigint with a fraction stored: no statement may round it.
        const whole = thing({ ...BASE, n: { type: 'integer', 'x-column': 'integer', minimum: -100, maximum: 100 }, amount: { type: 'integer' } });
        const blocked = `${FILE}: table things, column amount: narrowed from float to bigint, which the stored rows forbid: 2 stored value(s) are not safe integers; ` +
          'change the schema back, or the rows';
        expect(await refusedWith(db, whole)).to.equal(blocked);
        await expectApplyRefused(db, whole, blocked);
        expect((await rows(db)).map((r) => r.amount)).to.deep.equal([1.5, 1.5]);
      });

      it('a key changed: refused, then apply rebuilds the key index; duplicates under the new key block it', async () => {
        await migrate(db, { catalog: thing() });
        await db('things').insert([row('a', { n: 1 }), row('b', { n: 2 })]);
        const byN = thing(BASE, { key: ['id', 'n'] });
        expect(await refusedWith(db, byN)).to.equal(`${FILE}: table things, key: key changed from (id) to (id, n); ${CAUTION}`);
        await appliedStatements(db, byN);
        await migrate(db, { catalog: byN });
        expect((await readTableState(db, 'things'))?.key).to.deep.equal(['id', 'n']);
        // (id, n) → (n) with two rows of n = 2 under it.
        await db('things').insert(row('c', { n: 2 }));
        const onlyN = thing(BASE, { key: ['n'] });
        const line = `${FILE}: table things, key: key changed from (id, n) to (n), which the stored rows forbid: 1 key value(s) are held by more than one row under the new key; ` +
          'change the schema back, or the rows';
        expect(await refusedWith(db, onlyN)).to.equal(line);
        await expectApplyRefused(db, onlyN, line);
        expect((await rows(db)).length).to.equal(3);
      });

      it('a maxLength that makes a text column a VARCHAR: applied above the longest stored value, blocked below it (no value is cut)', async () => {
        await migrate(db, { catalog: thing() });
        await db('things').insert([row('a', { note: 'x'.repeat(600) }), row('b', { note: `${'😀'.repeat(300)}` })]);
        const bounded = thing({ ...BASE, note: { type: 'string', maxLength: 400 } });
        const line = `${FILE}: table things, column note: narrowed from text to varchar(512), which the stored rows forbid: 1 stored value(s) are longer than 512 characters; ` +
          'change the schema back, or the rows';
        // 300 astral characters are 600 UTF-16 units but 300 characters for the database: they fit, and are not counted.
        expect(await refusedWith(db, bounded)).to.equal(line);
        await expectApplyRefused(db, bounded, line);
        await db('things').where({ id: 'a' }).update({ note: 'x'.repeat(512) });
        expect(await refusedWith(db, bounded)).to.equal(`${FILE}: table things, column note: narrowed from text to varchar(512); ${CAUTION}`);
        await appliedStatements(db, bounded);
        await migrate(db, { catalog: bounded });
        expect((await rows(db)).map((r) => r.note)).to.deep.equal(['x'.repeat(512), '😀'.repeat(300)]);
      });

      it('a new required property without a default: blocked while rows exist (they would have no value); a default makes it an automatic add', async () => {
        await migrate(db, { catalog: thing() });
        await db('things').insert(row('a'));
        const needed = thing({ ...BASE, size: { type: 'integer' } }, { required: ['id', 'n', 'size'] });
        const line = `${FILE}: table things, column size: added, required and without a default, which the stored rows forbid: ` +
          'the 1 existing row(s) have no value for it (make it optional, or give it a default); change the schema back, or the rows';
        expect(await refusedWith(db, needed)).to.equal(line);
        await expectApplyRefused(db, needed, line);
        await migrate(db, { catalog: thing({ ...BASE, size: { type: 'integer', default: 0 } }) });
        expect((await rows(db)).map((r) => Number(r.size))).to.deep.equal([0]);
      });

      it('NULL made NOT NULL: applied when no NULL is stored, blocked when one is; NOT NULL relaxed at start-up', async () => {
        await migrate(db, { catalog: thing() });
        await db('things').insert([row('a', { note: 'x' }), row('b')]);
        const required = thing(BASE, { required: ['id', 'n', 'note'] });
        const line = `${FILE}: table things, column note: made NOT NULL, which the stored rows forbid: 1 stored row(s) hold NULL in it; change the schema back, or the rows`;
        expect(await refusedWith(db, required)).to.equal(line);
        await db('things').where({ id: 'b' }).update({ note: 'y' });
        expect(await refusedWith(db, required)).to.equal(`${FILE}: table things, column note: made NOT NULL; ${CAUTION}`);
        await appliedStatements(db, required);
        await migrate(db, { catalog: required });
        const evolved: string[] = [];
        await migrate(db, { catalog: thing(), onEvolved: (c) => evolved.push(`${c.column}: ${c.what}`) });
        expect(evolved).to.deep.equal(['note: made nullable']);
        expect((await rows(db)).map((r) => r.note)).to.deep.equal(['x', 'y']);
      });
    });
  }
});

/** Runs schema apply's plan, checks the table then matches, and returns the statements it ran. */
async function appliedStatements(db: Knex, catalog: Catalog): Promise<Statement[]> {
  const ran: Statement[] = [];
  const plan = await applyEvolution(db, catalog, (s) => ran.push(s));
  expect(ran).to.deep.equal(plan.tables.flatMap((t) => [...t.statements]));
  expect(changesOf(await planEvolution(db, catalog))).to.deep.equal([]);
  return ran;
}

async function expectApplyRefused(db: Knex, catalog: Catalog, line: string): Promise<void> {
  const before = await readTableState(db, 'things');
  const ran: Statement[] = [];
  const err = await applyEvolution(db, catalog, (s) => ran.push(s)).then(() => null, (e: Error) => e);
  expect(err?.message).to.equal(line);
  expect(ran).to.deep.equal([]);
  expect(await readTableState(db, 'things')).to.deep.equal(before);
}

/** The MacPaw tables as the first version's migrations 001–003 left them (see test/schema.test.ts). */
async function firstVersionTables(db: Knex): Promise<void> {
  for (let i = 0; i < 3; i++) await db.migrate.up({ migrationSource, tableName: MIGRATIONS_TABLE });
  for (const type of bundled.types) {
    await createRecordTable(db, type);
    await db.schema.alterTable(type.table, (t) => {
      t.index(['source_key'], `${type.table}_source_key`);
    });
  }
}

