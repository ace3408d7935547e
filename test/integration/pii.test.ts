import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { hashPii } from '../../src/records/pii.js';
import { events, runCli, startCli, until } from '../helpers/cli.js';
import { dialects, type Dialect } from '../helpers/databases.js';
import { schemaSuite, type SchemaSetup } from '../helpers/schema-suite.js';

/**
 * Personal data (`x-pii: "hash"`) and unknown properties (`x-extra`), end to end on every dialect: a daemon loads a
 * bucket of customers (x-extra reject, the hashed email the key) and visits (x-extra rescue), and no raw personal value,
 * nor the hash key, is then anywhere: not in the database (the SQLite file's bytes; every column of every table), the
 * registry, the daemon's output, `inspect`, `status`, `/metrics` or the read API.
 */

/** Every personal value holds `QZ`, which nothing else does (hashes are lower-case hex); the key holds `QK`. */
const KEY = 'QK-hmac-key-for-the-pii-test';
const ID = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

const CUSTOMER = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'customer',
  type: 'object',
  'x-table': 'customers',
  'x-extra': 'reject',
  properties: {
    email: { type: 'string', format: 'email', maxLength: 254, 'x-pii': 'hash' },
    phone: { type: ['string', 'null'], maxLength: 40, 'x-pii': 'hash' },
    name: { type: 'string', maxLength: 50 },
  },
  required: ['email'],
  'x-key': ['email'],
};

const VISIT = {
  title: 'visit',
  type: 'object',
  'x-table': 'visits',
  'x-extra': 'rescue',
  properties: {
    visit_id: { type: 'string', format: 'uuid', maxLength: 36 },
    visitor_email: { type: 'string', format: 'email', maxLength: 254, 'x-pii': 'hash' },
    page: { type: 'string' },
  },
  required: ['visit_id'],
  'x-key': ['visit_id'],
};

const customer = (data: unknown) => ({ type: 'customer', data });
const visit = (data: unknown) => ({ type: 'visit', data });

/** The raw personal values the files hold, valid and invalid. */
const PERSONAL = ['QZ.ana@pii.example', 'QZ.bob@pii.example', '+34 QZ 600', 'QZ-not-an-email', 'QZ.cy@pii.example', 'QZ.dee@pii.example',
  'QZ.eve@pii.example', 'QZ eve at example', 'QZ.fay@pii.example'];

const FILES: Record<string, string> = {
  'a.data': JSON.stringify([
    customer({ email: 'QZ.ana@pii.example', name: 'Ana' }),
    customer({ email: 'QZ.bob@pii.example', phone: '+34 QZ 600', name: 'Bob' }),
    customer({ email: 'QZ-not-an-email', name: 'Nobody' }),
    customer({ email: 5550199 }),
    customer({ email: 'QZ.cy@pii.example', referrer: 'https://ref.example/spring', campaign: 'c1' }),
    customer({ email: 'QZ.dee@pii.example', name: 7 }),
    customer('QZ.fay@pii.example'),
    visit({ visit_id: ID(1), visitor_email: 'QZ.eve@pii.example', page: '/home', utm: 'spring-sale', nested: { a: [1, null] } }),
    visit({ visit_id: ID(2), page: '/about' }),
    visit({ visit_id: ID(3), visitor_email: 'QZ eve at example' }),
  ]),
  'b.data': JSON.stringify([customer({ email: 'QZ.ana@pii.example', name: 'Ana later' })]),
};

/** Every column of every table of the database, as JSON text. */
async function everyTable(k: Knex, dialect: Dialect['name']): Promise<Record<string, Array<Record<string, unknown>>>> {
  try {
    const names = dialect === 'sqlite'
      ? ((await k.raw("SELECT name FROM sqlite_master WHERE type = 'table'")) as Array<{ name: string }>).map((r) => r.name)
      : dialect === 'postgres'
        ? ((await k.raw('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()')) as { rows: Array<{ name: string }> }).rows.map((r) => r.name)
        : ((await k.raw('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = database()')) as [Array<{ name: string }>])[0].map((r) => r.name);
    const out: Record<string, Array<Record<string, unknown>>> = {};
    for (const name of names) out[name] = (await k(name).select()) as Array<Record<string, unknown>>;
    return out;
  } finally {
    await k.destroy();
  }
}

/** The bytes of every file under `dir`, as latin1 text (a UTF-8 value is found as its bytes). */
async function bytesUnder(dir: string): Promise<string> {
  let all = '';
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) all += (await readFile(join(e.parentPath, e.name))).toString('latin1');
  }
  return all;
}

function expectNothingPersonal(what: string, text: string): void {
  expect(text, what).to.not.contain('QZ').and.not.contain('5550199').and.not.contain('QK');
  for (const v of PERSONAL) expect(text, what).to.not.contain(v).and.not.contain(JSON.stringify(v).slice(1, -1));
}

describe('personal data hashed, unknown properties rescued or rejected (integration)', function () {
  this.timeout(180_000);
  const suite = schemaSuite(FILES, { 'customer.json': CUSTOMER, 'visit.json': VISIT });
  const setUp = (dialect: Dialect): Promise<SchemaSetup> => suite.setUp((d) => dialect.create(d));

  for (const dialect of dialects()) {
    it(`${dialect.name}: stores hashes, rescues and rejects unknown properties, and no raw personal value or key is anywhere`, async () => {
      const { dir, db, env } = await setUp(dialect);
      const outputs: string[] = [];
      const daemon = startCli(['run'], {
        cwd: dir,
        env: { ...env, PII_HASH_KEY: KEY, HTTP_PORT: '0', POLL_INTERVAL_SECONDS: '0.2', LOG_LEVEL: 'trace', DECODE_THREADS: '2', COMMIT_MAX_FILES: '1', CONCURRENCY: '1' },
      });
      try {
        const port = await until(() => events(daemon.output()).find((e) => e.event === 'HttpListening')?.port as number | undefined);
        const cycle = await until(() => events(daemon.output()).find((e) => e.event === 'CycleFinished'));
        expect(cycle).to.include({ filesDone: 2, recordsLoaded: 5, recordsRejected: 6 });
        for (const path of ['/api/tables', '/api/tables/customers/rows', '/api/tables/visits/rows', '/api/tables/rejected_records/rows', '/metrics', '/readyz']) {
          const res = await fetch(`http://127.0.0.1:${port}${path}`);
          const text = await res.text();
          expect(res.status, `${path}: ${text}`).to.equal(200);
          outputs.push(`GET ${path}\n${text}`);
        }
        const api = JSON.parse(outputs[1]?.split('\n').slice(1).join('\n') ?? '') as { rows: Array<Record<string, unknown>> };
        expect(api.rows.map((r) => r.email)).to.have.members([hashPii(KEY, 'QZ.ana@pii.example'), hashPii(KEY, 'QZ.bob@pii.example')]);
      } finally {
        daemon.child.kill('SIGTERM');
      }
      const stopped = await daemon.finished;
      expect(stopped.code, stopped.stderr).to.equal(0);
      outputs.push(`$ run\n${stopped.stdout}\n${stopped.stderr}`);
      for (const args of [['inspect'], ['inspect', '--json'], ['status'], ['status', '--json']]) {
        const r = await runCli(args, { cwd: dir, env: { ...env, PII_HASH_KEY: KEY } });
        expect(r.code, r.stderr).to.equal(0);
        outputs.push(`$ ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
      }

      const tables = await everyTable(db.knex(), dialect.name);
      // What is stored: the hash (of a known value: hashPii of it), matched on upsert by the later file's record.
      const customers = tables.customers as Array<Record<string, unknown>>;
      expect(customers.map((r) => [r.email, r.phone, r.name, r.source_key]).sort()).to.deep.equal([
        [hashPii(KEY, 'QZ.ana@pii.example'), null, 'Ana later', 'b.data'],
        [hashPii(KEY, 'QZ.bob@pii.example'), hashPii(KEY, '+34 QZ 600'), 'Bob', 'a.data'],
      ].sort());
      const visits = tables.visits as Array<Record<string, unknown>>;
      expect(visits.map((r) => [r.visit_id, r.visitor_email, r.page, r._rescued]).sort()).to.deep.equal([
        [ID(1), hashPii(KEY, 'QZ.eve@pii.example'), '/home', '{"utm":"spring-sale","nested":{"a":[1,null]}}'],
        [ID(2), null, '/about', null],
      ]);
      const rejected = (tables.rejected_records as Array<Record<string, unknown>>).sort((a, b) => Number(a.record_index) - Number(b.record_index));
      expect(rejected.map((r) => [r.record_index, r.reason])).to.deep.equal([
        [2, 'email: expected Email, got a string of 15 characters'],
        [3, 'email: expected Email, got a number'],
        [4, 'data: unknown properties "referrer", "campaign" (x-extra is "reject")'],
        [5, 'name: expected string, got 7'],
        [6, 'data: expected object, got a string of 18 characters'],
        [9, 'visitor_email: expected Email, got a string of 17 characters'],
      ]);
      // The stored raw records: personal values hashed, the rest as it came.
      expect(JSON.parse(rejected[2]?.raw as string)).to.deep.equal(customer({ email: hashPii(KEY, 'QZ.cy@pii.example'), referrer: 'https://ref.example/spring', campaign: 'c1' }));
      expect(JSON.parse(rejected[1]?.raw as string)).to.deep.equal(customer({ email: hashPii(KEY, '5550199') }));

      const stored = JSON.stringify(tables);
      expect(stored, 'the search finds what is stored').to.contain('Ana later').and.contain('spring-sale');
      expectNothingPersonal('the database', stored);
      if (dialect.name === 'sqlite') {
        const bytes = await bytesUnder(join(dir, 'data'));
        expect(bytes, 'the search finds what is stored').to.contain('Ana later');
        expectNothingPersonal('the SQLite files', bytes);
      }
      expectNothingPersonal('the registry', await bytesUnder(join(dir, 'registry')));
      const all = outputs.join('\n');
      expect(all, 'the search finds what is printed').to.contain('"event":"CycleFinished"').and.contain(hashPii(KEY, 'QZ.bob@pii.example'));
      for (const out of outputs) expectNothingPersonal(out.slice(0, 80), out);
    });
  }

  it('without PII_HASH_KEY, start-up is refused with one line naming the schema file and the property', async () => {
    const { dir, env } = await setUp(dialects()[0] as Dialect);
    const r = await runCli(['run', '--once'], { cwd: dir, env });
    expect(r.code).to.equal(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).to.have.length(1);
    expect(lines[0]).to.match(/^bucket-ingest: BI_CONFIG: PII_HASH_KEY is not set, and \S*types\/customer\.json at #\/properties\/email\/x-pii declares "email" personal data/);
    expect(r.stdout).to.equal('');
  });
});
