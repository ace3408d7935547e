import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { JsonRegistry } from '../registry/json-registry.js';
import type { RegistryEntry } from '../registry/entry.js';
import { configFrom, withCommonOptions, type CommonArgs } from './common.js';

export interface StatusArgs extends CommonArgs {
  json?: boolean;
}

export interface StatusReport {
  profile: string;
  registry: string;
  files: { total: number; done: number; failed: number };
  records: { loaded: number; rejected: number; skipped: number };
  failed: Array<{ key: string; error: string | null; attempts: number; nextAttemptAt: string | null }>;
  lastDoneAt: string | null;
}

/** Reads the registry (never writes it, so it is safe next to a running daemon) and sums it up. */
export async function statusReport(args: CommonArgs): Promise<StatusReport> {
  const config = configFrom(args);
  const path = resolve(config.settings.REGISTRY_PATH);
  const registry = await JsonRegistry.open(path, { writable: false });
  const report: StatusReport = {
    profile: config.profile, registry: path,
    files: { total: 0, done: 0, failed: 0 }, records: { loaded: 0, rejected: 0, skipped: 0 }, failed: [], lastDoneAt: null,
  };
  for (const [key, e] of registry.all() as Iterable<[string, RegistryEntry]>) {
    report.files.total++;
    report.files[e.status]++;
    if (e.status === 'done') {
      report.records.loaded += e.loaded;
      report.records.rejected += e.rejected;
      report.records.skipped += e.skipped;
      if (e.doneAt && (report.lastDoneAt === null || e.doneAt > report.lastDoneAt)) report.lastDoneAt = e.doneAt;
    } else {
      report.failed.push({ key, error: e.error, attempts: e.attempts, nextAttemptAt: e.nextAttemptAt });
    }
  }
  return report;
}

export function formatStatus(r: StatusReport): string {
  const lines = [
    `profile ${r.profile}, registry ${r.registry}`,
    `files: ${r.files.total} known, ${r.files.done} done, ${r.files.failed} failed`,
    `records in done files: ${r.records.loaded} loaded, ${r.records.rejected} rejected, ${r.records.skipped} skipped`,
    `last file done at: ${r.lastDoneAt ?? 'never'}`,
  ];
  if (r.failed.length > 0) {
    lines.push('failed files:');
    for (const f of r.failed) lines.push(`  ${f.key}: ${f.error ?? 'unknown error'} (attempts ${f.attempts}, next try after ${f.nextAttemptAt ?? 'next cycle'})`);
  }
  return lines.join('\n');
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'what the registry knows: files by status, record totals, failed files and their errors',
  builder: (y) => withCommonOptions(y).option('json', { type: 'boolean', describe: 'print JSON' }) as never,
  handler: async (args) => {
    const report = await statusReport(args);
    process.stdout.write(`${args.json ? JSON.stringify(report, null, 2) : formatStatus(report)}\n`);
  },
};
