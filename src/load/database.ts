import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { ConfigError, IngestError } from '../errors.js';
import { redactText, redactUrl } from '../redact.js';

export type Dialect = 'sqlite' | 'postgres' | 'mysql';

export interface DatabaseTarget {
  dialect: Dialect;
  /** For SQLite: the database file's absolute path. */
  filename?: string;
  /** Connection string with the password masked, for logs and errors. */
  display: string;
}

/**
 * Parses DATABASE_URL. `sqlite://data/x.sqlite3` is relative to the working directory,
 * `sqlite:///var/lib/x.sqlite3` absolute.
 */
export function parseDatabaseUrl(url: string, cwd = process.cwd()): DatabaseTarget {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(url.trim());
  if (!match) throw new ConfigError(`DATABASE_URL ${redactText(url)} is not a URL (expected sqlite://path)`);
  const scheme = (match[1] as string).toLowerCase();
  const rest = match[2] as string;
  if (scheme === 'sqlite' || scheme === 'sqlite3') {
    const path = decodeURIComponent(rest.split('?')[0] as string);
    if (path === '' || path === '/') throw new ConfigError(`DATABASE_URL ${url} names no database file`);
    const filename = path === ':memory:' ? ':memory:' : resolve(cwd, path);
    return { dialect: 'sqlite', filename, display: `sqlite://${path}` };
  }
  throw new ConfigError(`DATABASE_URL ${redactUrl(url)}: unsupported scheme "${scheme}" (expected sqlite://)`);
}

/**
 * Opens the database and checks it answers. SQLite runs in WAL mode with `synchronous=FULL`, so a commit is
 * on disk before the registry records its files as done; files are grouped per commit to pay that once per
 * group. The page cache is raised so a group's transaction does not spill to the WAL before it commits.
 */
export async function openDatabase(target: DatabaseTarget): Promise<Knex> {
  if (target.dialect !== 'sqlite' || !target.filename) throw new ConfigError(`unsupported database ${target.display}`);
  if (target.filename !== ':memory:') {
    await mkdir(dirname(target.filename), { recursive: true }).catch((err: Error) => {
      throw new IngestError('BI_DATABASE', `cannot create directory for ${target.display}: ${err.message}`);
    });
  }
  const db = knexFactory({
    client: 'sqlite3',
    connection: { filename: target.filename },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      afterCreate(conn: { exec(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
        conn.exec(
          'PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA cache_size=-131072; PRAGMA temp_store=MEMORY;',
          (err) => done(err, conn),
        );
      },
    },
  });
  try {
    await db.raw('select 1');
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw new IngestError('BI_DATABASE', `cannot open ${target.display}: ${redactText((err as Error).message)}`, { cause: err });
  }
  return db;
}
