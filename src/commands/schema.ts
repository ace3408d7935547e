import { openExistingReadOnly } from '../inspect/database.js';
import { IngestError } from '../errors.js';
import { openDatabase, parseDatabaseUrl, startupStep } from '../load/database.js';
import { applyEvolution } from '../load/evolve-apply.js';
import { changesOf, planEvolution, type EvolutionPlan, type Statement, type TablePlan } from '../load/evolve.js';
import { configFrom, printOut } from './common.js';
import type { CommonArgs } from './options.js';

export interface SchemaArgs extends CommonArgs {
  action: 'check' | 'apply';
  json?: boolean;
}

export interface SchemaReport extends EvolutionPlan {
  profile: string;
  /** DATABASE_URL with any password masked. */
  database: string;
}

/** `schema check`: the plan for the profile's database, read only (SQLite opened read-only; a missing database is an error). */
export async function schemaCheck(args: CommonArgs): Promise<SchemaReport> {
  const config = configFrom(args);
  const target = parseDatabaseUrl(config.settings.DATABASE_URL);
  const db = await openExistingReadOnly(target);
  try {
    return { profile: config.profile, database: target.display, ...(await planEvolution(db, config.catalog)) };
  } finally {
    await db.destroy();
  }
}

/** `schema apply`: plans again and runs every statement (see applyEvolution); `onRun` hears of each once it ran. */
export async function schemaApply(args: CommonArgs, onRun: (s: Statement) => void = () => undefined): Promise<SchemaReport & { ran: Statement[] }> {
  const config = configFrom(args);
  const target = parseDatabaseUrl(config.settings.DATABASE_URL);
  // The same refusal of a missing database as check's, before a writable open could create an empty one.
  await (await openExistingReadOnly(target)).destroy();
  const db = await openDatabase(target, { poolSize: 2 });
  const ran: Statement[] = [];
  try {
    const plan = await startupStep(target, 'cannot apply the schemas to', () => applyEvolution(db, config.catalog, (s) => { ran.push(s); onRun(s); }));
    return { profile: config.profile, database: target.display, ...plan, ran };
  } catch (err) {
    // SQLite and PostgreSQL rolled back every statement; MySQL committed each one that ran.
    if (target.dialect !== 'mysql' || ran.length === 0 || !(err instanceof IngestError)) throw err;
    throw new IngestError(err.code, `${err.message}; the ${ran.length} statement(s) before it stay applied (MySQL commits each DDL statement): ` +
      `${ran.map((s) => s.sql).join('; ')}; \`bucket-ingest schema check\` shows what remains`, { cause: err });
  } finally {
    await db.destroy();
  }
}

function nullability(nullable: boolean): string {
  return nullable ? 'NULL' : 'NOT NULL';
}

function formatTable(t: TablePlan): string[] {
  if (!t.exists) return [`${t.table} (${t.file}): missing; the next start creates it`];
  const lines = [`${t.table} (${t.file}): ${t.changes.length === 0 ? 'matches its schema' : `${t.changes.length} change(s)`}`];
  const rows = [
    ['column', 'table', 'schema', ''],
    ...t.columns.map((c) => {
      const change = t.changes.find((x) => x.kind !== 'key' && x.column === c.name);
      return [
        c.name,
        c.table === null ? '-' : `${c.table.type} ${nullability(c.table.nullable)}`,
        c.schema === null ? '-' : `${c.schema.type} ${nullability(c.schema.nullable)}`,
        change === undefined ? '' : change.what,
      ];
    }),
    ['key', t.key.table === null ? '-' : `(${t.key.table.join(', ')})`, `(${t.key.schema.join(', ')})`, t.changes.find((x) => x.kind === 'key')?.what ?? ''],
  ];
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => (r[i] as string).length)));
  for (const r of rows) lines.push(`  ${r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i] as number) : cell)).join('  ')}`.trimEnd());
  return lines;
}

/** Each table against its schema, then the statements `schema apply` would run, marked safe (start-up runs them too) or unsafe. */
export function formatCheck(r: SchemaReport): string {
  const lines = [`profile ${r.profile}, database ${r.database}`];
  for (const t of r.tables) lines.push('', ...formatTable(t));
  const statements = r.tables.flatMap((t) => [...t.statements]);
  lines.push('');
  if (statements.length === 0) lines.push('schema apply would run nothing: every record table matches its schema');
  else {
    lines.push('schema apply would run ([safe]: start-up runs it too; [unsafe]: only schema apply does):');
    for (const s of statements) lines.push(`  ${s.safe ? '[safe]  ' : '[unsafe]'} ${s.sql};`);
  }
  const blocked = changesOf(r).filter((c) => c.blocked !== null);
  if (blocked.length > 0) {
    lines.push('', 'blocked: schema apply runs nothing while these hold (change the schema back, or the rows):');
    for (const c of blocked) lines.push(`  table ${c.table}, ${c.kind === 'key' ? 'key' : `column ${c.column}`}: ${c.what}: ${c.blocked as string}`);
  }
  return lines.join('\n');
}

/** What `schema` does once its command line is parsed (src/commands/index.ts loads this module only then). */
export async function schemaMain(args: SchemaArgs): Promise<void> {
  if (args.action === 'check') {
    const report = await schemaCheck(args);
    printOut(args.json ? JSON.stringify(report, null, 2) : formatCheck(report));
    return;
  }
  const report = await schemaApply(args);
  if (args.json) printOut(JSON.stringify(report, null, 2));
  else if (report.ran.length === 0) printOut('nothing to change: every record table matches its schema');
  else printOut([`ran ${report.ran.length} statement(s):`, ...report.ran.map((s) => `  ${s.sql};`)].join('\n'));
}
