import type { ServerResponse } from 'node:http';
import type { Knex } from 'knex';
import type { LoadedConfig } from '../config/load.js';
import { explainWith, type Explanation } from '../commands/explain.js';
import { statusOf, type StatusReport } from '../commands/status.js';
import { describeError } from '../errors.js';
import { redactText } from '../redact.js';
import { groupRejections, type ReasonGroup } from '../inspect/database.js';
import { reasonPattern } from '../inspect/reasons.js';
import type { DatabaseTarget } from '../load/database.js';
import { REJECTED_TABLE } from '../load/schema.js';
import type { Binding } from '../registry/binding.js';
import { readCycleHistory } from '../registry/cycle-history.js';
import type { Registry } from '../registry/types.js';
import type { ProgressListener, Telemetry } from '../telemetry.js';
import { ApiError, decodeCursor, encodeCursor, readableTables } from './api.js';

/** What the dashboard needs beyond the read API: what the daemon runs on, and whether actions are allowed. */
export interface DashboardContext {
  config: LoadedConfig;
  /** The bucket as the logs name it (credentials masked). */
  bucket: string;
  target: DatabaseTarget;
  /** Base path of the registry's side files (`registryPathOf`). */
  registryPath: string;
  binding: Binding;
  /** DASHBOARD_TOKEN, or null when it is not set: then the dashboard is read-only and no action endpoint answers. */
  token: string | null;
}

/** The sources of the dashboard's pages: the daemon's own registry, database and telemetry. */
export interface DashboardSources {
  dashboard: DashboardContext;
  registry: Registry;
  db: Knex;
  telemetry: Telemetry;
  alive(): boolean;
}

/** The cycle in progress, as the progress bar sees it. */
export interface CurrentCycle {
  cycle: number;
  startedAt: string;
  planned: number;
  done: number;
  failed: number;
  unchanged: number;
  cancelled: number;
  records: number;
}

/** One cycle of the History chart and table. */
export interface HistoryPoint {
  cycle: number;
  finishedAt: string;
  ok: boolean;
  error: string | null;
  seconds: number | null;
  filesDone: number;
  filesFailed: number;
  filesUnchanged: number;
  recordsLoaded: number;
  recordsRejected: number;
  recordsSkipped: number;
  /** Records read (loaded + rejected + skipped) per second of the cycle; null when it had no summary or took no time. */
  recordsPerSecond: number | null;
  /** Files settled (done + failed + unchanged) per second of the cycle. */
  filesPerSecond: number | null;
}

export interface Overview {
  /** `running`, or `draining` once shutdown began (files in flight finish, no new ones start). */
  state: 'running' | 'draining';
  profile: string;
  bucket: string;
  database: string;
  /** Whether action endpoints answer (DASHBOARD_TOKEN is set); the token itself never leaves the daemon. */
  actions: boolean;
  /** POLL_INTERVAL_SECONDS: the pause between cycles. */
  pollSeconds: number;
  /** `status --json`, computed from the daemon's own registry. */
  status: StatusReport;
  pending: { files: number; oldestAgeSeconds: number };
  lastSuccessAt: string | null;
  current: CurrentCycle | null;
  history: HistoryPoint[];
  historyError: string | null;
  generatedAt: string;
}

/** Cycles the History shows (the side file keeps more). */
const HISTORY_SHOWN = 100;

/** Follows the cycle in progress through the telemetry's progress events and tells `onChange` of each. */
export class LiveCycle implements ProgressListener {
  current: CurrentCycle | null = null;
  constructor(private readonly telemetry: Telemetry, private readonly onChange: () => void) {}

  cycleStarted(planned: number): void {
    this.current = { cycle: this.telemetry.state.cycle, startedAt: new Date().toISOString(), planned, done: 0, failed: 0, unchanged: 0, cancelled: 0, records: 0 };
    this.onChange();
  }

  cycleGrew(planned: number): void {
    if (this.current) this.current.planned += planned;
    this.onChange();
  }

  fileSettled(outcome: 'done' | 'failed' | 'unchanged' | 'cancelled', records: number): void {
    if (this.current) {
      this.current[outcome]++;
      this.current.records += records;
    }
    this.onChange();
  }

  cycleEnded(): void {
    this.current = null;
    this.onChange();
  }
}

function rate(n: number, seconds: number | undefined): number | null {
  return seconds === undefined || seconds <= 0 ? null : n / seconds;
}

export async function overview(src: DashboardSources, live: LiveCycle): Promise<Overview> {
  const d = src.dashboard;
  const status = await statusOf(d.config.profile, src.registry, d.registryPath, d.binding);
  let history: HistoryPoint[] = [];
  let historyError: string | null = null;
  try {
    history = (await readCycleHistory(d.registryPath, d.binding)).slice(-HISTORY_SHOWN).map((c) => {
      const s = c.summary;
      return {
        cycle: c.cycle, finishedAt: c.finishedAt, ok: c.ok, error: c.error, seconds: s?.seconds ?? null,
        filesDone: s?.filesDone ?? 0, filesFailed: s?.filesFailed ?? 0, filesUnchanged: s ? s.filesUnchanged + s.filesUpToDate : 0,
        recordsLoaded: s?.recordsLoaded ?? 0, recordsRejected: s?.recordsRejected ?? 0, recordsSkipped: s?.recordsSkipped ?? 0,
        recordsPerSecond: s ? rate(s.recordsLoaded + s.recordsRejected + s.recordsSkipped, s.seconds) : null,
        filesPerSecond: s ? rate(s.filesDone + s.filesFailed + s.filesUnchanged, s.seconds) : null,
      };
    });
  } catch (err) {
    historyError = describeError(err);
  }
  return {
    state: src.alive() ? 'running' : 'draining', profile: d.config.profile, bucket: d.bucket, database: d.target.display,
    actions: d.token !== null, pollSeconds: d.config.settings.POLL_INTERVAL_SECONDS, status, pending: src.telemetry.pendingFiles(), lastSuccessAt: src.telemetry.state.lastCycleAt,
    current: live.current, history, historyError, generatedAt: new Date().toISOString(),
  };
}

/** Failed files (as `status` lists them) and rejected records grouped by reason (as `inspect` groups them). */
export async function problems(src: DashboardSources): Promise<{ failed: StatusReport['failed']; rejections: { total: number; groups: ReasonGroup[] } }> {
  const d = src.dashboard;
  const status = await statusOf(d.config.profile, src.registry, d.registryPath, d.binding);
  return { failed: status.failed, rejections: await groupRejections(src.db) };
}

/**
 * One page of the rejected records of a group (`inspect`'s reason pattern), in id order after the cursor. The
 * database groups equal reasons; those of the pattern are then read in chunks, so the query stays bounded however
 * many values the pattern covers.
 */
export async function rejectionPage(db: Knex, group: string, limit: number, after: string | null): Promise<{ rows: unknown[]; next: string | null }> {
  const from = after === null ? null : (decodeCursor(after, ['number'])[0] as number);
  const reasons = ((await db(REJECTED_TABLE).select('reason').groupBy('reason')) as Array<{ reason: string }>)
    .map((r) => r.reason).filter((r) => reasonPattern(r) === group);
  let rows: Array<Record<string, unknown>> = [];
  for (let i = 0; i < reasons.length; i += 500) {
    let q = db(REJECTED_TABLE).select('*').whereIn('reason', reasons.slice(i, i + 500)).orderBy('id').limit(limit + 1);
    if (from !== null) q = q.where('id', '>', from);
    rows = [...rows, ...((await q) as Array<Record<string, unknown>>)].sort((a, b) => Number(a.id) - Number(b.id)).slice(0, limit + 1);
  }
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { rows: page, next: rows.length > limit && last ? encodeCursor([Number(last.id)]) : null };
}

/** A file's page: what `explain` says of the key, and how many rows and rejections each table holds from it. */
export async function filePage(src: DashboardSources, key: string): Promise<{ explanation: Explanation; tables: Array<{ name: string; rows: number }> }> {
  const d = src.dashboard;
  const explanation = await explainWith(d.config, src.registry, d.registryPath, d.binding, key);
  const tables = [];
  for (const name of readableTables(d.config.catalog).keys()) {
    const [row] = (await src.db(name).where({ source_key: key }).count({ n: '*' })) as Array<{ n: number | string }>;
    tables.push({ name, rows: Number(row?.n ?? 0) });
  }
  return { explanation, tables };
}

/** The key of a `?key=` query, required. */
export function requiredParam(value: string | null, name: string): string {
  if (value === null || value === '') throw new ApiError(400, `${name} is required`);
  return value;
}

/**
 * Server-sent events of the overview: one at once, then after every change (at most one per `throttleMs`) and at
 * least every `heartbeatMs` (pending ages grow by themselves). One overview is computed per event for all clients,
 * and none while no page is open: a registry of 100,000 files costs its walk once a second only while someone looks.
 */
export class OverviewEvents {
  private readonly clients = new Set<ServerResponse>();
  private scheduled: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly make: () => Promise<Overview>, private readonly throttleMs = 1000, private readonly heartbeatMs = 5000) {}

  add(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    res.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopHeartbeat();
    });
    this.heartbeat ??= setInterval(() => this.changed(), this.heartbeatMs).unref();
    this.changed();
  }

  changed(): void {
    if (this.clients.size === 0 || this.scheduled) return;
    this.scheduled = setTimeout(() => {
      this.make().then((o) => {
        this.scheduled = undefined;
        const frame = `event: overview\ndata: ${redactText(JSON.stringify(o))}\n\n`;
        for (const c of this.clients) c.write(frame);
      }, (err: unknown) => {
        this.scheduled = undefined;
        const frame = `event: failure\ndata: ${redactText(JSON.stringify({ error: describeError(err) }))}\n\n`;
        for (const c of this.clients) c.write(frame);
      });
    }, this.throttleMs).unref();
  }

  close(): void {
    clearTimeout(this.scheduled);
    this.stopHeartbeat();
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  private stopHeartbeat(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }
}
