import pLimit from 'p-limit';
import { inThread } from '../formats/threads/pool.js';
import { describeError } from '../errors.js';
import { parseDatabaseUrl } from '../load/database.js';
import { decodeStream, formatRules, validateBatch, type FormatRules } from '../formats/index.js';
import type { Catalog } from '../schemas/catalog.js';
import { planInto, type Plan, type PlanReason } from '../plan.js';
import { listingFilter, listingPages, timeWindow, withEntries } from '../listing.js';
import { prepare, type Prepared } from '../pipeline.js';
import { redactText } from '../redact.js';
import { readReprocessRequests } from '../registry/requests.js';
import { createSource } from '../sources/index.js';
import type { Binding } from '../registry/binding.js';
import type { RegistryEntry } from '../registry/entry.js';
import type { Registry } from '../registry/types.js';
import type { LoadedConfig } from '../config/load.js';
import { configFrom, printOut, openRegistryForReading } from './common.js';
import type { RunArgs } from './run.js';

export interface DryRunFile {
  key: string;
  /** Position in the bucket index. */
  index: number;
  /** Why the cycle would process it. */
  reason: PlanReason;
  /** `load`: fetched and validated; `unchanged`: the bucket says the loaded version is current. */
  outcome: 'load' | 'unchanged' | 'failed' | 'cancelled';
  loaded: number;
  rejected: number;
  skipped: number;
  bytes: number;
  error: string | null;
}

export interface DryRunReport {
  profile: string;
  bucket: string;
  /** Where a real run would write (DATABASE_URL, password masked); not opened. */
  database: string;
  registry: string;
  /** Why the registry's entries were not planned from (another database or bucket), or null. */
  untrusted: string | null;
  listed: number;
  planned: number;
  upToDate: number;
  backoff: number;
  files: DryRunFile[];
  totals: { load: number; unchanged: number; failed: number; loaded: number; rejected: number; skipped: number; bytes: number };
}

/**
 * What one cycle would do, without doing it: lists the bucket, plans with the registry (read-only, plus the
 * reprocess requests a daemon would apply first), then fetches, decodes and validates each planned file with
 * the cycle's own `prepare`, CONCURRENCY at once. Writes nothing: no database is opened, no directory created,
 * no registry, journal, lock or sidecar touched. `onFile` sees each file in index order as soon as it can.
 */
export async function dryRun(args: RunArgs, onFile?: (f: DryRunFile) => void): Promise<DryRunReport> {
  const config = configFrom(args, { CONCURRENCY: args.concurrency });
  const { settings } = config;
  const database = parseDatabaseUrl(settings.DATABASE_URL).display;
  const { registry, path, binding, close } = await openRegistryForReading(config);
  try {
    return await dryRunWith(args, config, registry, path, binding, database, onFile);
  } finally {
    await close();
  }
}

async function dryRunWith(
  args: RunArgs, config: LoadedConfig, registry: Registry, path: string, binding: Binding, database: string, onFile?: (f: DryRunFile) => void,
): Promise<DryRunReport> {
  const { settings } = config;
  const requested = new Set((await readReprocessRequests(path, binding)).map((r) => r.key));
  // Planned as if the pending reprocess requests were applied, as the next cycle applies them before it plans.
  const lookup = async (keys: readonly string[]): Promise<Map<string, RegistryEntry>> => {
    const found = await registry.lookup(keys);
    for (const [key, entry] of found) if (requested.has(key)) found.set(key, { ...entry, reprocess: true });
    return found;
  };
  const source = createSource(settings, {
    onRetry: (e) => process.stderr.write(`${redactText(`${e.key}: attempt ${e.attempt} failed (${e.reason}); retrying in ${e.delayMs} ms`)}\n`),
  });
  try {
    // Listed and planned as a cycle lists and plans (versions from an S3 listing, the filters and --since/--until).
    const now = Date.now();
    const never = new AbortController().signal;
    const considered = listingFilter(settings, timeWindow(args));
    const plan: Plan = { todo: [], upToDate: 0, backoff: 0 };
    let listed = 0;
    for await (const slice of withEntries(listingPages(source, () => source.listKeys(), never, null).pages, 0, (o) => considered(o, now), lookup)) {
      for (const { o, index, entry } of slice) {
        listed++;
        planInto(plan, o.key, index, entry, { force: Boolean(args.force), now, recheckDoneMs: settings.RECHECK_DONE_SECONDS * 1000 }, o);
      }
    }
    const report: DryRunReport = {
      profile: config.profile, bucket: source.description, database, registry: registry.description,
      untrusted: registry.untrusted?.reason ?? null,
      listed, planned: plan.todo.length, upToDate: plan.upToDate, backoff: plan.backoff, files: [],
      totals: { load: 0, unchanged: 0, failed: 0, loaded: 0, rejected: 0, skipped: 0, bytes: 0 },
    };
    const results: Array<DryRunFile | undefined> = [];
    let next = 0;
    const rules = formatRules(settings);
    const limit = pLimit(settings.CONCURRENCY);
    await Promise.all(plan.todo.map((item, i) => limit(async () => {
      // Only the counts are kept, so at most CONCURRENCY validated files are in memory at once.
      results[i] = await summarize(config.catalog, rules, await prepare({ source, settings, decoder: inThread(config.catalog, false, rules) }, item, never));
      for (let r = results[next]; r !== undefined; r = results[++next]) onFile?.(r);
    })));
    for (const f of results as DryRunFile[]) {
      report.files.push(f);
      const t = report.totals;
      if (f.outcome === 'load') t.load++;
      else if (f.outcome === 'unchanged') t.unchanged++;
      else if (f.outcome === 'failed') t.failed++;
      t.loaded += f.loaded;
      t.rejected += f.rejected;
      t.skipped += f.skipped;
      t.bytes += f.bytes;
    }
    return report;
  } finally {
    await source.close();
  }
}

async function summarize(catalog: Catalog, rules: FormatRules, p: Prepared): Promise<DryRunFile> {
  const base = { key: p.item.key, index: p.item.index, reason: p.item.reason, loaded: 0, rejected: 0, skipped: 0, bytes: 0, error: null };
  switch (p.kind) {
    case 'stream': {
      // Read and validated in batches as a real cycle would, counting only.
      const counts = { loaded: 0, rejected: 0, skipped: 0, bytes: p.size ?? 0 };
      try {
        for await (const records of decodeStream(p.item.key, p.stream, rules, { batchRecords: 5000, batchBytes: 4 << 20 })) {
          const batch = validateBatch(catalog, records, new Date().toISOString());
          counts.loaded += batch.loaded;
          counts.rejected += batch.rejections.length;
          counts.skipped += batch.skipped;
        }
      } catch (err) {
        p.stream.destroy();
        return { ...base, outcome: 'failed', error: describeError(err) };
      }
      return { ...base, outcome: 'load', ...counts };
    }
    case 'load':
      return { ...base, outcome: 'load', loaded: p.file.loaded, rejected: p.file.rejections.length, skipped: p.file.skipped, bytes: p.size };
    case 'unchanged':
      return { ...base, outcome: 'unchanged' };
    case 'failed':
      return { ...base, outcome: 'failed', error: p.error };
    default: // cancelled (and `elsewhere`, which only claiming, never `prepare` alone, returns)
      return { ...base, outcome: 'cancelled' };
  }
}

export function formatDryRunFile(f: DryRunFile): string {
  switch (f.outcome) {
    case 'load':
      return `load       ${f.key}: ${f.loaded} record(s) would be loaded, ${f.rejected} rejected, ${f.skipped} skipped (${f.reason})`;
    case 'unchanged':
      return `unchanged  ${f.key}: the bucket says the loaded version is current (${f.reason})`;
    case 'failed':
      return `fail       ${f.key}: ${f.error ?? 'unknown error'} (${f.reason})`;
    case 'cancelled':
      return `cancelled  ${f.key}`;
  }
}

export function formatDryRunTotals(r: DryRunReport): string {
  const t = r.totals;
  return `dry run, profile ${r.profile}, bucket ${r.bucket}: ${r.listed} listed, ${r.planned} to process ` +
    `(${r.upToDate} up to date, ${r.backoff} waiting to retry); files ${t.load} would load, ${t.unchanged} unchanged, ${t.failed} would fail; ` +
    `records ${t.loaded} would be loaded, ${t.rejected} rejected, ${t.skipped} skipped. Nothing was written (database ${r.database}, registry ${r.registry}` +
    `${r.untrusted === null ? '' : `, not trusted: ${r.untrusted}; so every listed file is planned`}).`;
}

/**
 * `run --dry-run`: prints what the next cycle would do per file, then the totals (or, with `json`, one JSON
 * document). Exit code 0, or 1 if some files would fail.
 */
export async function dryRunHandler(args: RunArgs & { json?: boolean }): Promise<number> {
  const report = await dryRun(args, args.json ? undefined : (f) => printOut(formatDryRunFile(f)));
  printOut(args.json ? JSON.stringify(report, null, 2) : formatDryRunTotals(report));
  return report.totals.failed > 0 ? 1 : 0;
}
