/**
 * A decoding thread (see pool.ts): turns whole bodies into validated files, so `JSON.parse` and validation
 * run on another core while the main thread writes to the database. The only module that runs in a worker.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeWhole, validateBatch } from '../index.js';
import { IngestError } from '../../errors.js';
import { Catalog } from '../../schemas/catalog.js';
import type { DecodeReply, DecodeRequest, DecodeWorkerData } from './pool.js';

if (parentPort === null) throw new Error('worker.ts runs only as a worker thread');
const port = parentPort;
if (port === null) throw new Error('decode-worker.ts runs only as a worker thread');
// The same documents the main thread compiled, with its options (and checked: they compile here without error).
const { schemas, options } = workerData as DecodeWorkerData;
const catalog = new Catalog(schemas, options);

port.on('message', (m: DecodeRequest) => void answer(m));

async function answer(m: DecodeRequest): Promise<void> {
  let reply: DecodeReply;
  try {
    const body = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength);
    const file = validateBatch(catalog, await decodeWhole(m.key, body, m.rules), m.now, m.keyOrder);
    reply = { id: m.id, file: { ...file, rows: [...file.rows].map(([type, cells]) => [type.type, cells]) } };
  } catch (err) {
    reply = err instanceof IngestError
      ? { id: m.id, error: { code: err.code, message: err.message } }
      : { id: m.id, error: { code: 'BI_DECODE', message: `${m.key}: ${(err as Error).message}` } };
  }
  port.postMessage(reply);
}
