import { isUtf8 } from 'node:buffer';
import type { Knex } from 'knex';
import { isText } from '../records/codecs.js';
import { REJECTED_TABLE } from '../load/schema.js';
import type { RegistryEntry } from '../registry/entry.js';
import type { EntryFilter, Registry } from '../registry/types.js';
import type { Catalog } from '../schemas/catalog.js';

/** What a cursor value of each key column must be: text for text columns, a number otherwise (ids, integers). */
type CursorValue = 'text' | 'number';

/** A table the read API serves: the key its pages are ordered and cut by, and what each cursor value must be. */
interface Readable {
  readonly key: readonly string[];
  readonly cursor: readonly CursorValue[];
}

/** The tables the read API serves: every record type's, and the rejections. */
export function readableTables(catalog: Catalog): ReadonlyMap<string, Readable> {
  return new Map<string, Readable>([
    ...catalog.types.map((t) => [t.table, {
      key: t.key,
      cursor: t.key.map((k): CursorValue => {
        const kind = t.columns.find((c) => c.name === k)?.kind;
        return kind === 'string' || kind === 'text' ? 'text' : 'number';
      }),
    }] as const),
    [REJECTED_TABLE, { key: ['id'], cursor: ['number'] }],
  ]);
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Parses `limit`: default 100, capped at 1000, 400 for anything that is not a positive integer. */
export function parseLimit(raw: string | null): number {
  if (raw === null || raw === '') return DEFAULT_LIMIT;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new ApiError(400, 'limit must be a positive integer');
  return Math.min(MAX_LIMIT, Number(raw));
}

/** Keyset cursors are the last row's key values, base64url-encoded JSON: opaque to clients, cheap to use. */
export function encodeCursor(values: unknown[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

/**
 * The key values of a cursor, each of the kind its column holds. Anything else was not returned by this API: 400,
 * rather than a query the database refuses (500; e.g. text for PostgreSQL's bigint id, or U+0000 in its text) or one
 * read with U+FFFD in place of bytes that are not UTF-8.
 */
export function decodeCursor(raw: string, kinds: readonly CursorValue[]): unknown[] {
  try {
    const bytes = Buffer.from(raw, 'base64url');
    const values = isUtf8(bytes) ? (JSON.parse(bytes.toString('utf8')) as unknown) : null;
    const fits = (v: unknown, kind: CursorValue | undefined): boolean => (kind === 'text' ? typeof v === 'string' && isText(v) : Number.isFinite(v));
    if (Array.isArray(values) && values.length === kinds.length && values.every((v, i) => fits(v, kinds[i]))) return values;
  } catch {
    // fall through
  }
  throw new ApiError(400, 'after is not a cursor returned by this API');
}

export async function listTables(db: Knex, catalog: Catalog): Promise<Array<{ name: string; rows: number }>> {
  const out = [];
  for (const name of readableTables(catalog).keys()) {
    const [row] = (await db(name).count({ n: '*' })) as Array<{ n: number | string }>;
    out.push({ name, rows: Number(row?.n ?? 0) });
  }
  return out;
}

/**
 * One page of a table in key order, starting after the cursor: `WHERE (k1, k2) > (?, ?) ORDER BY k1, k2`.
 * Every row is returned exactly once across pages, even while the daemon writes (rows inserted behind the
 * cursor are simply not seen by this walk).
 */
export async function readRows(
  db: Knex, catalog: Catalog, table: string, limit: number, after: string | null,
  /** Only rows whose columns equal these values (the dashboard's file page: `source_key`). */
  where: Readonly<Record<string, string>> = {},
): Promise<{ rows: unknown[]; next: string | null }> {
  const tables = readableTables(catalog);
  const readable = tables.get(table);
  if (!readable) throw new ApiError(404, `no table ${table}; tables: ${[...tables.keys()].join(', ')}`);
  const { key } = readable;
  let query = db(table).select('*').where(where).orderBy(key.map((column) => ({ column, order: 'asc' as const }))).limit(limit + 1);
  if (after !== null) {
    const values = decodeCursor(after, readable.cursor);
    query = query.whereRaw(`(${key.map(() => '??').join(', ')}) > (${key.map(() => '?').join(', ')})`, [...key, ...values] as readonly Knex.Value[]);
  }
  const rows = (await query) as Array<Record<string, unknown>>;
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const next = rows.length > limit && last ? encodeCursor(key.map((k) => last[k])) : null;
  return { rows: page, next };
}

/** Registry entries in key order, optionally of one status, with the same cursor scheme: one page read, never the whole registry. */
export async function readFiles(registry: Registry, status: string | null, limit: number, after: string | null): Promise<{ files: unknown[]; next: string | null }> {
  if (status !== null && status !== 'done' && status !== 'failed') throw new ApiError(400, 'status must be done or failed');
  const filter: EntryFilter = { ordered: true };
  if (status !== null) filter.status = status;
  if (after !== null) filter.after = decodeCursor(after, ['text'])[0] as string;
  const files: Array<{ key: string } & RegistryEntry> = [];
  let more = false;
  for await (const [key, entry] of registry.entries(filter)) {
    if (files.length === limit) {
      more = true;
      break;
    }
    files.push({ key, ...entry });
  }
  const last = files[files.length - 1];
  return { files, next: more && last !== undefined ? encodeCursor([last.key]) : null };
}
