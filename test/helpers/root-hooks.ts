/**
 * Mocha root hooks (registered in .mocharc.json). After the whole run, fails it naming every PostgreSQL schema,
 * MySQL database and temp dir of this run (named with run-id.ts's RUN_ID) that a test left behind: each test
 * must drop what it made. The leftovers are removed too, so a regression does not pile up on the shared servers.
 */
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { DB_PREFIX, RUN_ID } from './run-id.js';
import { stopS3Server } from './s3-server.js';

interface Place {
  what: string;
  /** Names of this run's objects there. */
  list(): Promise<string[]>;
  remove(name: string): Promise<void>;
}

/** Runs `fn` on a connection of its own, closed afterwards. */
async function withKnex<T>(config: Knex.Config, fn: (k: Knex) => Promise<T>): Promise<T> {
  const k = knexFactory(config);
  try {
    return await fn(k);
  } finally {
    await k.destroy();
  }
}

/** Only this run's names: another run on the same server has another RUN_ID. */
const ours = (names: string[]): string[] => names.filter((n) => n.startsWith(DB_PREFIX)).sort();

function places(): Place[] {
  const out: Place[] = [];
  const pgUrl = process.env.TEST_PG_URL;
  if (pgUrl) {
    const pg = { client: 'pg', connection: pgUrl };
    out.push({
      what: `PostgreSQL schemas on ${new URL(pgUrl).host}`,
      list: () => withKnex(pg, async (k) => ours(((await k.raw("select nspname from pg_namespace where nspname like 'bi%'")) as { rows: Array<{ nspname: string }> }).rows.map((r) => r.nspname))),
      remove: (name) => withKnex(pg, async (k) => void (await k.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [name]))),
    });
  }
  const mysqlUrl = process.env.TEST_MYSQL_URL;
  if (mysqlUrl) {
    const mysql = { client: 'mysql2', connection: mysqlUrl };
    out.push({
      what: `MySQL databases on ${new URL(mysqlUrl).host}`,
      list: () => withKnex(mysql, async (k) => ours(((await k.raw("select SCHEMA_NAME as name from information_schema.SCHEMATA where SCHEMA_NAME like 'bi%'")) as [Array<{ name: string }>])[0].map((r) => r.name))),
      remove: (name) => withKnex(mysql, async (k) => void (await k.raw('DROP DATABASE IF EXISTS ??', [name]))),
    });
  }
  out.push({
    what: `temp dirs in ${tmpdir()}`,
    list: async () => (await readdir(tmpdir())).filter((n) => n.includes(`-${RUN_ID}-`)).sort(),
    remove: (name) => rm(join(tmpdir(), name), { recursive: true, force: true }),
  });
  return out;
}

/** What this run left behind, one entry per place, after removing it. */
export async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  for (const place of places()) {
    const names = await place.list();
    if (names.length === 0) continue;
    found.push(`${place.what}: ${names.join(', ')}`);
    for (const name of names) await place.remove(name);
  }
  return found;
}

export const mochaHooks: Mocha.RootHookObject = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopS3Server();
    const found = await leftovers();
    if (found.length > 0) throw new Error(`test run ${RUN_ID} left behind (removed now) — ${found.join('; ')}`);
  },
};
