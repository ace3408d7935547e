/**
 * An HTTP bucket for integration tests: serves files by key, with ETags, conditional GETs, optional gzip
 * and scripted faults (error statuses, resets, truncated bodies, delays, hangs).
 *
 * @example
 *   const bucket = await startTestBucket({ files: { 'a.data': '[]' }, faults: { 'a.data': [{ kind: 'status', status: 503 }] } });
 *   // GET ${bucket.url}/files_list.data → "a.data"; first GET /a.data → 503, then 200
 *   await bucket.close();
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { tempDir } from './cli.js';
import { listenOnLoopback } from './raw-server.js';

export type Fault =
  /** Respond with this status (e.g. 500, 503, 429 with Retry-After '1' or an HTTP date). */
  | { kind: 'status'; status: number; retryAfter?: string }
  /** Destroy the socket without a response (a TCP reset where the platform allows). */
  | { kind: 'reset' }
  /** Send headers with the full Content-Length, write half the body, then destroy the socket. */
  | { kind: 'truncate' }
  /** Wait, then serve normally. */
  | { kind: 'delay'; ms: number }
  /** Never answer (until the server closes). */
  | { kind: 'hang' };

export interface TestBucketOptions {
  files: Record<string, string | Buffer>;
  /** Key of the index; default `files_list.data`. */
  indexKey?: string;
  /**
   * Text of the index; default: the keys of `files` (index key excluded) joined by `\n`, computed once at
   * start (later `setFile`/`deleteFile` calls do not change it; use `setIndex`).
   */
  index?: string;
  /** Consumed one per GET of that key, in order; afterwards the key is served normally. HEAD consumes none. */
  faults?: Record<string, Fault[]>;
  /** Keys that always answer 500 (GET and HEAD). */
  broken?: string[];
  /** Gzip bodies when the request's Accept-Encoding allows it. */
  gzip?: boolean;
  /** Keys served without Content-Length (chunked), as a body of unknown length. */
  chunked?: string[];
}

export interface RequestLogEntry {
  method: string;
  /** The raw request path (query string included, if any). */
  path: string;
  /** The decoded key (`''` when the path could not be decoded). */
  key: string;
  /** Status sent; 0 while none was sent and for `reset` and `hang` faults. */
  status: number;
}

export interface TestBucket {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  /** Every request in arrival order. */
  requests: RequestLogEntry[];
  /** Number of GETs of `key` so far (faulted ones included). */
  hits(key: string): number;
  setFile(key: string, body: string | Buffer): void;
  deleteFile(key: string): void;
  /** Replaces the index text (same as `setFile(indexKey, text)`). */
  setIndex(text: string): void;
  /** Appends faults to the key's queue. */
  addFaults(key: string, faults: Fault[]): void;
  /** Stops the server, destroying open sockets (hanging and delayed requests included). Idempotent. */
  close(): Promise<void>;
}

interface StoredFile {
  body: Buffer;
  etag: string;
  gzipped?: Buffer;
}

function store(body: string | Buffer): StoredFile {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
  return { body: buf, etag: `"${createHash('md5').update(buf).digest('hex')}"` };
}

/** Whether Accept-Encoding allows gzip (present with q > 0, or `*` with q > 0 and gzip not refused). */
function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let star = false;
  for (const part of header.split(',')) {
    const [coding = '', ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    const allowed = Number.isFinite(q) && q > 0;
    if (coding.trim() === 'gzip' || coding.trim() === 'x-gzip') return allowed;
    if (coding.trim() === '*') star = allowed;
  }
  return star;
}

/** Whether If-None-Match matches the ETag (weak comparison, lists and `*` understood). */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t.replace(/^W\//, '') === etag;
  });
}

export async function startTestBucket(opts: TestBucketOptions): Promise<TestBucket> {
  const indexKey = opts.indexKey ?? 'files_list.data';
  const files = new Map<string, StoredFile>();
  for (const [key, body] of Object.entries(opts.files)) files.set(key, store(body));
  const index = opts.index ?? Object.keys(opts.files).filter((k) => k !== indexKey).join('\n');
  files.set(indexKey, store(index));

  const faults = new Map<string, Fault[]>();
  for (const [key, list] of Object.entries(opts.faults ?? {})) faults.set(key, [...list]);
  const broken = new Set(opts.broken ?? []);
  const gzip = opts.gzip ?? false;
  const chunked = new Set(opts.chunked ?? []);

  const requests: RequestLogEntry[] = [];
  const hitCounts = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;
  let closing: Promise<void> | undefined;

  function send(res: ServerResponse, entry: RequestLogEntry, status: number, headers: Record<string, string | number>, body?: Buffer): void {
    entry.status = status;
    res.writeHead(status, headers);
    res.end(body);
  }

  function sendText(req: IncomingMessage, res: ServerResponse, entry: RequestLogEntry, status: number, text: string, extra: Record<string, string> = {}): void {
    const body = Buffer.from(`${text}\n`);
    send(res, entry, status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length, ...extra }, req.method === 'HEAD' ? undefined : body);
  }

  /** The representation to send: the body, gzipped when allowed, without its length for `chunked` keys. */
  function representation(req: IncomingMessage, key: string, file: StoredFile): { body: Buffer; headers: Record<string, string | number> } {
    const sent = lengthOf(req, file);
    if (chunked.has(key)) delete sent.headers['Content-Length'];
    return sent;
  }

  function lengthOf(req: IncomingMessage, file: StoredFile): { body: Buffer; headers: Record<string, string | number> } {
    const headers: Record<string, string | number> = { ETag: file.etag, 'Content-Type': 'application/octet-stream' };
    if (gzip) {
      headers.Vary = 'Accept-Encoding';
      if (acceptsGzip(req.headers['accept-encoding'])) {
        file.gzipped ??= gzipSync(file.body);
        headers['Content-Encoding'] = 'gzip';
        headers['Content-Length'] = file.gzipped.length;
        return { body: file.gzipped, headers };
      }
    }
    headers['Content-Length'] = file.body.length;
    return { body: file.body, headers };
  }

  /** Serves the key as it is now: 500 if broken, 404 if unknown, 304 or 200. */
  function serve(req: IncomingMessage, res: ServerResponse, entry: RequestLogEntry, key: string): void {
    if (closed || res.destroyed) return;
    if (broken.has(key)) return sendText(req, res, entry, 500, 'broken');
    const file = files.get(key);
    if (file === undefined) return sendText(req, res, entry, 404, 'not found');
    if (matchesEtag(req.headers['if-none-match'], file.etag)) {
      const headers: Record<string, string> = { ETag: file.etag };
      if (gzip) headers.Vary = 'Accept-Encoding';
      return send(res, entry, 304, headers);
    }
    const { body, headers } = representation(req, key, file);
    send(res, entry, 200, headers, req.method === 'HEAD' ? undefined : body);
  }

  function applyFault(req: IncomingMessage, res: ServerResponse, entry: RequestLogEntry, key: string, fault: Fault): void {
    switch (fault.kind) {
      case 'status': {
        const extra: Record<string, string> = {};
        if (fault.retryAfter !== undefined) extra['Retry-After'] = fault.retryAfter;
        return sendText(req, res, entry, fault.status, `fault ${fault.status}`, extra);
      }
      case 'reset': {
        const socket = req.socket;
        if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
        else socket.destroy();
        return;
      }
      case 'truncate': {
        const file = files.get(key);
        if (file === undefined) return sendText(req, res, entry, 404, 'not found');
        const { body, headers } = representation(req, key, file);
        entry.status = 200;
        res.writeHead(200, headers);
        const half = body.subarray(0, Math.floor(body.length / 2));
        res.write(half, () => req.socket.destroy());
        return;
      }
      case 'delay': {
        const timer = setTimeout(() => {
          timers.delete(timer);
          serve(req, res, entry, key);
        }, fault.ms);
        timers.add(timer);
        return;
      }
      case 'hang':
        return;
    }
  }

  const server = createServer((req, res) => {
    const method = req.method ?? '';
    const path = req.url ?? '/';
    const entry: RequestLogEntry = { method, path, key: '', status: 0 };
    requests.push(entry);

    const rawPath = path.split('?')[0] ?? '';
    let key: string;
    try {
      key = decodeURIComponent(rawPath.replace(/^\//, ''));
    } catch {
      return sendText(req, res, entry, 400, 'bad path');
    }
    entry.key = key;

    if (method !== 'GET' && method !== 'HEAD') {
      return sendText(req, res, entry, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    }
    if (method === 'GET') {
      hitCounts.set(key, (hitCounts.get(key) ?? 0) + 1);
      const fault = faults.get(key)?.shift();
      if (fault !== undefined) return applyFault(req, res, entry, key, fault);
    }
    serve(req, res, entry, key);
  });

  const { port, stop } = await listenOnLoopback(server);

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    hits: (key) => hitCounts.get(key) ?? 0,
    setFile: (key, body) => void files.set(key, store(body)),
    deleteFile: (key) => void files.delete(key),
    setIndex: (text) => void files.set(indexKey, store(text)),
    addFaults: (key, list) => {
      const queue = faults.get(key) ?? [];
      queue.push(...list);
      faults.set(key, queue);
    },
    close: () => {
      closing ??= (() => {
        closed = true;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        return stop();
      })();
      return closing;
    },
  };
}

/**
 * For a `describe` block: one bucket shared by its tests (started before them, closed after them), working
 * directories for its runs, and anything else to undo once they are done (`defer`).
 */
export function sharedBucket(options: TestBucketOptions): { bucket(): TestBucket; dir(): Promise<string>; defer(undo: () => Promise<void>): void } {
  let bucket: TestBucket | undefined;
  const undo: Array<() => Promise<void>> = [];
  before(async () => {
    bucket = await startTestBucket(options);
  });
  after(async () => {
    await bucket?.close();
    for (const u of undo) await u();
  });
  return {
    bucket: () => {
      if (!bucket) throw new Error('sharedBucket: the bucket starts in a before() hook; use it inside tests');
      return bucket;
    },
    dir: async () => {
      const t = await tempDir();
      undo.push(t.cleanup);
      return t.dir;
    },
    defer: (u) => undo.push(u),
  };
}
