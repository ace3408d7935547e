import { describeDatabase, openExistingReadOnly, cut, type DatabaseReport } from '../inspect/database.js';
import { parseDatabaseUrl } from '../load/database.js';
import { configFrom, printOut } from './common.js';
import { DEFAULT_SAMPLES, type CommonArgs } from './options.js';

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


/** Reads the profile's database (read-only; a missing database is an error, never created). */
export async function inspectReport(args: InspectArgs): Promise<InspectReport> {
  const config = configFrom(args);
  const target = parseDatabaseUrl(config.settings.DATABASE_URL);
  const db = await openExistingReadOnly(target);
  try {
    const report = await describeDatabase(db, config.catalog, args.samples ?? DEFAULT_SAMPLES);
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

/** What `inspect` does once its command line is parsed (src/commands/index.ts loads this module only then). */
export async function inspectMain(args: InspectArgs): Promise<void> {
  const report = await inspectReport(args);
  printOut(args.json ? JSON.stringify(report, null, 2) : formatInspect(report));
}
