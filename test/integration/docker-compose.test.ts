import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import { parse } from 'yaml';
import { openDatabase, parseDatabaseUrl } from '../../src/load/database.js';
import { runCli, tempDir } from '../helpers/cli.js';

const SAMPLE = resolve('examples/sample-bucket');

/** Passwords no URL could carry unencoded; QX marks every piece, so a printed fragment is caught. */
const PASSWORD = 'QXp@ss:w/rd?QX#QX%zz QXü密🔑';

interface Compose {
  services: Record<string, { environment?: Record<string, string> }>;
}

/** Compose's variable substitution for what the file uses: `${NAME}`, `${NAME:-default}`, `$$`. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (whole, name: string | undefined, fallback: string | undefined) => {
    if (whole === '$$') return '$';
    const v = env[name as string];
    return v !== undefined && v !== '' ? v : fallback ?? '';
  });
}

function environment(service: string, env: Record<string, string>): Record<string, string> {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as Compose;
  const raw = compose.services[service]?.environment ?? {};
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, interpolate(String(v), env)]));
}

describe('docker-compose.yml and PostgreSQL credentials', function () {
  this.timeout(60_000);

  it('passes any POSTGRES_PASSWORD to the daemon as it is, outside DATABASE_URL (regression: put unencoded into the URL)', () => {
    const ingest = environment('ingest', { POSTGRES_PASSWORD: PASSWORD });
    const postgres = environment('postgres', { POSTGRES_PASSWORD: PASSWORD });
    expect(postgres.POSTGRES_PASSWORD).to.equal(PASSWORD);
    expect(ingest.PGPASSWORD).to.equal(PASSWORD);
    expect(ingest.PGUSER).to.equal(postgres.POSTGRES_USER);
    expect(ingest.DATABASE_URL).to.not.contain('QX');
    const target = parseDatabaseUrl(ingest.DATABASE_URL as string);
    expect(target).to.include({ dialect: 'postgres', display: 'postgres://postgres:5432/ingest' });
  });

  describe('against PostgreSQL (TEST_PG_URL)', () => {
    const base = process.env.TEST_PG_URL;
    let admin: pg.Client | undefined;
    const role = `bi_pgenv_${randomBytes(4).toString('hex')}`;
    before(async function () {
      if (!base) {
        process.stdout.write('  (skipping: TEST_PG_URL is not set)\n');
        this.skip();
      }
      admin = new pg.Client({ connectionString: base });
      await admin.connect();
      // The role owns its schema and nothing else: what it creates there proves whom the daemon connected as.
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD ${admin.escapeLiteral(PASSWORD)}`);
      await admin.query(`CREATE SCHEMA ${role} AUTHORIZATION ${role}`);
      // openDatabase runs CREATE SCHEMA IF NOT EXISTS, which PostgreSQL checks against the database first.
      await admin.query(`GRANT CREATE ON DATABASE ${new URL(base as string).pathname.slice(1)} TO ${role}`);
    });
    after(async () => {
      if (!admin) return;
      await admin.query(`DROP OWNED BY ${role} CASCADE`); // its schema, its tables and its grant
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
    });

    const pgEnv = () => {
      const u = new URL(base as string);
      // DATABASE_URL names the server and database only, as in docker-compose.yml; who connects comes from PG*.
      return { DATABASE_URL: `postgres://${u.host}${u.pathname}?schema=${role}`, PGUSER: role, PGPASSWORD: PASSWORD };
    };

    it("the daemon connects as PGUSER with PGPASSWORD (pg's own defaults) when DATABASE_URL carries no credentials", async () => {
      const { dir, cleanup } = await tempDir();
      try {
        const r = await runCli(['run', '--once'], { cwd: dir, env: { BUCKET_URL: SAMPLE, ...pgEnv() } });
        expect(r.code, r.stderr).to.equal(0);
        expect(r.stdout + r.stderr).to.not.contain('QX');
        const owners = await admin!.query<{ tableowner: string }>('SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = $1', [role]);
        expect(owners.rows.map((o) => o.tableowner)).to.deep.equal([role]);
        const status = await runCli(['status'], { cwd: dir, env: { BUCKET_URL: SAMPLE, ...pgEnv() } });
        expect(status.stdout).to.match(/files: 6 known, 6 done/);
        expect(status.stdout + status.stderr).to.not.contain('QX');
      } finally {
        await cleanup();
      }
    });

    it('hands PGPASSWORD to the driver unchanged (the server here trusts 127.0.0.1, so the driver is asked)', async () => {
      const saved = { PGUSER: process.env.PGUSER, PGPASSWORD: process.env.PGPASSWORD };
      const env = pgEnv();
      Object.assign(process.env, { PGUSER: env.PGUSER, PGPASSWORD: env.PGPASSWORD });
      const db = await openDatabase(parseDatabaseUrl(env.DATABASE_URL), { poolSize: 1 });
      try {
        const conn = (await db.client.acquireConnection()) as { user: string; password: string };
        expect({ user: conn.user, password: conn.password }).to.deep.equal({ user: role, password: PASSWORD });
        await db.client.releaseConnection(conn);
      } finally {
        await db.destroy();
        for (const [k, v] of Object.entries(saved)) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
    });
  });
});
