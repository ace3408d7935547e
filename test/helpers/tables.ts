import knexFactory from 'knex';

/** Columns that hold load times: they differ between any two runs and are left out of comparisons. */
const TIME_COLUMNS = new Set(['loaded_at', 'ingestion_time', 'rejected_at', 'id']);

export type Dump = Record<string, Array<Record<string, unknown>>>;

/** Every row of the data tables and rejected_records, without time columns, in a stable order. */
export async function dumpSqlite(filename: string): Promise<Dump> {
  const db = knexFactory({ client: 'sqlite3', connection: { filename }, useNullAsDefault: true });
  try {
    const dump: Dump = {};
    for (const table of ['songs', 'movies', 'apps', 'rejected_records']) {
      const rows = (await db(table).select()) as Array<Record<string, unknown>>;
      dump[table] = rows
        .map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !TIME_COLUMNS.has(k))))
        .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
    }
    return dump;
  } finally {
    await db.destroy();
  }
}

export async function countRows(filename: string, table: string): Promise<number> {
  const db = knexFactory({ client: 'sqlite3', connection: { filename }, useNullAsDefault: true });
  try {
    const [row] = (await db(table).count({ n: '*' })) as Array<{ n: number }>;
    return Number(row?.n ?? 0);
  } finally {
    await db.destroy();
  }
}
