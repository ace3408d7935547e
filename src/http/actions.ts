import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import * as t from 'io-ts';
import { describeMarked, markForReprocess } from '../commands/reprocess.js';
import { formatReplay, replayStored } from '../commands/reprocess-rejected.js';
import { IngestError } from '../errors.js';
import { formatErrors } from '../records/reasons.js';
import { ApiError } from './api.js';
import type { DashboardSources } from './dashboard.js';

/** Largest request body an action takes: a list of keys, or a type and a reason. */
const MAX_BODY_BYTES = 256 * 1024;

const reprocessBody = t.partial({ keys: t.array(t.string), failed: t.boolean });
const replayBody = t.partial({ type: t.string, reason: t.string, dryRun: t.boolean });

/**
 * Whether the request carries `Authorization: Bearer <token>`. Both sides are hashed first, so the comparison takes
 * the same time whatever the length or the first wrong byte of what was sent.
 */
export function authorized(token: string, header: string | undefined): boolean {
  const sent = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '')?.[1];
  if (sent === undefined) return false;
  const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(sent), digest(token));
}

async function readJson<A>(req: IncomingMessage, codec: t.Type<A, unknown>): Promise<A> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let parsed: unknown;
  try {
    parsed = text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    throw new ApiError(400, 'the request body is not JSON');
  }
  const decoded = codec.decode(parsed);
  if (decoded._tag === 'Left') throw new ApiError(400, `the request body is not what this action takes (${formatErrors(decoded.left, 'body')})`);
  return decoded.right;
}

/** A refusal the CLI would print as BI_USAGE (nothing matched, an undeclared type) is the client's mistake: 400. */
async function asClientError<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof IngestError && err.code === 'BI_USAGE') throw new ApiError(400, err.message);
    throw err;
  }
}

/**
 * The dashboard's actions, through the same functions as the CLI commands: `reprocess <keys>` / `reprocess --failed`
 * (marked for the next cycle) and `reprocess --rejected [--type] [--reason] [--dry-run]`. The caller has checked the
 * token; `path` is under `/api/actions/`.
 */
export async function runAction(src: DashboardSources, path: string, req: IncomingMessage): Promise<{ message: string; [k: string]: unknown }> {
  const d = src.dashboard;
  if (path === '/api/actions/reprocess') {
    const body = await readJson(req, reprocessBody);
    const keys = await asClientError(() => markForReprocess(src.registry, d.registryPath, d.binding, body.keys ?? [], Boolean(body.failed)));
    src.telemetry.dashboardAction('reprocess', describeMarked(keys));
    return { message: `${describeMarked(keys)}; the next cycle processes them again`, keys };
  }
  if (path === '/api/actions/replay') {
    const body = await readJson(req, replayBody);
    const report = await asClientError(() => replayStored(d.config, src.db, d.target, d.binding.bucket, { type: body.type, reason: body.reason, dryRun: Boolean(body.dryRun) }));
    const message = formatReplay(report, d.binding.bucket);
    src.telemetry.dashboardAction('replay', message.split('\n')[0] ?? '');
    return { message, report };
  }
  throw new ApiError(404, `no action ${path.slice('/api/actions/'.length)}; actions: reprocess, replay`);
}
