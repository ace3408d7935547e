import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { suggest } from '../config/load.js';
import { IngestError } from '../errors.js';
import { hashPii } from '../records/pii.js';
import type { Cell } from '../records/types.js';
import type { Catalog } from '../schemas/catalog.js';
import type { SchemaColumnSpec, SchemaRecordType } from '../schemas/compile.js';
import { rawCarries, textOf } from './erasures.js';
import { DATABASE_TABLE, dialectOf, ERASURES_TABLE, REJECTED_TABLE } from './schema.js';

/**
 * `bucket-ingest erase`: deletes the rows and stored rejections of a type that carry given values of one field, and
 * puts the values on the erasure list (erasures.ts) so later loads do not bring them back; all in one transaction.
 */

/** What is to be erased, checked against the schemas: each value as the column holds it, and as the list keeps it. */
export interface ErasureTarget {
  readonly type: SchemaRecordType;
  readonly field: string;
  /** `x-pii: "hash"`: values are compared (and listed) as their HMAC, never as themselves. */
  readonly pii: boolean;
  /** The values bound in the DELETE, as the loader binds that column's cells. */
  readonly cells: readonly Cell[];
  /** The values as the list keeps them and compares them ({@link textOf} of the cells). */
  readonly listed: readonly string[];
  /** For stored rejections only: a PII field's values as sent too, for rejections stored before the field was hashed. */
  readonly raw: readonly string[];
}

/**
 * Checks an erasure request against the catalog: the type is declared, the field is one of its columns, each value
 * fits the column's kind (`--field year 1999` is the integer 1999), and a PII field has its key. Throws one line.
 */
export function erasureTarget(catalog: Catalog, typeName: string, field: string, values: readonly string[], piiKey: string): ErasureTarget {
  const type = catalog.typeFor(typeName);
  const names = catalog.types.map((t) => t.type);
  if (!type) {
    throw new IngestError('BI_USAGE', `--type ${typeName}: no record type of that name in SCHEMAS${suggest(typeName, names)} (types: ${names.join(', ')})`);
  }
  const column = type.columns.find((c) => c.name === field);
  if (!column) {
    const columns = type.columns.map((c) => c.name);
    throw new IngestError('BI_USAGE', `--field ${field}: not a column of ${type.type} (${type.file})${suggest(field, columns)} (columns: ${columns.join(', ')})`);
  }
  if (values.length === 0) throw new IngestError('BI_USAGE', 'erase needs at least one VALUE');
  const pii = type.spec.properties.find((p) => p.name === field)?.pii === true;
  if (pii && piiKey === '') {
    throw new IngestError('BI_CONFIG', `${type.type}.${field} is personal data (x-pii: "hash" in ${type.file}): its rows hold the HMAC of each value, and erasing needs PII_HASH_KEY, the key they were hashed with`);
  }
  const cells = [...new Set(values)].map((v) => (pii ? hashPii(piiKey, v) : cellOf(column, v)));
  return { type, field, pii, cells, listed: cells.map((c) => textOf(c) as string), raw: pii ? [...new Set(values)] : [] };
}

/** `text` as a cell of `column`, so it compares with what the loader stored; one line naming the field when it cannot. */
function cellOf(column: SchemaColumnSpec, text: string): Cell {
  const refuse = (what: string): never => {
    throw new IngestError('BI_USAGE', `--field ${column.name} holds ${what}: got ${JSON.stringify(text)}`);
  };
  switch (column.kind) {
    case 'integer':
    case 'bigint': {
      const n = /^-?\d+$/.test(text) ? Number(text) : NaN;
      return Number.isSafeInteger(n) ? n : refuse('integers');
    }
    case 'float': {
      const n = text.trim() === '' ? NaN : Number(text);
      return Number.isFinite(n) ? n : refuse('numbers');
    }
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : refuse('true or false');
    // Checked here, or PostgreSQL would refuse the whole statement with its own words.
    case 'date':
      return /^\d{4}-\d{2}-\d{2}$/.test(text) ? text : refuse('dates (YYYY-MM-DD)');
    case 'timestamp':
      return Number.isNaN(Date.parse(text)) ? refuse('timestamps (RFC 3339)') : text;
    default:
      return text;
  }
}

export interface EraseResult {
  readonly table: string;
  /** Rows deleted from the type's table. */
  readonly rows: number;
  /** Rows deleted from `rejected_records`. */
  readonly rejected: number;
  /** Values put on the erasure list, and those already on it. */
  readonly added: number;
  readonly alreadyListed: number;
}

/** Values per statement (bindings stay far below every dialect's limit). */
const CHUNK = 500;
/** Stored rejections read per query while scanning a type's. */
const SCAN_BATCH = 1000;

/**
 * Erases `target` in one transaction: the rows of its table whose column holds one of the values, the stored
 * rejections of its type (of every bucket sharing the database) whose raw record's `data` holds one, and the values
 * added to the erasure list. On PostgreSQL and MySQL it first locks the database's identity row exclusively, which
 * every loading transaction takes shared (erasuresIn): no commit in flight can write a row this misses.
 *
 * Rejections are matched by reading them in batches and parsing their raw JSON here, not with the dialects' JSON
 * functions: those differ in how they compare (`->>` gives text for 1 and "1" alike; MySQL compares JSON types), and
 * the loader matches rejections the same way (ErasureList.rejectionErased). No index serves a match on the raw
 * text anyway; a scan of one type's rejections is what an operator's command can afford.
 */
export async function erase(db: Knex, target: ErasureTarget, now = new Date()): Promise<EraseResult> {
  const { type, field } = target;
  return db.transaction(async (trx) => {
    if (dialectOf(trx) !== 'better-sqlite3') await trx(DATABASE_TABLE).select('id').forUpdate();
    let rows = 0;
    for (let i = 0; i < target.cells.length; i += CHUNK) {
      rows += await trx(type.table).whereIn(field, target.cells.slice(i, i + CHUNK) as Array<string | number | boolean>).delete();
    }
    const wanted = new Set([...target.listed, ...target.raw]);
    const carries = (data: Record<string, unknown>): boolean => {
      const v = textOf(data[field]);
      return v !== undefined && wanted.has(v);
    };
    const ids: Array<number | string> = [];
    for (let after: number | string = 0; ;) {
      const batch = (await trx(REJECTED_TABLE).select('id', 'raw').where('type', type.type).andWhere('id', '>', after).orderBy('id').limit(SCAN_BATCH)) as Array<{ id: number | string; raw: string }>;
      for (const r of batch) if (rawCarries(r.raw, carries, wanted)) ids.push(r.id);
      if (batch.length < SCAN_BATCH) break;
      after = (batch[batch.length - 1] as { id: number | string }).id;
    }
    let rejected = 0;
    for (let i = 0; i < ids.length; i += CHUNK) rejected += await trx(REJECTED_TABLE).whereIn('id', ids.slice(i, i + CHUNK)).delete();
    const erasedAt = now.toISOString();
    let added = 0;
    for (let i = 0; i < target.listed.length; i += CHUNK) {
      const entries = target.listed.slice(i, i + CHUNK).map((value) => ({
        type: type.type, field, value, value_digest: createHash('sha256').update(value, 'utf8').digest('hex'), pii: target.pii, erased_at: erasedAt,
      }));
      const before = await countListed(trx, type.type, field);
      await trx(ERASURES_TABLE).insert(entries).onConflict(['type', 'field', 'value_digest']).ignore();
      added += (await countListed(trx, type.type, field)) - before;
    }
    return { table: type.table, rows, rejected, added, alreadyListed: target.listed.length - added };
  });
}

async function countListed(trx: Knex.Transaction, type: string, field: string): Promise<number> {
  const [row] = (await trx(ERASURES_TABLE).where({ type, field }).count({ n: '*' })) as Array<{ n: number | string }>;
  return Number(row?.n ?? 0);
}
