import { stat } from 'node:fs/promises';
import knexFactory, { type Knex } from 'knex';
import { ConfigError, IngestError } from '../errors.js';
import { applyPragmas, openDatabase, type DatabaseTarget } from '../load/database.js';
import { REJECTED_TABLE } from '../load/schema.js';
import type { Catalog } from '../schemas/catalog.js';
import { redactText } from '../redact.js';
import { reasonPattern } from './reasons.js';

/** Longest `raw` shown for a rejected record (samples and examples). */
export const RAW_CHARS = 200;

export interface TableReport {
  table: string;
  /** False when the database has no such table (never migrated, or another database). */
  exists: boolean;
  rows: number;
  /** Columns the samples are ordered by: the table's key (`id` for rejected_records). */
  orderBy: string[];
  samples: Array<Record<string, unknown>>;
}

export interface ReasonGroup {
  /** The reason with its values replaced by `…`. */
  reason: string;
  count: number;
  /** Record types in the group (`null`: the record had no string `type`). */
  types: Array<string | null>;
  /** The first rejected record of the group (lowest id). */
  example: { sourceKey: string; recordIndex: number; type: string | null; reason: string; raw: string };
}

export interface DatabaseReport {
  tables: TableReport[];
  rejections: { total: number; groups: ReasonGroup[] };
}

/**
 * Opens an existing database for reading: SQLite read-only (`mode=ro`: never created, never written; a missing
 * file is one clear error, not an empty new database), PostgreSQL and MySQL with a plain connection.
 */
export async function openExistingReadOnly(target: DatabaseTarget): Promise<Knex> {
  // A server database is only read with SELECTs here; nothing is created or migrated.
  if (target.dialect !== 'sqlite' || !target.filename) return openDatabase(target, { poolSize: 2 });
  if (target.filename === ':memory:') throw new ConfigError(`DATABASE_URL ${target.display} is an in-memory database: there is nothing to inspect`);
  const info = await stat(target.filename).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') {
      throw new IngestError('BI_DATABASE', `database ${target.display} does not exist (${target.filename}); run \`bucket-ingest run --once\` to create it`);
    }
    throw new IngestError('BI_DATABASE', `cannot read ${target.display}: ${err.message}`);
  });
  if (!info.isFile()) throw new IngestError('BI_DATABASE', `database ${target.display} (${target.filename}) is not a file`);
  const db = knexFactory({
    client: 'better-sqlite3',
    connection: { filename: target.filename, options: { readonly: true } },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      afterCreate: applyPragmas(['busy_timeout = 10000']),
    },
  });
  try {
    await db.raw('select count(*) from sqlite_master');
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw new IngestError('BI_DATABASE', `cannot read ${target.display}: ${redactText((err as Error).message)}`, { cause: err });
  }
  return db;
}

/** Row counts, `samples` rows per table ordered by its key, and rejected records grouped by reason. */
export async function describeDatabase(db: Knex, catalog: Catalog, samples: number): Promise<DatabaseReport> {
  const specs = [
    ...catalog.types.map((t) => ({ table: t.table, orderBy: [...t.key] })),
    { table: REJECTED_TABLE, orderBy: ['id'] },
  ];
  const tables: TableReport[] = [];
  for (const { table, orderBy } of specs) {
    if (!(await db.schema.hasTable(table))) {
      tables.push({ table, exists: false, rows: 0, orderBy, samples: [] });
      continue;
    }
    const [count] = (await db(table).count({ n: '*' })) as Array<{ n: number | string }>;
    let rows = samples > 0 ? ((await db(table).select().orderBy(orderBy.map((column) => ({ column }))).limit(samples)) as Array<Record<string, unknown>>) : [];
    if (table === REJECTED_TABLE) rows = rows.map((r) => ({ ...r, raw: cut(String(r.raw), RAW_CHARS) }));
    tables.push({ table, exists: true, rows: Number(count?.n ?? 0), orderBy, samples: rows });
  }
  const rejectedExists = tables.find((t) => t.table === REJECTED_TABLE)?.exists ?? false;
  return { tables, rejections: rejectedExists ? await groupRejections(db) : { total: 0, groups: [] } };
}

/**
 * Groups in two steps so memory follows the number of distinct reasons, not of rows: SQL groups equal
 * (reason, type) pairs, then their patterns (values replaced by `…`) are merged here.
 */
export async function groupRejections(db: Knex): Promise<DatabaseReport['rejections']> {
  const exact = (await db(REJECTED_TABLE).select('reason', 'type').count({ n: '*' }).min({ first: 'id' }).groupBy('reason', 'type')) as Array<{
    reason: string; type: string | null; n: number | string; first: number | string;
  }>;
  const merged = new Map<string, { count: number; types: Set<string | null>; first: number }>();
  let total = 0;
  for (const row of exact) {
    const pattern = reasonPattern(row.reason);
    const n = Number(row.n);
    total += n;
    const group = merged.get(pattern) ?? { count: 0, types: new Set<string | null>(), first: Infinity };
    group.count += n;
    group.types.add(row.type);
    group.first = Math.min(group.first, Number(row.first));
    merged.set(pattern, group);
  }
  const ids = [...merged.values()].map((g) => g.first);
  const examples = new Map<number, { source_key: string; record_index: number; type: string | null; reason: string; raw: string }>();
  for (let i = 0; i < ids.length; i += 500) {
    const rows = (await db(REJECTED_TABLE).select('id', 'source_key', 'record_index', 'type', 'reason', 'raw').whereIn('id', ids.slice(i, i + 500))) as Array<{
      id: number | string; source_key: string; record_index: number; type: string | null; reason: string; raw: string;
    }>;
    for (const r of rows) examples.set(Number(r.id), r);
  }
  const groups: ReasonGroup[] = [];
  for (const [reason, g] of merged) {
    const ex = examples.get(g.first);
    if (!ex) continue; // deleted between the two queries (a daemon replaced that file's rejections)
    groups.push({
      reason, count: g.count,
      types: [...g.types].sort((a, b) => String(a).localeCompare(String(b))),
      example: { sourceKey: ex.source_key, recordIndex: Number(ex.record_index), type: ex.type, reason: ex.reason, raw: cut(ex.raw, RAW_CHARS) },
    });
  }
  groups.sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));
  return { total, groups };
}

export function cut(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
