import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { describeError, IngestError } from '../errors.js';
import type { Registry } from '../registry/types.js';
import type { Telemetry } from '../telemetry.js';
import type { Catalog } from '../schemas/catalog.js';
import { ApiError, listTables, parseLimit, readFiles, readRows } from './api.js';

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
}

export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The daemon's HTTP side: `/healthz`, `/readyz`, `/metrics` and the read-only JSON API. Node's own http
 * module: six GET routes do not need a framework.
 */
export async function startHttpServer(ctx: HttpContext, host: string, port: number): Promise<RunningServer> {
  const server = createServer((req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      const status = err instanceof ApiError ? err.status : 500;
      send(res, status, { error: err instanceof ApiError ? err.message : describeError(err) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, host, port)));
    server.listen(port, host, () => resolve());
  });
  return { port: (server.address() as AddressInfo).port, close: () => closeServer(server) };
}

/** `EADDRINUSE` alone names neither the setting nor the address: one BI_HTTP_LISTEN line that does. */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): IngestError {
  const why = err.code === 'EADDRINUSE' ? 'the port is in use (another daemon, or another program)'
    : err.code === 'EACCES' ? 'no permission to listen there (ports below 1024 need privileges)'
      : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' ? 'no such address on this machine' : err.message;
  return new IngestError('BI_HTTP_LISTEN', `cannot serve HTTP on ${host}:${port} (HTTP_PORT=${port}, HTTP_HOST=${host}): ${why}${err.code ? ` (${err.code})` : ''}`, { cause: err });
}

async function handle(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = requestUrl(req.url);
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new ApiError(405, 'read-only: GET only');
  const path = url.pathname;
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
    const page = await readRows(ctx.db, ctx.catalog, pathSegment(rows[1] as string, 'table name'), parseLimit(url.searchParams.get('limit')), url.searchParams.get('after'));
    return send(res, 200, page);
  }
  if (path === '/api/files') {
    return send(res, 200, readFiles(ctx.registry, url.searchParams.get('status'), parseLimit(url.searchParams.get('limit')), url.searchParams.get('after')));
  }
  throw new ApiError(404, `no route ${path}`);
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

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${JSON.stringify(body)}\n`);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
