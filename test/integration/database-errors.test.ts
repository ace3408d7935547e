import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import { runCli, tempDir } from '../helpers/cli.js';

const SAMPLE = resolve('examples/sample-bucket');

describe('start-up database errors (integration, PostgreSQL)', function () {
  this.timeout(60_000);
  const base = process.env.TEST_PG_URL;
  const name = `bi_noperm_${randomBytes(4).toString('hex')}`;
  let admin: pg.Client | undefined;
  before(async function () {
    if (!base) {
      process.stdout.write('  (skipping: TEST_PG_URL is not set)\n');
      this.skip();
    }
    admin = new pg.Client({ connectionString: base });
    await admin.connect();
    // A role that may log in and reach the database, and a schema it may look into but not create in (the schema
    // exists, so opening the database passes, without CREATE on the database; creating the first table does not).
    await admin.query(`CREATE ROLE ${name} LOGIN PASSWORD 'QXsecret'`);
    await admin.query(`CREATE SCHEMA ${name}`);
    await admin.query(`GRANT USAGE ON SCHEMA ${name} TO ${name}`);
  });
  after(async () => {
    if (!admin) return;
    await admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
    await admin.query(`DROP OWNED BY ${name}`); // the USAGE grant
    await admin.query(`DROP ROLE IF EXISTS ${name}`);
    await admin.end();
  });

  it('a missing privilege at migration is one BI_DATABASE line naming the database, password masked (regression: "error: 42501: …")', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const u = new URL(base as string);
      const url = `postgres://${name}:QXsecret@${u.host}${u.pathname}?schema=${name}`;
      const r = await runCli(['run', '--once'], { cwd: dir, env: { BUCKET_URL: SAMPLE, DATABASE_URL: url } });
      expect(r.code).to.equal(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).to.have.length(1);
      const shown = `postgres://${name}:***@${u.host}${u.pathname}?schema=${name}`;
      expect(lines[0]).to.match(new RegExp(`^bucket-ingest: BI_DATABASE: cannot migrate ${shown.replace(/[.*?+^$()[\]\\/]/g, '\\$&')}: 42501 .*permission denied for schema ${name}$`));
      expect(r.stdout + r.stderr).to.not.contain('QX');
    } finally {
      await cleanup();
    }
  });
});
