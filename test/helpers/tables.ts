import knexFactory from 'knex';
import { dump, type Dump } from './databases.js';

export type { Dump } from './databases.js';

/** Every row of an SQLite database's tables, without time columns, in a stable order. */
export function dumpSqlite(filename: string): Promise<Dump> {
  return dump(knexFactory({ client: 'better-sqlite3', connection: { filename }, useNullAsDefault: true }));
}

export async function countRows(filename: string, table: string): Promise<number> {
  const db = knexFactory({ client: 'better-sqlite3', connection: { filename }, useNullAsDefault: true });
  try {
    const [row] = (await db(table).count({ n: '*' })) as Array<{ n: number }>;
    return Number(row?.n ?? 0);
  } finally {
    await db.destroy();
  }
}
