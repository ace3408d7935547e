import type { Knex } from 'knex';
import { IngestError } from '../errors.js';
import type { Catalog } from '../schemas/catalog.js';
import { changesOf, planEvolution, type Change, type EvolutionPlan, type Statement } from './evolve.js';
import { dialectOf } from './schema.js';

/**
 * Runs what evolve.ts plans: the safe part at every start-up (refusing to start while an unsafe change waits), all
 * of it through `bucket-ingest schema apply`. Where the dialect has transactional DDL (SQLite, PostgreSQL) the
 * statements run in one transaction, so a failure leaves every table as it was; MySQL commits each DDL statement on
 * its own, so a failure there leaves the statements before it applied (the next `schema check` plans what remains).
 */

function where(c: Change): string {
  return c.kind === 'key' ? `table ${c.table}, key` : `table ${c.table}, column ${c.column}`;
}

/** The one BI_SCHEMA line of changes that keep the daemon from starting (blocked ones first: apply cannot help them). */
export function refusal(plan: EvolutionPlan, refused: readonly Change[]): IngestError {
  const first = [...refused].sort((a, b) => Number(b.blocked !== null) - Number(a.blocked !== null))[0] as Change;
  const file = plan.tables.find((t) => t.table === first.table)?.file ?? first.table;
  const more = refused.length > 1 ? ` (and ${refused.length - 1} more change(s): \`bucket-ingest schema check\` lists them)` : '';
  const what = first.blocked !== null
    ? `${first.what}, which the stored rows forbid: ${first.blocked}; change the schema back, or the rows`
    : `${first.what}; this could lose or corrupt data, so start-up does not do it: \`bucket-ingest schema check\` shows the statements, ` +
      '`bucket-ingest schema apply` runs them (or change the schema back)';
  return new IngestError('BI_SCHEMA', `${file}: ${where(first)}: ${what}${more}`);
}

/** Runs `statements` in order (in one transaction where DDL is transactional); `onRun` hears of each once it ran. */
async function runStatements(db: Knex, statements: readonly Statement[], onRun: (s: Statement) => void = () => undefined): Promise<void> {
  if (statements.length === 0) return;
  const run = async (k: Knex): Promise<void> => {
    for (const s of statements) {
      // No bindings: knex would read a `?` of a default value as a placeholder.
      await k.raw(s.sql);
      onRun(s);
    }
  };
  if (dialectOf(db) === 'mysql2') await run(db);
  else await db.transaction(run);
}

export interface StartupEvolution {
  /** Told of each safe change once it is committed (the SchemaEvolved event). */
  onEvolved?: (change: Change) => void;
}

/**
 * At start-up, after the migrations: creates the tables the catalog's types have none of and makes the safe changes;
 * any other change refuses the start with one BI_SCHEMA line, before anything is altered.
 */
export async function evolveRecordTables(db: Knex, catalog: Catalog, opts: StartupEvolution = {}): Promise<void> {
  const plan = await planEvolution(db, catalog);
  const changes = changesOf(plan);
  const refused = changes.filter((c) => !c.safe || c.blocked !== null);
  if (refused.length > 0) throw refusal(plan, refused);
  await runStatements(db, plan.tables.flatMap((t) => [...t.statements]));
  for (const c of changes) opts.onEvolved?.(c);
}

/**
 * `schema apply`: plans again and runs every statement, safe or not. On PostgreSQL the plan is made inside the
 * transaction once the tables are locked against writes (SHARE ROW EXCLUSIVE), so the rows it checked are the rows
 * the statements change; a blocked change stops it before anything runs.
 */
export async function applyEvolution(db: Knex, catalog: Catalog, onRun: (s: Statement) => void): Promise<EvolutionPlan> {
  const planAndRun = async (k: Knex): Promise<EvolutionPlan> => {
    if (dialectOf(k) === 'pg') {
      for (const type of catalog.types) {
        if (await k.schema.hasTable(type.table)) await k.raw('LOCK TABLE ?? IN SHARE ROW EXCLUSIVE MODE', [type.table]);
      }
    }
    const plan = await planEvolution(k, catalog);
    const blocked = changesOf(plan).filter((c) => c.blocked !== null);
    if (blocked.length > 0) throw refusal(plan, blocked);
    const statements = plan.tables.flatMap((t) => [...t.statements]);
    for (const s of statements) {
      await k.raw(s.sql);
      onRun(s);
    }
    return plan;
  };
  if (dialectOf(db) === 'mysql2') return planAndRun(db);
  return db.transaction(planAndRun);
}
