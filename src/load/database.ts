import { mkdir, open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { ConfigError, IngestError, isRetriable } from '../errors.js';
import { redactText, redactUrl } from '../redact.js';

export type Dialect = 'sqlite' | 'postgres' | 'mysql';

export interface DatabaseTarget {
  dialect: Dialect;
  /** For SQLite: the database file's absolute path. */
  filename?: string;
  /** For PostgreSQL and MySQL: the connection string as given (`?schema=` removed). */
  url?: string;
  /** PostgreSQL schema (`?schema=NAME`), created if missing; tests use one each. */
  schema?: string;
  /** Connection string with the password masked, for logs and errors. */
  display: string;
}

/**
 * Parses DATABASE_URL: `sqlite://data/x.sqlite3` (relative to the working directory),
 * `sqlite:///var/lib/x.sqlite3` (absolute), `postgres://user:pass@host:5432/db[?schema=name]`,
 * `mysql://user:pass@host:3306/db` (MariaDB too; `mariadb://` is accepted).
 */
export function parseDatabaseUrl(url: string, cwd = process.cwd()): DatabaseTarget {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(url.trim());
  if (!match) throw new ConfigError(`DATABASE_URL ${redactText(url)} is not a URL (expected sqlite://path, postgres://… or mysql://…)`);
  const scheme = (match[1] as string).toLowerCase();
  const rest = match[2] as string;
  if (scheme === 'sqlite' || scheme === 'sqlite3') {
    const path = decodeURIComponent(rest.split('?')[0] as string);
    if (path === '' || path === '/') throw new ConfigError(`DATABASE_URL ${url} names no database file`);
    const filename = path === ':memory:' ? ':memory:' : resolve(cwd, path);
    return { dialect: 'sqlite', filename, display: `sqlite://${path}` };
  }
  if (['postgres', 'postgresql', 'mysql', 'mariadb'].includes(scheme)) {
    let parsed: URL;
    try {
      parsed = new URL(url.trim());
    } catch {
      throw new ConfigError(`DATABASE_URL ${redactUrl(url)} is not a valid URL (percent-encode @ : / ? # % and spaces in the user name and password, ` +
        'or, for PostgreSQL, leave them out and set PGUSER and PGPASSWORD)');
    }
    if (parsed.pathname.length <= 1) throw new ConfigError(`DATABASE_URL ${redactUrl(url)} names no database (…/DBNAME)`);
    const dialect: Dialect = scheme.startsWith('postgres') ? 'postgres' : 'mysql';
    const schema = parsed.searchParams.get('schema') ?? undefined;
    parsed.searchParams.delete('schema');
    if (dialect === 'mysql') parsed.protocol = 'mysql:';
    if (schema !== undefined && !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw new ConfigError(`DATABASE_URL: schema "${schema}" is not a plain identifier`);
    return { dialect, url: parsed.toString(), display: redactUrl(url), ...(schema === undefined ? {} : { schema }) };
  }
  throw new ConfigError(`DATABASE_URL ${redactUrl(url)}: unsupported scheme "${scheme}" (expected sqlite://, postgres:// or mysql://)`);
}

/**
 * WAL with synchronous=FULL: a commit is durable before the registry marks its files done. A 16 MB page cache
 * keeps a group's transaction from spilling to the WAL before it commits, without inflating the RSS. A new database
 * gets 16 KB pages (an existing one keeps its own): with random keys a group dirties pages all over each index,
 * and larger pages made the 300-file bench's upserts and commits ~10% faster, the same at 3,000 files.
 */
const SQLITE_PRAGMAS = ['busy_timeout = 10000', 'page_size = 16384', 'journal_mode = WAL', 'synchronous = FULL', 'cache_size = -16384', 'temp_store = MEMORY'];

/** A knex pool `afterCreate` hook that sets PRAGMAs on each new better-sqlite3 connection. */
export function applyPragmas(pragmas: readonly string[]) {
  return (conn: { pragma(sql: string): unknown }, done: (err: Error | null, conn: unknown) => void): void => {
    try {
      for (const pragma of pragmas) conn.pragma(pragma);
      done(null, conn);
    } catch (err) {
      done(err as Error, conn);
    }
  };
}

export interface OpenOptions {
  /** Connections for PostgreSQL/MySQL; sized from CONCURRENCY (claims and heartbeats run beside the writer). */
  poolSize: number;
}

/**
 * Opens the database and checks it answers.
 *
 * SQLite runs in WAL mode with `synchronous=FULL`, so a commit is on disk before the registry records its files
 * as done; files are grouped per commit to pay that once per group. The page cache is raised so a group's
 * transaction does not spill to the WAL before it commits.
 */
export async function openDatabase(target: DatabaseTarget, opts: OpenOptions = { poolSize: 4 }): Promise<Knex> {
  let config: Knex.Config;
  if (target.dialect === 'sqlite') {
    if (target.filename !== ':memory:') {
      await mkdir(dirname(target.filename as string), { recursive: true }).catch((err: Error) => {
        throw new IngestError('BI_DATABASE', `cannot create directory for ${target.display}: ${err.message}`);
      });
    }
    config = {
      // better-sqlite3: in-process and synchronous, so a statement can be prepared once and reused for every
      // row (see upsert.ts); about 1.5x the throughput of node-sqlite3 here (README, Performance).
      client: 'better-sqlite3',
      connection: { filename: target.filename as string },
      useNullAsDefault: true,
      pool: {
        min: 1,
        max: 1,
        afterCreate: applyPragmas(SQLITE_PRAGMAS),
      },
    };
  } else if (target.dialect === 'postgres') {
    const pg = (await import('pg')).default;
    // BIGINT columns hold safe integers only (the codecs refuse the rest): read them as numbers, as the other dialects do.
    pg.types.setTypeParser(20, (v: string) => Number(v));
    config = {
      client: 'pg',
      connection: { connectionString: target.url as string, application_name: 'bucket-ingest' },
      ...(target.schema ? { searchPath: [target.schema] } : {}),
      pool: { min: 0, max: opts.poolSize, acquireTimeoutMillis: 60_000 },
    };
  } else {
    config = {
      client: 'mysql2',
      connection: { uri: target.url as string, charset: 'utf8mb4', supportBigNumbers: true, bigNumberStrings: false, dateStrings: true } as never,
      pool: { min: 0, max: opts.poolSize, acquireTimeoutMillis: 60_000 },
    };
  }
  // knex would print its own warnings (e.g. every failed connection attempt) to the console; we report errors
  // ourselves, in one line.
  const quiet = (): void => undefined;
  // compileSqlOnError: false: a refused statement's error quotes the SQL with its placeholders, not with the values
  // bound to them, so record data (personal data too) never reaches an error line or a log.
  const db = knexFactory({ ...config, compileSqlOnError: false, log: { warn: quiet, error: quiet, deprecate: quiet, debug: quiet } });
  try {
    if (target.schema) {
      // Looked up first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema is there, and
      // a role given only a ready-made schema could not start.
      const found = (await db.raw('SELECT 1 FROM pg_namespace WHERE nspname = ?', [target.schema])) as { rows: unknown[] };
      if (found.rows.length === 0) await db.raw('CREATE SCHEMA IF NOT EXISTS ??', [target.schema]);
    }
    await db.raw('select 1');
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw new IngestError('BI_DATABASE', `cannot open ${target.display}: ${redactText(describeDbError(err))}`, { cause: err });
  }
  return db;
}

/**
 * Runs one start-up step against an open database (migrations, reading the registry table) and turns what the
 * driver throws into one BI_DATABASE error naming the database, password masked: `42501: permission denied for
 * schema x` alone says neither what failed nor where. Errors of our own pass through as they are.
 *
 * @example await startupStep(target, 'cannot migrate', () => migrate(db));
 */
export async function startupStep<T>(target: DatabaseTarget, what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof IngestError) throw err;
    throw new IngestError('BI_DATABASE', `${what} ${target.display}: ${redactText(describeDbError(err))}`, { cause: err, retriable: isRetriable(err) });
  }
}

/** Driver errors sometimes carry only a code (ECONNREFUSED) or an AggregateError with an empty message. */
export function describeDbError(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: Array<{ message?: string }> };
  const message = e.message || e.errors?.map((x) => x.message).join('; ') || '';
  return e.code && !message.includes(e.code) ? `${e.code} ${message}`.trim() : message || String(err);
}

/**
 * A readiness check that proves the database is usable now, not just that a pooled connection is open:
 * for SQLite a fresh read-only connection to the file reads the migrations table (a deleted, replaced or
 * unreadable file fails here even though the daemon's own connection still holds the old inode).
 */
export async function checkDatabase(db: Knex, target: DatabaseTarget, opened?: { ino: number }, timeoutMs = 2000): Promise<void> {
  const probe = async (): Promise<void> => {
    if (target.dialect === 'sqlite' && target.filename && target.filename !== ':memory:') {
      // The file at the path must still be the one our connection writes to, and still look like SQLite.
      const handle = await open(target.filename, 'r');
      try {
        const info = await handle.stat();
        if (opened && info.ino !== opened.ino) throw new Error(`${target.filename} was replaced or moved since it was opened`);
        const header = Buffer.alloc(16);
        await handle.read(header, 0, 16, 0);
        if (header.toString('latin1') !== 'SQLite format 3\u0000') throw new Error(`${target.filename} is not an SQLite database`);
      } finally {
        await handle.close();
      }
      const Database = (await import('better-sqlite3')).default;
      const conn = new Database(target.filename, { readonly: true, fileMustExist: true, timeout: timeoutMs });
      try {
        conn.prepare('select count(*) as n from bucket_ingest_migrations').get();
      } finally {
        conn.close();
      }
      return;
    }
    await db.raw('select 1');
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new IngestError('BI_DATABASE', `${target.display} did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([probe(), timeout]);
  } catch (err) {
    throw new IngestError('BI_DATABASE', `${target.display}: ${redactText((err as Error).message)}`);
  } finally {
    clearTimeout(timer);
  }
}
