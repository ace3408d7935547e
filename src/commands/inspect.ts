import type { CommandModule } from 'yargs';
import { IngestError } from '../errors.js';
import { describeDatabase, openExistingReadOnly, cut, type DatabaseReport } from '../inspect/database.js';
import { parseDatabaseUrl } from '../load/database.js';
import { configFrom, printOut, withCommonOptions, type CommonArgs } from './common.js';

export interface InspectArgs extends CommonArgs {
  samples?: number;
  json?: boolean;
}

export interface InspectReport extends DatabaseReport {
  profile: string;
  /** DATABASE_URL with any password masked. */
  database: string;
  file: string | null;
}

export const DEFAULT_SAMPLES = 3;

/** Reads the profile's database (read-only; a missing database is an error, never created). */
export async function inspectReport(args: InspectArgs): Promise<InspectReport> {
  const config = configFrom(args);
  const target = parseDatabaseUrl(config.settings.DATABASE_URL);
  const db = await openExistingReadOnly(target);
  try {
    const report = await describeDatabase(db, args.samples ?? DEFAULT_SAMPLES);
    return { profile: config.profile, database: target.display, file: target.filename ?? null, ...report };
  } finally {
    await db.destroy();
  }
}

/** A value as it reads in a sample line: JSON, cut to `max` characters. */
function cell(v: unknown, max = 48): string {
  return cut(JSON.stringify(v) ?? String(v), max);
}

export function formatInspect(r: InspectReport): string {
  const lines = [`profile ${r.profile}, database ${r.database}${r.file ? ` (${r.file})` : ''}`, 'tables:'];
  const width = Math.max(...r.tables.map((t) => t.table.length));
  for (const t of r.tables) lines.push(`  ${t.table.padEnd(width)}  ${t.exists ? `${t.rows} row(s)` : 'missing'}`);
  for (const t of r.tables) {
    if (!t.exists || t.samples.length === 0) continue;
    lines.push('', `${t.table}: ${t.samples.length} of ${t.rows}, by ${t.orderBy.join(', ')}`);
    for (const row of t.samples) lines.push(`  ${Object.entries(row).map(([k, v]) => `${k}=${cell(v, k === 'raw' ? 100 : 48)}`).join('  ')}`);
  }
  const { total, groups } = r.rejections;
  lines.push('', total === 0 ? 'rejected records: none' : `rejected records by reason: ${total} in ${groups.length} group(s)`);
  for (const g of groups) {
    lines.push(`  ${String(g.count).padStart(6)}  ${g.reason}  [${g.types.map((t) => t ?? 'no type').join(', ')}]`);
    lines.push(`          e.g. ${g.example.sourceKey} #${g.example.recordIndex}: ${cut(g.example.raw, 100)}`);
  }
  return lines.join('\n');
}

export const inspectCommand: CommandModule<object, InspectArgs> = {
  command: 'inspect',
  describe: "the profile's database: row counts, sample rows per table, rejected records grouped by reason (reads only)",
  builder: (y) =>
    withCommonOptions(y)
      .option('samples', { type: 'number', describe: `sample rows per table (default ${DEFAULT_SAMPLES})` })
      .option('json', { type: 'boolean', describe: 'print JSON' })
      .check((argv) => {
        const n = argv.samples;
        if (n !== undefined && !(Number.isInteger(n) && n >= 0 && n <= 10_000)) throw new IngestError('BI_USAGE', `--samples: expected an integer from 0 to 10000, got ${String(n)}`);
        return true;
      }) as never,
  handler: async (args) => {
    const report = await inspectReport(args);
    printOut(args.json ? JSON.stringify(report, null, 2) : formatInspect(report));
  },
};
