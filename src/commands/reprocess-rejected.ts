import { existsSync } from 'node:fs';
import type { Knex } from 'knex';
import type { LoadedConfig } from '../config/load.js';
import { IngestError } from '../errors.js';
import { openDatabase, parseDatabaseUrl, startupStep, type DatabaseTarget } from '../load/database.js';
import { replayRejections, type ReplayReport } from '../load/replay.js';
import { migrate, REJECTED_TABLE } from '../load/schema.js';
import { bucketId, bucketIdentity } from '../registry/binding.js';
import { configFrom, printOut } from './common.js';
import type { ReprocessArgs } from './reprocess.js';

/**
 * `reprocess --rejected`: replays the bucket's stored rejections against the current schemas (src/load/replay.ts)
 * and prints what became of them per type and reason. Migrates first (the schemas may name a new table; migrations
 * are safe next to a running daemon); with `--dry-run` writes nothing at all. Exit code 0.
 */
export async function replayHandler(args: ReprocessArgs): Promise<number> {
  const config = configFrom(args);
  const { settings } = config;
  const target = parseDatabaseUrl(settings.DATABASE_URL);
  if (target.dialect === 'sqlite' && (target.filename === ':memory:' || !existsSync(target.filename as string))) {
    throw new IngestError('BI_USAGE', `no database at ${target.display}: nothing has been loaded or rejected yet`);
  }
  const identity = bucketIdentity(settings);
  const db = await openDatabase(target, { poolSize: 2 });
  let report: ReplayReport;
  try {
    const dryRun = Boolean(args['dry-run']);
    if (!dryRun) {
      await startupStep(target, 'cannot migrate', () => migrate(db, { catalog: config.catalog, display: target.display, lockTimeoutMs: settings.DATABASE_LOCK_TIMEOUT_SECONDS * 1000 }));
    } else if (!(await db.schema.hasTable(REJECTED_TABLE))) {
      throw new IngestError('BI_USAGE', `${target.display} has no ${REJECTED_TABLE} table: no daemon has loaded into it yet`);
    }
    report = await replayStored(config, db, target, identity, { type: args.type, reason: args.reason, dryRun });
  } finally {
    await db.destroy();
  }
  printOut(formatReplay(report, identity));
  return 0;
}

/**
 * Replays the stored rejections of the bucket `identity` names in an open, migrated database: `reprocess --rejected`'s
 * step, and the dashboard's replay action (on the daemon's own connection). An undeclared `type` is BI_USAGE.
 */
export async function replayStored(
  config: LoadedConfig, db: Knex, target: DatabaseTarget, identity: string, opts: { type?: string | undefined; reason?: string | undefined; dryRun: boolean },
): Promise<ReplayReport> {
  if (opts.type !== undefined && config.catalog.typeFor(opts.type) === undefined) {
    const known = config.catalog.types.map((t) => t.type).join(', ');
    throw new IngestError('BI_USAGE', `--type ${JSON.stringify(opts.type)}: no such record type in SCHEMAS ${config.settings.SCHEMAS} (declared: ${known})`);
  }
  return startupStep(target, 'cannot replay the rejected records in', () => replayRejections({
    db, dialect: target.dialect, catalog: config.catalog, bucket: bucketId(identity), type: opts.type, reason: opts.reason, dryRun: opts.dryRun,
  }));
}

/** The report as people read it: a summary line, then one line per type and reason, then what was left and why. */
export function formatReplay(report: ReplayReport, bucket: string): string {
  const would = report.dryRun ? 'would be ' : '';
  const sum = (k: 'loaded' | 'superseded' | 'stillRejected' | 'skipped'): number => report.groups.reduce((n, g) => n + g[k], 0);
  const lines = [
    `${report.dryRun ? 'dry run, nothing written: ' : ''}${report.matched} stored rejection(s) of bucket ${bucket} matched: ` +
      `${sum('loaded')} ${would}loaded, ${sum('superseded')} ${would}removed as a later file holds their key, ${sum('stillRejected')} still rejected, ${sum('skipped')} left as they are`,
  ];
  for (const g of report.groups) {
    const parts = [
      g.loaded > 0 ? `${g.loaded} ${would}loaded` : '', g.superseded > 0 ? `${g.superseded} ${would}removed (a later file holds the key)` : '',
      g.stillRejected > 0 ? `${g.stillRejected} still rejected` : '', g.skipped > 0 ? `${g.skipped} left` : '',
      g.replaced > 0 ? `${g.replaced} replaced meanwhile by a load of their file` : '',
    ].filter((p) => p !== '');
    const now = g.reasonsNow.length > 0 ? ` (now: ${g.reasonsNow.map((r) => JSON.stringify(r)).join(', ')})` : '';
    lines.push(`  ${g.type ?? '(no type)'}: ${JSON.stringify(g.reason)}: ${parts.join(', ')}${now}`);
  }
  for (const s of report.skipped) {
    const why = s.why === 'no-position'
      ? "its file's place in the bucket index is unknown (stored before positions were, and neither the registry nor the file's rows give it)"
      : 'another record of the same file with the same key is loaded, and which of them comes later is not stored';
    lines.push(`left: ${s.sourceKey} record ${s.recordIndex}: ${why}; reprocess that file to load it`);
  }
  if (report.skippedTotal > report.skipped.length) lines.push(`left: ${report.skippedTotal - report.skipped.length} more like these`);
  if (report.replacedMeanwhile > 0) lines.push(`${report.replacedMeanwhile} rejection(s) were replaced meanwhile by a load of their file, and left to it`);
  return lines.join('\n');
}
