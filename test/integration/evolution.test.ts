import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { events, runCli, tempDir } from '../helpers/cli.js';
import { dialects, dump, type TestDatabase } from '../helpers/databases.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

/**
 * A schema that changes while its table holds rows, through the daemon and the commands: a property added is a
 * column the next start adds (old rows NULL or the default); a property removed stops the start with one BI_SCHEMA
 * line until `schema apply` runs what `schema check` printed (check itself writes nothing).
 */
const schema = (properties: Record<string, unknown>) => ({
  $schema: 'https://json-schema.org/draft/2020-12/schema', title: 'thing', type: 'object', 'x-table': 'things',
  properties, required: ['code', 'n'], 'x-key': ['code'],
});
const BASE = { code: { type: 'string', maxLength: 40 }, n: { type: 'integer' }, note: { type: 'string' } };
const GROWN = { ...BASE, colour: { type: 'string', maxLength: 20 }, tier: { type: 'string', enum: ['bronze', 'gold'], default: 'bronze' } };
const { note: _, ...SHRUNK } = GROWN;

const thing = (code: string, data: Record<string, unknown> = {}) => ({ type: 'thing', data: { code, n: 1, ...data } });

describe('schema evolution through the daemon and schema check/apply (integration)', function () {
  this.timeout(120_000);
  let bucket: TestBucket;
  const cleanups: Array<() => Promise<void>> = [];
  beforeEach(async () => {
    bucket = await startTestBucket({ files: { 'a.data': JSON.stringify([thing('a', { note: 'first' }), thing('b')]) } });
  });
  afterEach(async () => {
    await bucket?.close();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const dialect of dialects()) {
    it(`${dialect.name}: adds a column mid-life; refuses a removed property until schema apply runs what schema check printed`, async () => {
      const t = await tempDir();
      cleanups.push(t.cleanup);
      const db: TestDatabase = await dialect.create(t.dir);
      cleanups.push(() => db.drop());
      const file = join(t.dir, 'types', 'thing.json');
      await mkdir(join(t.dir, 'types'));
      await writeFile(file, JSON.stringify(schema(BASE)));
      const env = { BUCKET_URL: bucket.url, DATABASE_URL: db.url, REGISTRY_PATH: 'registry/t.json', REGISTRY: 'json', SCHEMAS: 'types', LOG_FORMAT: 'json' };
      const cli = (args: string[]) => runCli(args, { cwd: t.dir, env });

      const first = await cli(['run', '--once']);
      expect(first.code, first.stderr).to.equal(0);

      await writeFile(file, JSON.stringify(schema(GROWN)));
      bucket.setFile('b.data', JSON.stringify([thing('c', { colour: 'red', tier: 'gold' })]));
      bucket.setIndex('a.data\nb.data');
      const grown = await cli(['run', '--once']);
      expect(grown.code, grown.stderr).to.equal(0);
      expect(events(grown.stdout).filter((e) => e.event === 'SchemaEvolved').map((e) => e.msg)).to.deep.equal([
        'table things, column colour: added (NULL in existing rows)',
        'table things, column tier: added ("bronze", its default, in existing rows)',
      ]);
      const rows = (await dump(db.knex(), ['things'])).things as Array<Record<string, unknown>>;
      expect(rows.map((r) => [r.code, r.note, r.colour, r.tier])).to.deep.equal([['a', 'first', null, 'bronze'], ['b', null, null, 'bronze'], ['c', null, 'red', 'gold']]);

      await writeFile(file, JSON.stringify(schema(SHRUNK)));
      const refused = await cli(['run', '--once']);
      expect(refused.code).to.equal(2);
      expect(refused.stderr.trim().split('\n'), refused.stderr).to.deep.equal([
        `bucket-ingest: BI_SCHEMA: ${file}: table things, column note: removed from the schema (dropping it deletes its 1 stored value(s)); ` +
        'this could lose or corrupt data, so start-up does not do it: `bucket-ingest schema check` shows the statements, `bucket-ingest schema apply` runs them (or change the schema back)',
      ]);

      const before = { rows: await dump(db.knex(), ['things', 'rejected_records']), file: await sqliteBytes(db.url) };
      const check = await cli(['schema', 'check']);
      expect(check.code, check.stderr).to.equal(0);
      expect(check.stdout).to.match(/^ {2}note +text NULL +- +removed from the schema/m);
      const json = await cli(['schema', 'check', '--json']);
      const plan = JSON.parse(json.stdout) as { tables: Array<{ statements: Array<{ sql: string; safe: boolean }> }> };
      const statements = plan.tables.flatMap((x) => x.statements);
      expect(statements.length).to.be.greaterThan(0);
      expect(statements.every((s) => !s.safe)).to.equal(true);
      for (const s of statements) expect(check.stdout).to.include(`[unsafe] ${s.sql};`);
      expect({ rows: await dump(db.knex(), ['things', 'rejected_records']), file: await sqliteBytes(db.url) }, 'check writes nothing').to.deep.equal(before);

      const apply = await cli(['schema', 'apply']);
      expect(apply.code, apply.stderr).to.equal(0);
      expect(apply.stdout.trim()).to.equal([`ran ${statements.length} statement(s):`, ...statements.map((s) => `  ${s.sql};`)].join('\n'));
      const again = await cli(['run', '--once']);
      expect(again.code, again.stderr).to.equal(0);
      const after = (await dump(db.knex(), ['things'])).things as Array<Record<string, unknown>>;
      expect(after.map((r) => [r.code, 'note' in r, r.colour, r.tier])).to.deep.equal([['a', false, null, 'bronze'], ['b', false, null, 'bronze'], ['c', false, 'red', 'gold']]);
      const nothing = await cli(['schema', 'apply']);
      expect(nothing.stdout.trim()).to.equal('nothing to change: every record table matches its schema');
    });
  }

  it('schema check on a database that does not exist is one error, and creates nothing', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    for (const action of ['check', 'apply']) {
      const r = await runCli(['schema', action], { cwd: t.dir, env: { BUCKET_URL: bucket.url, DATABASE_URL: 'sqlite://data/none.sqlite3' } });
      expect(r.code).to.equal(2);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr).to.match(/BI_DATABASE: database sqlite:\/\/data\/none\.sqlite3 does not exist/);
    }
    expect(await readFile(join(t.dir, 'data', 'none.sqlite3')).then(() => true, () => false)).to.equal(false);
  });
});

/** The SQLite file's digest (with its WAL), or null for a server database. */
async function sqliteBytes(url: string): Promise<string | null> {
  if (!url.startsWith('sqlite://')) return null;
  const path = url.slice('sqlite://'.length);
  const hash = createHash('sha256');
  for (const p of [path, `${path}-wal`]) hash.update(await readFile(p).catch(() => Buffer.alloc(0)));
  return hash.digest('hex');
}
