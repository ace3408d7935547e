import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { decodeWhole, DEFAULT_RULES, validateBatch, type FormatRules } from '../index.js';
import { IngestError, type ErrorCode } from '../../errors.js';
import type { Cell, RecordType } from '../../records/types.js';
import type { Catalog, SchemaSource } from '../../schemas/catalog.js';
import type { ValidatedFile } from '../../validate.js';
import type { CompileOptions } from '../../schemas/compile.js';

/** Turns a whole fetched body into a validated file: in this thread, or in a pool of decoding threads. */
export interface Decoder {
  /** Rejects with `BI_DECODE` (or `BI_FORMAT`) for a body its format cannot read (the file is then recorded failed). */
  decode(key: string, body: Buffer, now: string): Promise<ValidatedFile>;
  /** Starts the threads now, so the first file does not wait for them to load their modules. */
  warm(): void;
  close(): Promise<void>;
}

/**
 * Decodes in the calling thread (DECODE_THREADS=0, dry runs, streamed batches); `keyOrder`: see validateRecords;
 * `rules`: how a file's format is told (FORMAT, FORMAT_OVERRIDES, MAX_FILE_MB).
 */
export function inThread(catalog: Catalog, keyOrder = false, rules: FormatRules = DEFAULT_RULES): Decoder {
  return {
    decode: async (key, body, now) => validateBatch(catalog, await decodeWhole(key, body, rules), now, keyOrder),
    warm: () => undefined,
    close: async () => undefined,
  };
}

/** What a decoding thread is started with: the schema documents it compiles its record types from, and how. */
export interface DecodeWorkerData {
  schemas: readonly SchemaSource[];
  /** Catalog.options (the PII hash key: given to the thread's memory only, never logged or stored). */
  options: CompileOptions;
}

/** What the main thread sends a decoding thread. */
export interface DecodeRequest {
  id: number;
  key: string;
  body: Uint8Array;
  now: string;
  /** Rows in key order (see validateRecords). */
  keyOrder: boolean;
  /** How the file's format is told. */
  rules: FormatRules;
}

/** What comes back: the file with its rows per record type name (a RecordType, holding functions, cannot cross). */
export type DecodeReply =
  | { id: number; file: Omit<ValidatedFile, 'rows'> & { rows: Array<[string, Cell[]]> }; error?: undefined }
  | { id: number; error: { code: ErrorCode; message: string }; file?: undefined };

interface Thread {
  worker: Worker;
  busy: number;
}

interface Pending {
  key: string;
  thread: Thread;
  resolve(file: ValidatedFile): void;
  reject(err: Error): void;
}

/** DECODE_THREADS=auto: one thread per core beyond the main thread's, at most 4 (the writer is the limit then). */
export function decodeThreads(setting: number | 'auto'): number {
  return setting === 'auto' ? Math.min(4, availableParallelism() - 1) : setting;
}

/**
 * Decoding threads, started by `warm` or on first use, and given work least-busy first. `JSON.parse` and
 * validation of whole bodies run there, on another core, while the main thread fetches and writes; rows come back
 * as flat arrays of cells, which structured clone copies cheaply. A body is moved, not copied, when its buffer is
 * its own. A thread that dies fails the files it held (recorded failed, retried on a later cycle) and is replaced
 * on next use.
 */
export class DecodePool implements Decoder {
  private threads: Thread[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;

  /** `keyOrder`: each table's rows in key order (see validateRecords); `rules`: see inThread. */
  constructor(private readonly catalog: Catalog, private readonly size: number, private readonly keyOrder = false, private readonly rules: FormatRules = DEFAULT_RULES) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`DecodePool needs at least one thread, got ${size}`);
  }

  decode(key: string, body: Buffer, now: string): Promise<ValidatedFile> {
    if (this.closed) return Promise.reject(new IngestError('BI_SHUTDOWN', `${key}: decoding threads are closed`));
    const thread = this.pick();
    const id = ++this.nextId;
    return new Promise<ValidatedFile>((resolve, reject) => {
      this.pending.set(id, { key, thread, resolve, reject });
      if (thread.busy++ === 0) thread.worker.ref(); // keep the process alive while a thread holds work
      const own = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && !(body.buffer instanceof SharedArrayBuffer);
      const request: DecodeRequest = { id, key, body, now, keyOrder: this.keyOrder, rules: this.rules };
      thread.worker.postMessage(request, own ? [body.buffer as ArrayBuffer] : []);
    });
  }

  /** Threads running now. */
  get started(): number {
    return this.threads.length;
  }

  warm(): void {
    while (!this.closed && this.threads.length < this.size) this.spawn();
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads;
    this.threads = [];
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private pick(): Thread {
    const idle = this.threads.find((t) => t.busy === 0);
    if (idle) return idle;
    if (this.threads.length < this.size) return this.spawn();
    return this.threads.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private spawn(): Thread {
    // A small young generation: a thread's garbage is one file's parse at a time, and V8's default (up to 3 × 16 MB
    // per thread) added ~30 MB of peak RSS for no speed we could measure (README, Performance).
    const workerData: DecodeWorkerData = { schemas: this.catalog.sources, options: this.catalog.options };
    const options = { resourceLimits: { maxYoungGenerationSizeMb: 4 }, workerData };
    // Built: worker.js beside this module (dist/, or dist/bundle/ for the bundled CLI). From source (the tests
    // run under tsx) the thread registers tsx itself first: a worker's entry is loaded before `--import` hooks of its
    // execArgv apply.
    const worker = import.meta.url.endsWith('.ts')
      ? new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}); });`, { ...options, eval: true })
      : new Worker(new URL('./worker.js', import.meta.url), options);
    const thread: Thread = { worker, busy: 0 };
    worker.unref();
    worker.on('message', (reply: DecodeReply) => this.settle(thread, reply));
    worker.on('error', (err) => this.lose(thread, `decoding thread failed: ${err.message}`));
    worker.on('exit', (code) => this.lose(thread, `decoding thread exited with code ${code}`));
    this.threads.push(thread);
    return thread;
  }

  private settle(thread: Thread, reply: DecodeReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (--thread.busy === 0) thread.worker.unref();
    if (reply.error) {
      p.reject(new IngestError(reply.error.code, reply.error.message));
      return;
    }
    const rows = new Map<RecordType, Cell[]>();
    for (const [name, cells] of reply.file.rows) rows.set(this.catalog.typeFor(name) as RecordType, cells);
    p.resolve({ ...reply.file, rows });
  }

  /** A thread is gone: fail what it held, and forget it so the next decode starts a new one. */
  private lose(thread: Thread, why: string): void {
    this.threads = this.threads.filter((t) => t !== thread);
    for (const [id, p] of this.pending) {
      if (p.thread !== thread) continue;
      this.pending.delete(id);
      p.reject(new IngestError(this.closed ? 'BI_SHUTDOWN' : 'BI_DECODE', `${p.key}: ${why}`));
    }
  }
}

/**
 * The decoder DECODE_THREADS asks for: a pool, or this thread when it is 0. `keyOrder` where a group's files are merged
 * by key before they are written (PostgreSQL, MySQL).
 */
export function createDecoder(catalog: Catalog, setting: number | 'auto', keyOrder = false, rules: FormatRules = DEFAULT_RULES): Decoder {
  const n = decodeThreads(setting);
  return n > 0 ? new DecodePool(catalog, n, keyOrder, rules) : inThread(catalog, keyOrder, rules);
}
