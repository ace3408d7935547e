import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Knex } from 'knex';
import type { Settings } from '../config/schema.js';
import { IngestError } from '../errors.js';
import { describeDbError, openDatabase, type DatabaseTarget } from '../load/database.js';
import { DATABASE_TABLE } from '../load/schema.js';
import { parseS3Url } from '../sources/s3-url.js';

/**
 * What a registry entry is about: the target database (its identity row, written once by the migration that
 * created it) and the bucket (its normalised location and index key). An entry counts only where both match, so a
 * deleted, new or different database, or another bucket, never reads as "up to date".
 */
export interface Binding {
  /** The `id` of the database's `ingest_database` row; null when the database does not exist (yet). */
  database: string | null;
  /** The bucket's identity (`bucketIdentity`): readable, without credentials. */
  bucket: string;
}

/**
 * A bucket's stable identity: its base URL normalised (scheme and host lower case, default port dropped, no user
 * information, no query, one trailing slash), or the real path of a local directory as a `file://` URL, then `#` and
 * the index key. The same bucket gives the same identity however BUCKET_URL spells it; credentials never enter it.
 */
export function bucketIdentity(settings: Pick<Settings, 'BUCKET_URL' | 'FILES_LIST_KEY'> & Partial<Pick<Settings, 'S3_ENDPOINT'>>, cwd = process.cwd()): string {
  const raw = settings.BUCKET_URL.trim();
  let base: string;
  if (/^s3:\/\//i.test(raw)) {
    // s3://bucket/prefix/ on its server (none: AWS), then `#` and the index key, or `#` alone for a listed bucket.
    const { bucket, prefix } = parseS3Url(raw);
    const endpoint = settings.S3_ENDPOINT?.trim();
    let server = '';
    if (endpoint) {
      const url = new URL(endpoint);
      server = ` ${url.protocol}//${url.host}/`;
    }
    base = `s3://${bucket}/${prefix}${server}`;
  } else if (/^https?:\/\//i.test(raw)) {
    const url = new URL(raw);
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    base = url.toString();
  } else {
    const dir = /^file:/i.test(raw) ? fileURLToPath(raw) : resolve(cwd, raw);
    let real = dir;
    try {
      real = realpathSync(dir);
    } catch {
      // A directory that does not exist lists nothing; its identity is the path as given.
    }
    base = pathToFileURL(real.endsWith('/') ? real : `${real}/`).toString();
  }
  return `${base}#${settings.FILES_LIST_KEY}`;
}

/** A short fixed-length id of a bucket identity, for the registry table's key (MySQL bounds an index's bytes). */
export function bucketId(identity: string): string {
  return createHash('sha256').update(identity).digest('hex').slice(0, 32);
}

/**
 * The database's identity, or null where the migration that writes it has not run (no such table, no row). Any
 * other failure is thrown: read as "no identity", it would set a good registry aside.
 */
export async function readDatabaseId(db: Knex): Promise<string | null> {
  if (!(await db.schema.hasTable(DATABASE_TABLE))) return null;
  const row = (await db(DATABASE_TABLE).first('id')) as { id: string } | undefined;
  return row?.id ?? null;
}

/**
 * Why entries bound to `stored` do not count for `actual`, or null when they do. `stored` missing altogether
 * means a registry written before registries were bound: nothing can vouch for it.
 */
export function bindingMismatch(stored: Partial<Binding> | undefined, actual: Binding): string | null {
  if (stored === undefined || stored.database === undefined || stored.bucket === undefined) {
    return 'it was written before registries were bound to their database and bucket';
  }
  if (actual.database === null) return `its database ${stored.database} is not at DATABASE_URL (gone, never migrated, or not reachable)`;
  if (stored.database !== actual.database) return `it was written for database ${stored.database}, and this one is ${actual.database}`;
  if (stored.bucket !== actual.bucket) return `it was written for bucket ${stored.bucket}, and this one is ${actual.bucket}`;
  return null;
}

/**
 * The identity of the database DATABASE_URL names, read without creating or changing anything (for the commands that
 * only read): null when there is no such database file, or it has no identity yet.
 */
export async function probeDatabaseId(target: DatabaseTarget): Promise<string | null> {
  if (target.dialect === 'sqlite') {
    const filename = target.filename as string;
    if (filename === ':memory:' || !existsSync(filename)) return null;
    const Database = (await import('better-sqlite3')).default;
    let conn: InstanceType<typeof Database> | undefined;
    try {
      conn = new Database(filename, { readonly: true, fileMustExist: true, timeout: 2000 });
      const known = conn.prepare("select 1 from sqlite_master where type = 'table' and name = ?").get(DATABASE_TABLE);
      if (!known) return null;
      const row = conn.prepare(`select id from "${DATABASE_TABLE}" limit 1`).get() as { id: string } | undefined;
      return row?.id ?? null;
    } catch (err) {
      throw new IngestError('BI_DATABASE', `cannot read ${target.display}: ${describeDbError(err)}`);
    } finally {
      conn?.close();
    }
  }
  // A server that cannot be reached cannot vouch for the registry either: the commands that only read say so
  // (`registry not trusted`) and go on, rather than fail over a database they would not write to.
  const db = await openDatabase(target, { poolSize: 1 }).catch(() => null);
  if (db === null) return null;
  try {
    return await readDatabaseId(db);
  } finally {
    await db.destroy();
  }
}
