import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.js';
import { events, runCli, tempDir } from '../helpers/cli.js';
import { dialects, dump, type Dump } from '../helpers/databases.js';

/**
 * The second dataset of the repository (examples/transactions-bucket, schemas/transactions/): a bucket that is not
 * MacPaw's loads with nothing but its schema files, every record ends as generate.mjs declares it (row, skip, or the
 * exact rejection reason), and every dialect ends with the same tables.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUCKET = resolve(ROOT, 'examples/transactions-bucket');
const SCHEMAS = resolve(ROOT, 'schemas/transactions');
const TABLES = ['customers', 'products', 'transactions', 'rejected_records'];

interface Declared { key: string; records: Array<{ record: { type: string; data: Record<string, unknown> | null }; expect: string }> }

/** The records of generate.mjs, each with its declared outcome; the files on disk must be what it writes. */
async function declared(): Promise<Declared[]> {
  const url = new URL('../../examples/transactions-bucket/generate.mjs', import.meta.url).href;
  const { FILES, render } = (await import(url)) as { FILES: Declared[]; render(f: Declared): string };
  for (const f of FILES) expect(readFileSync(`${BUCKET}/${f.key}`, 'utf8'), `${f.key} is what generate.mjs writes`).to.equal(render(f));
  expect(readFileSync(`${BUCKET}/files_list.data`, 'utf8')).to.equal(FILES.map((f) => `${f.key}\n`).join(''));
  return FILES;
}

/** Without the columns that say when a row was loaded. */
function timeless(tables: Dump): Dump {
  return Object.fromEntries(Object.entries(tables).map(([t, rows]) => [t, rows.map(({ ingested_at: _, ...r }) => r)]));
}

describe('the transactions example bucket, declared types only (integration)', function () {
  this.timeout(120_000);
  let reference: Dump | undefined;
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('the shipped profile `transactions` names this bucket, these schemas and a key for their personal data', () => {
    const config = loadConfig({ configPath: `${ROOT}config.ini`, profile: 'transactions', cwd: ROOT, env: {} });
    expect(resolve(ROOT, config.settings.BUCKET_URL)).to.equal(BUCKET);
    expect(resolve(ROOT, config.settings.SCHEMAS)).to.equal(SCHEMAS);
    expect(config.catalog.types.map((t) => t.table)).to.deep.equal(['customers', 'products', 'transactions']);
    expect(config.settings.PII_HASH_KEY).to.not.equal('');
  });

  for (const dialect of dialects()) {
    it(`${dialect.name}: loads every valid record, rejects each invalid one with its declared reason, skips the unknown type`, async () => {
      const t = await tempDir();
      cleanups.push(t.cleanup);
      const db = await dialect.create(t.dir);
      cleanups.push(() => db.drop());
      const env = { BUCKET_URL: BUCKET, SCHEMAS, DATABASE_URL: db.url, REGISTRY_PATH: 'registry/t.json', PII_HASH_KEY: 'example-key' };
      const r = await runCli(['run', '--once'], { cwd: t.dir, env });
      expect(r.code, r.stderr + r.stdout).to.equal(0);

      const files = await declared();
      const all = files.flatMap((f) => f.records.map((rec, index) => ({ ...rec, key: f.key, index })));
      const rejected = all.filter((x) => x.expect !== 'valid' && x.expect !== 'skip');
      expect(events(r.stdout).find((e) => e.event === 'CycleFinished')).to.include({
        filesDone: files.length,
        recordsLoaded: all.filter((x) => x.expect === 'valid').length,
        recordsRejected: rejected.length,
        recordsSkipped: all.filter((x) => x.expect === 'skip').length,
      });
      const tables = await dump(db.knex(), TABLES);
      const stored = (tables.rejected_records as Array<Record<string, unknown>>).map((x) => [x.source_key, x.record_index, x.type, x.reason]);
      expect(stored).to.have.deep.members(rejected.map((x) => [x.key, x.index, x.record.type, x.expect]));
      // Rows per table: one per key; the later file's row wins.
      expect(TABLES.slice(0, 3).map((name) => tables[name]?.length)).to.deep.equal([9, 6, 19]); // examples/transactions-bucket/README.md
      const keyboard = (tables.products as Array<Record<string, unknown>>).find((p) => p.sku === 'KBD-0042');
      const last = all.filter((x) => x.record.type === 'product' && x.record.data?.sku === 'KBD-0042').at(-1);
      expect(keyboard).to.deep.include({ source_key: last?.key, unit_price: last?.record.data?.unit_price, stock: last?.record.data?.stock });
      // Defaults and NULLs as the schemas say.
      const customers = tables.customers as Array<Record<string, unknown>>;
      expect(customers.filter((c) => c.loyalty_tier === 'bronze').length).to.be.greaterThan(0);
      expect(customers.some((c) => c.birth_date === null)).to.equal(true);
      expect(customers.every((c) => typeof c.ingested_at === 'string')).to.equal(true);
      // A property no schema names is kept (x-extra: rescue), the others' _rescued is NULL.
      expect(customers.filter((c) => c._rescued !== null).map((c) => c._rescued)).to.deep.equal(['{"referrer":"newsletter"}']);
      // The emails are personal data: stored as their keyed hashes, and no address is anywhere in the tables.
      expect(customers.every((c) => /^[0-9a-f]{64}$/.test(String(c.email)))).to.equal(true);
      const text = JSON.stringify(tables);
      for (const x of all) {
        const email = x.record.data?.email;
        if (typeof email === 'string' && email !== '') expect(text, email).to.not.contain(email);
      }

      const comparable = timeless(tables);
      reference ??= comparable;
      expect(comparable).to.deep.equal(reference);
    });
  }
});
