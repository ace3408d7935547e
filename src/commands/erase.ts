import { existsSync } from 'node:fs';
import { IngestError } from '../errors.js';
import { openDatabase, parseDatabaseUrl, startupStep } from '../load/database.js';
import { erase, erasureTarget, type EraseResult, type ErasureTarget } from '../load/erase.js';
import { migrate, REJECTED_TABLE, ERASURES_TABLE } from '../load/schema.js';
import { configFrom, printOut } from './common.js';
import type { CommonArgs } from './options.js';

export interface EraseArgs extends CommonArgs {
  type: string;
  field: string;
  values: string[];
}

/**
 * What `erase` prints: counts per table, never a value (a PII field's values are personal, and the others the
 * operator asked to be rid of).
 */
export function eraseReport(target: ErasureTarget, r: EraseResult): string {
  const what = `${target.type.type}.${target.field}${target.pii ? ' (x-pii: matched by the HMAC of each value)' : ''}`;
  return [
    `erased ${target.listed.length} value(s) of ${what}:`,
    `  ${r.table}: ${r.rows} row(s) deleted`,
    `  ${REJECTED_TABLE}: ${r.rejected} row(s) deleted`,
    `  ${ERASURES_TABLE}: ${r.added} value(s) added, ${r.alreadyListed} already listed (records of later files carrying them are not stored)`,
  ].join('\n');
}

/**
 * Erases values of one field of a type from its table and the stored rejections, and lists them so later loads do
 * not bring them back (src/load/erase.ts). Migrates first, like a daemon's start (the list is a table of migration
 * 006), so it works on a database an older version loaded; safe next to a running daemon.
 */
export async function eraseHandler(args: EraseArgs): Promise<number> {
  const config = configFrom(args);
  const target = erasureTarget(config.catalog, args.type, args.field, args.values ?? [], config.settings.PII_HASH_KEY);
  const database = parseDatabaseUrl(config.settings.DATABASE_URL);
  if (database.dialect === 'sqlite' && database.filename !== ':memory:' && !existsSync(database.filename as string)) {
    throw new IngestError('BI_DATABASE', `${database.display}: no such database file; nothing was erased`);
  }
  const db = await openDatabase(database, { poolSize: 2 });
  try {
    await startupStep(database, 'cannot migrate', () => migrate(db, {
      catalog: config.catalog, display: database.display, lockTimeoutMs: config.settings.DATABASE_LOCK_TIMEOUT_SECONDS * 1000,
    }));
    const result = await startupStep(database, 'cannot erase in', () => erase(db, target));
    printOut(eraseReport(target, result));
    return 0;
  } finally {
    await db.destroy();
  }
}

/** What `erase` does once its command line is parsed (src/commands/index.ts loads this module only then). */
export async function eraseMain(args: EraseArgs): Promise<void> {
  process.exitCode = await eraseHandler(args);
}
