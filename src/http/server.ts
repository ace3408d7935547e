import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { describeError, IngestError } from '../errors.js';
import { redactText } from '../redact.js';
import type { Registry } from '../registry/types.js';
import type { Telemetry } from '../telemetry.js';
import type { Catalog } from '../schemas/catalog.js';
import { ApiError, listTables, parseLimit, readFiles, readRows } from './api.js';
import { authorized, runAction } from './actions.js';
import { serveAsset } from './assets.js';
import { filePage, LiveCycle, overview, OverviewEvents, problems, rejectionPage, requiredParam, type DashboardContext, type DashboardSources } from './dashboard.js';

export interface HttpContext {
  telemetry: Telemetry;
  registry: Registry;
  db: Knex;
  /** The record types whose tables the read API serves. */
  catalog: Catalog;
  /** Runs a real query against the database; throws when it does not answer. */
  checkDatabase(): Promise<void>;
  /** False once shutdown began: /healthz turns 503 so orchestrators stop routing to us. */
  alive(): boolean;
  /** The dashboard at `/` (src/http/dashboard.ts); without it, `/` is not served. */
  dashboard?: DashboardContext;
}

/** The dashboard's live parts, made when the server starts: the cycle in progress and the overview's event stream. */
interface Live {
  sources: DashboardSources;
  cycle: LiveCycle;
  events: OverviewEvents;
}

export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The daemon's HTTP side: `/healthz`, `/readyz`, `/metrics`, the read-only JSON API and, given `dashboard`, the web
 * dashboard at `/` with its reads and (DASHBOARD_TOKEN) actions. Node's own http module: a dozen routes do not need a
 * framework.
 */
export async function startHttpServer(ctx: HttpContext, host: string, port: number): Promise<RunningServer> {
  let live: Live | undefined;
  let unsubscribe: (() => void) | undefined;
  if (ctx.dashboard) {
    const sources: DashboardSources = { dashboard: ctx.dashboard, registry: ctx.registry, db: ctx.db, telemetry: ctx.telemetry, alive: ctx.alive };
    const events: OverviewEvents = new OverviewEvents(() => overview(sources, cycle));
    const cycle: LiveCycle = new LiveCycle(ctx.telemetry, () => events.changed());
    live = { sources, cycle, events };
    unsubscribe = ctx.telemetry.subscribe(cycle);
  }
  const server = createServer((req, res) => {
    handle(ctx, live, req, res).catch((err: unknown) => {
      const status = err instanceof ApiError ? err.status : 500;
      send(res, status, { error: err instanceof ApiError ? err.message : describeError(err) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, host, port)));
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      unsubscribe?.();
      live?.events.close();
      return closeServer(server);
    },
  };
}

/** `EADDRINUSE` alone names neither the setting nor the address: one BI_HTTP_LISTEN line that does. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): IngestError {
  const why = err.code === 'EADDRINUSE' ? 'the port is in use (another daemon, or another program)'
    : err.code === 'EACCES' ? 'no permission to listen there (ports below 1024 need privileges)'
      : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' ? 'no such address on this machine' : err.message;
  return new IngestError('BI_HTTP_LISTEN', `cannot serve HTTP on ${host}:${port} (HTTP_PORT=${port}, HTTP_HOST=${host}): ${why}${err.code ? ` (${err.code})` : ''}`, { cause: err });
}

async function handle(ctx: HttpContext, live: Live | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = requestUrl(req.url);
  const path = url.pathname;
  // Actions answer only when DASHBOARD_TOKEN is set, and only to a request that carries it; without it they do not exist.
  const token = ctx.dashboard?.token ?? null;
  if (live && token !== null && path.startsWith('/api/actions/')) {
    if (req.method !== 'POST') throw new ApiError(405, 'actions take POST');
    if (!authorized(token, req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Bearer realm="bucket-ingest dashboard"');
      throw new ApiError(401, 'this action needs the dashboard token (DASHBOARD_TOKEN) as a bearer token');
    }
    const result = await runAction(live.sources, path, req);
    live.events.changed();
    return send(res, 200, result);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    if (path.startsWith('/api/actions/')) throw new ApiError(404, `no route ${path}: actions are off (DASHBOARD_TOKEN is not set)`);
    throw new ApiError(405, 'read-only: GET only');
  }
  if (live && (path === '/' || path.startsWith('/assets/') || path === '/index.html') && serveAsset(req, res, path)) return;
  if (live && path.startsWith('/api/dashboard/')) return dashboardRoute(live, url, res);
  if (path === '/healthz') {
    const alive = ctx.alive();
    return send(res, alive ? 200 : 503, { status: alive ? 'ok' : 'shutting down', cycle: ctx.telemetry.state.cycle });
  }
  if (path === '/readyz') return ready(ctx, res);
  if (path === '/metrics') {
    const text = await ctx.telemetry.metrics.metrics();
    res.writeHead(200, { 'content-type': ctx.telemetry.metrics.contentType });
    res.end(text);
    return;
  }
  if (path === '/api/tables') return send(res, 200, { tables: await listTables(ctx.db, ctx.catalog) });
  const rows = /^\/api\/tables\/([^/]+)\/rows$/.exec(path);
  if (rows) {
    const sourceKey = url.searchParams.get('source_key');
    const page = await readRows(ctx.db, ctx.catalog, pathSegment(rows[1] as string, 'table name'), parseLimit(url.searchParams.get('limit')), url.searchParams.get('after'),
      sourceKey === null ? {} : { source_key: sourceKey });
    return send(res, 200, page);
  }
  if (path === '/api/files') {
    return send(res, 200, await readFiles(ctx.registry, url.searchParams.get('status'), parseLimit(url.searchParams.get('limit')), url.searchParams.get('after')));
  }
  throw new ApiError(404, `no route ${path}`);
}

/** The dashboard's own reads: the overview (also as server-sent events), problems, a rejection group's records, a file. */
async function dashboardRoute(live: Live, url: URL, res: ServerResponse): Promise<void> {
  const q = url.searchParams;
  // What the CLI's `status`, `inspect` and `explain` print passes redactText last (printOut); so does what they show here.
  switch (url.pathname) {
    case '/api/dashboard/overview':
      return send(res, 200, await overview(live.sources, live.cycle), redactText);
    case '/api/dashboard/events':
      return live.events.add(res);
    case '/api/dashboard/problems':
      return send(res, 200, await problems(live.sources), redactText);
    case '/api/dashboard/rejections':
      return send(res, 200, await rejectionPage(live.sources.db, requiredParam(q.get('group'), 'group'), parseLimit(q.get('limit')), q.get('after')), redactText);
    case '/api/dashboard/file':
      return send(res, 200, await filePage(live.sources, requiredParam(q.get('key'), 'key')), redactText);
    default:
      throw new ApiError(404, `no route ${url.pathname}`);
  }
}

/**
 * The request's URL. A request target in origin form (`/path?query`, what clients send) is read against a fixed origin
 * as a path, so `//x` stays the path `//x` instead of naming a host; an absolute-form target (`http://host/path`) is
 * read as it is. A target that is no URL at all is the client's mistake: 400, not 500.
 */
function requestUrl(target = '/'): URL {
  try {
    return new URL(target.startsWith('/') ? `http://localhost${target}` : target);
  } catch {
    throw new ApiError(400, 'the request target is not a valid URL');
  }
}

/** A percent-encoded path segment, decoded; 400 for one that is not percent-encoded UTF-8 (`%E0%A4%A`). */
function pathSegment(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new ApiError(400, `${what} in the path is not percent-encoded UTF-8`);
  }
}

/** Ready = the database answers a real query, the last cycle could list the bucket, and notifications (NOTIFY_URL) flow. */
async function ready(ctx: HttpContext, res: ServerResponse): Promise<void> {
  const reasons: string[] = [];
  try {
    await ctx.checkDatabase();
  } catch (err) {
    reasons.push(`database: ${describeError(err)}`);
  }
  const { lastListingOk, lastListingError, cycle } = ctx.telemetry.state;
  if (!lastListingOk) reasons.push(cycle === 0 && lastListingError === null ? 'bucket: not listed yet' : `bucket: ${lastListingError ?? 'not listed yet'}`);
  const notifications = ctx.telemetry.state.notifications;
  if (typeof notifications === 'string') reasons.push(`notifications: ${notifications}`);
  send(res, reasons.length === 0 ? 200 : 503, reasons.length === 0 ? { status: 'ready' } : { status: 'not ready', reasons });
}

function send(res: ServerResponse, status: number, body: unknown, mask: (json: string) => string = (json) => json): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${mask(JSON.stringify(body))}\n`);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
