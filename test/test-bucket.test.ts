import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { generateFiles, indexText, writeBucket, writeOneFileBucket, type GenerateOptions } from '../bench/generate.js';
import { startTestBucket, type TestBucket, type TestBucketOptions } from './helpers/test-bucket.js';

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A GET (or other method) through node:http, without any decoding; rejects on socket errors. */
function raw(url: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: init.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('aborted')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const md5 = (body: string | Buffer): string => `"${createHash('md5').update(body).digest('hex')}"`;

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

async function until(condition: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('test bucket helper', () => {
  let bucket: TestBucket | undefined;
  const start = async (opts: TestBucketOptions): Promise<TestBucket> => {
    bucket = await startTestBucket(opts);
    return bucket;
  };
  afterEach(async () => {
    await bucket?.close();
    bucket = undefined;
  });

  it('serves files and a default index with ETag, Content-Length and Content-Type', async () => {
    const b = await start({ files: { 'a.data': '[1]', 'b.data': Buffer.from('[2, 3]') } });
    expect(b.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);

    const index = await fetch(`${b.url}/files_list.data`);
    expect(index.status).to.equal(200);
    expect(await index.text()).to.equal('a.data\nb.data');

    const res = await raw(`${b.url}/b.data`);
    expect(res.status).to.equal(200);
    expect(res.body.toString()).to.equal('[2, 3]');
    expect(res.headers.etag).to.equal(md5('[2, 3]'));
    expect(res.headers['content-length']).to.equal('6');
    expect(res.headers['content-type']).to.equal('application/octet-stream');

    const head = await raw(`${b.url}/b.data`, { method: 'HEAD' });
    expect(head.status).to.equal(200);
    expect(head.body.length).to.equal(0);
    expect(head.headers.etag).to.equal(md5('[2, 3]'));
    expect(head.headers['content-length']).to.equal('6');

    expect(b.hits('b.data')).to.equal(1); // HEAD is not a hit
    expect(b.requests.map((r) => [r.method, r.key, r.status])).to.deep.equal([
      ['GET', 'files_list.data', 200],
      ['GET', 'b.data', 200],
      ['HEAD', 'b.data', 200],
    ]);
  });

  it('answers 304 when If-None-Match matches the current ETag, 200 after the file changes', async () => {
    const b = await start({ files: { 'a.data': 'one' } });
    const first = await fetch(`${b.url}/a.data`);
    const etag = first.headers.get('etag') ?? '';
    expect(etag).to.equal(md5('one'));

    const again = await fetch(`${b.url}/a.data`, { headers: { 'if-none-match': etag } });
    expect(again.status).to.equal(304);
    expect(again.headers.get('etag')).to.equal(etag);
    expect(await again.text()).to.equal('');

    const weakInList = await raw(`${b.url}/a.data`, { headers: { 'if-none-match': `"nope", W/${etag}` } });
    expect(weakInList.status).to.equal(304);

    b.setFile('a.data', 'two');
    const changed = await fetch(`${b.url}/a.data`, { headers: { 'if-none-match': etag } });
    expect(changed.status).to.equal(200);
    expect(changed.headers.get('etag')).to.equal(md5('two'));
    expect(await changed.text()).to.equal('two');
  });

  it('answers 404 for unknown and deleted keys, 405 for other methods', async () => {
    const b = await start({ files: { 'a.data': 'x' } });
    expect((await fetch(`${b.url}/missing.data`)).status).to.equal(404);
    b.deleteFile('a.data');
    expect((await fetch(`${b.url}/a.data`)).status).to.equal(404);
    expect((await raw(`${b.url}/a.data`, { method: 'HEAD' })).status).to.equal(404);
    const post = await raw(`${b.url}/a.data`, { method: 'POST' });
    expect(post.status).to.equal(405);
    expect(b.requests.map((r) => r.status)).to.deep.equal([404, 404, 404, 405]);
  });

  it('decodes url-encoded keys with spaces, slashes and unicode', async () => {
    const key = 'dir/Крёстный отец & Amélie (1).data';
    const b = await start({ files: { [key]: 'unicode' } });
    const res = await fetch(`${b.url}/${encodeURIComponent(key)}`);
    expect(res.status).to.equal(200);
    expect(await res.text()).to.equal('unicode');
    expect(b.hits(key)).to.equal(1);
    expect(b.requests[0]?.key).to.equal(key);
    expect(await (await fetch(`${b.url}/files_list.data`)).text()).to.equal(key);
    expect((await raw(`${b.url}/%E0%A4%A`)).status).to.equal(400);
  });

  it('supports a custom index key and text, setIndex, and faults on the index', async () => {
    const b = await start({
      files: { 'a.data': 'x' },
      indexKey: 'list.txt',
      index: ' a.data\r\n',
      faults: { 'list.txt': [{ kind: 'status', status: 503 }] },
    });
    expect((await fetch(`${b.url}/list.txt`)).status).to.equal(503);
    expect(await (await fetch(`${b.url}/list.txt`)).text()).to.equal(' a.data\r\n');
    b.setIndex('a.data\nb.data');
    expect(await (await fetch(`${b.url}/list.txt`)).text()).to.equal('a.data\nb.data');
    expect((await fetch(`${b.url}/files_list.data`)).status).to.equal(404);
    expect(b.hits('list.txt')).to.equal(3);
  });

  it('consumes status faults one per GET, in order, then serves normally', async () => {
    const date = new Date(Date.now() + 60_000).toUTCString();
    const b = await start({
      files: { 'a.data': 'ok' },
      faults: {
        'a.data': [
          { kind: 'status', status: 503 },
          { kind: 'status', status: 429, retryAfter: '1' },
          { kind: 'status', status: 429, retryAfter: date },
          { kind: 'status', status: 500 },
        ],
      },
    });
    // HEAD does not consume faults.
    expect((await raw(`${b.url}/a.data`, { method: 'HEAD' })).status).to.equal(200);

    const r1 = await fetch(`${b.url}/a.data`);
    expect(r1.status).to.equal(503);
    expect(r1.headers.get('retry-after')).to.equal(null);
    const r2 = await fetch(`${b.url}/a.data`);
    expect(r2.status).to.equal(429);
    expect(r2.headers.get('retry-after')).to.equal('1');
    const r3 = await fetch(`${b.url}/a.data`);
    expect(r3.status).to.equal(429);
    expect(r3.headers.get('retry-after')).to.equal(date);
    expect((await fetch(`${b.url}/a.data`)).status).to.equal(500);
    const ok = await fetch(`${b.url}/a.data`);
    expect(ok.status).to.equal(200);
    expect(await ok.text()).to.equal('ok');
    expect(b.hits('a.data')).to.equal(5);

    b.addFaults('a.data', [{ kind: 'status', status: 502 }]);
    expect((await fetch(`${b.url}/a.data`)).status).to.equal(502);
    expect((await fetch(`${b.url}/a.data`)).status).to.equal(200);
  });

  it('answers 500 for broken keys, always', async () => {
    const b = await start({ files: { 'a.data': 'x' }, broken: ['a.data'] });
    for (let i = 0; i < 3; i++) expect((await fetch(`${b.url}/a.data`)).status).to.equal(500);
    expect((await raw(`${b.url}/a.data`, { method: 'HEAD' })).status).to.equal(500);
    expect(b.hits('a.data')).to.equal(3);
  });

  it('reset destroys the connection without a response, then the key is served normally', async () => {
    const b = await start({ files: { 'a.data': 'x' }, faults: { 'a.data': [{ kind: 'reset' }, { kind: 'reset' }] } });
    const err = await rejection(raw(`${b.url}/a.data`));
    expect((err as NodeJS.ErrnoException).code).to.be.oneOf(['ECONNRESET', 'EPIPE']);
    expect(await rejection(fetch(`${b.url}/a.data`))).to.be.instanceOf(TypeError);
    const ok = await fetch(`${b.url}/a.data`);
    expect(ok.status).to.equal(200);
    expect(await ok.text()).to.equal('x');
    expect(b.requests.map((r) => r.status)).to.deep.equal([0, 0, 200]);
  });

  it('truncate sends the full Content-Length but half the body, so reading the body fails', async () => {
    const body = 'y'.repeat(10_000);
    const b = await start({ files: { 'a.data': body }, faults: { 'a.data': [{ kind: 'truncate' }, { kind: 'truncate' }] } });

    // node:http: headers arrive, then the body stops short.
    const received = await new Promise<{ status: number; length: string | undefined; bytes: number; error: Error | undefined }>((resolve) => {
      const req = request(`${b.url}/a.data`, { agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => (bytes += chunk.length));
        const done = (error?: Error): void =>
          resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], bytes, error });
        res.on('error', done);
        res.on('aborted', () => done(new Error('aborted')));
        res.on('end', () => done());
      });
      req.on('error', (error) => resolve({ status: 0, length: undefined, bytes: 0, error }));
      req.end();
    });
    expect(received.status).to.equal(200);
    expect(received.length).to.equal('10000');
    expect(received.bytes).to.equal(5000);
    expect(received.error).to.be.instanceOf(Error);

    // fetch: the response resolves, its body rejects.
    const res = await fetch(`${b.url}/a.data`);
    expect(res.status).to.equal(200);
    expect(await rejection(res.text())).to.be.instanceOf(Error);

    expect(await (await fetch(`${b.url}/a.data`)).text()).to.equal(body);
  });

  it('delay waits, then serves the file as it is at that time', async () => {
    const b = await start({ files: { 'a.data': 'old' }, faults: { 'a.data': [{ kind: 'delay', ms: 150 }] } });
    const started = Date.now();
    const pending = fetch(`${b.url}/a.data`);
    await until(() => b.hits('a.data') === 1);
    b.setFile('a.data', 'new');
    const res = await pending;
    expect(Date.now() - started).to.be.at.least(140);
    expect(await res.text()).to.equal('new');
    expect(b.requests[0]?.status).to.equal(200);
  });

  it('close() does not hang on hanging or delayed requests, and is idempotent', async () => {
    const b = await start({
      files: { 'a.data': 'x', 'b.data': 'y' },
      faults: { 'a.data': [{ kind: 'hang' }], 'b.data': [{ kind: 'delay', ms: 60_000 }] },
    });
    // Handlers attached now: both requests fail while close() runs.
    const hanging = rejection(fetch(`${b.url}/a.data`).then((r) => r.text()));
    const delayed = rejection(raw(`${b.url}/b.data`));
    await until(() => b.hits('a.data') === 1 && b.hits('b.data') === 1);
    const started = Date.now();
    await b.close();
    expect(Date.now() - started).to.be.below(1000);
    expect(await hanging).to.be.instanceOf(Error);
    expect(await delayed).to.be.instanceOf(Error);
    await b.close();
    expect(await rejection(fetch(`${b.url}/x.data`))).to.be.instanceOf(TypeError);
  });

  it('gzips bodies when enabled and the client accepts gzip', async () => {
    const body = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ type: 'song', data: { i } })));
    const b = await start({ files: { 'a.data': body }, gzip: true });

    const gz = await raw(`${b.url}/a.data`, { headers: { 'accept-encoding': 'br;q=1, gzip;q=0.8' } });
    expect(gz.headers['content-encoding']).to.equal('gzip');
    expect(gz.headers.vary).to.equal('Accept-Encoding');
    expect(gz.headers.etag).to.equal(md5(body));
    expect(Number(gz.headers['content-length'])).to.equal(gz.body.length).and.below(body.length);
    expect(gunzipSync(gz.body).toString()).to.equal(body);

    const refused = await raw(`${b.url}/a.data`, { headers: { 'accept-encoding': 'gzip;q=0, identity' } });
    expect(refused.headers['content-encoding']).to.equal(undefined);
    expect(refused.body.toString()).to.equal(body);

    const plain = await raw(`${b.url}/a.data`);
    expect(plain.headers['content-encoding']).to.equal(undefined);
    expect(plain.body.toString()).to.equal(body);

    // fetch asks for gzip and decodes it transparently.
    expect(await (await fetch(`${b.url}/a.data`)).text()).to.equal(body);
  });

  it('does not gzip unless enabled', async () => {
    const b = await start({ files: { 'a.data': 'abc' } });
    const res = await raw(`${b.url}/a.data`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers['content-encoding']).to.equal(undefined);
    expect(res.body.toString()).to.equal('abc');
  });

  it('serves chunked keys without Content-Length', async () => {
    const b = await start({ files: { 'a.data': 'abc', 'b.data': 'def' }, chunked: ['a.data'] });
    const res = await raw(`${b.url}/a.data`);
    expect(res.headers['content-length']).to.equal(undefined);
    expect(res.headers['transfer-encoding']).to.equal('chunked');
    expect(res.body.toString()).to.equal('abc');
    expect((await raw(`${b.url}/b.data`)).headers['content-length']).to.equal('3');
  });
});

// -----------------------------------------------------------------------------------------------------------
// Generator

type Verdict = 'valid' | 'invalid' | 'skipped';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): boolean => typeof v === 'string';
const isInt = (v: unknown): boolean => Number.isSafeInteger(v);

function isDate(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v);
  if (m === null) return false;
  const d = new Date(`${v}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === v;
}

/** A reference validator following the record format the daemon is specified to accept. */
function classify(record: unknown): Verdict {
  if (!isObject(record) || typeof record.type !== 'string') return 'invalid';
  if (record.type === 'book') return 'skipped';
  const d = record.data;
  if (!isObject(d)) return 'invalid';
  switch (record.type) {
    case 'song':
      return isStr(d.artist_name) && isStr(d.title) && isInt(d.year) && isStr(d.release) ? 'valid' : 'invalid';
    case 'movie':
      return isStr(d.original_title) && isStr(d.original_language) && isInt(d.budget) && (d.budget as number) >= 0 &&
        typeof d.is_adult === 'boolean' && isDate(d.release_date)
        ? 'valid'
        : 'invalid';
    case 'app':
      return isStr(d.name) && isStr(d.genre) && isStr(d.version) && typeof d.rating === 'number' &&
        isInt(d.size_bytes) && (d.size_bytes as number) >= 0
        ? 'valid'
        : 'invalid';
    default:
      return 'invalid';
  }
}

const KEY_FIELDS: Record<string, string[]> = {
  song: ['artist_name', 'title'],
  movie: ['original_title', 'release_date'],
  app: ['name', 'version'],
};
const normalize = (v: unknown): string => String(v).normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();

function recordKey(record: { type: string; data: Record<string, unknown> }): string {
  return [record.type, ...(KEY_FIELDS[record.type] ?? []).map((f) => normalize(record.data[f]))].join('\u0000');
}

function all(opts: GenerateOptions): { keys: string[]; bodies: string[]; records: unknown[] } {
  const keys: string[] = [];
  const bodies: string[] = [];
  const records: unknown[] = [];
  for (const file of generateFiles(opts)) {
    keys.push(file.key);
    bodies.push(file.body);
    const parsed: unknown = JSON.parse(file.body);
    expect(parsed, file.key).to.be.an('array');
    records.push(...(parsed as unknown[]));
  }
  return { keys, bodies, records };
}

describe('bench generator', () => {
  const opts: GenerateOptions = { files: 20, recordsPerFile: 200, seed: 1234 };

  it('is deterministic: same seed, same keys and bytes; another seed, other ones', () => {
    const a = all(opts);
    const b = all(opts);
    expect(b.keys).to.deep.equal(a.keys);
    expect(b.bodies.join('\n')).to.equal(a.bodies.join('\n'));
    const c = all({ ...opts, seed: 4321 });
    expect(c.keys).to.not.deep.equal(a.keys);
    expect(c.bodies.join('\n')).to.not.equal(a.bodies.join('\n'));
  });

  it('yields lazily', () => {
    const it = generateFiles({ files: 1_000_000, recordsPerFile: 5, seed: 1 });
    expect(it.next().done).to.equal(false);
  });

  it('counts add up, books are about 30%, and the counts match a reference validator', () => {
    let valid = 0;
    let invalid = 0;
    let skipped = 0;
    const types: Record<string, number> = {};
    const invalidShapes = new Set<string>();
    for (const file of generateFiles(opts)) {
      expect(file.key).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.data$/);
      expect(file.valid + file.invalid + file.skipped).to.equal(opts.recordsPerFile);
      const records = JSON.parse(file.body) as unknown[];
      expect(records).to.have.length(opts.recordsPerFile);
      const verdicts = { valid: 0, invalid: 0, skipped: 0 };
      for (const record of records) {
        const verdict = classify(record);
        verdicts[verdict]++;
        if (verdict === 'valid') {
          const type = (record as { type: string }).type;
          types[type] = (types[type] ?? 0) + 1;
        }
        if (verdict === 'invalid') invalidShapes.add(JSON.stringify(record).replace(/"[^"]*"|\d+/g, '_').slice(0, 60));
      }
      expect(verdicts, file.key).to.deep.equal({ valid: file.valid, invalid: file.invalid, skipped: file.skipped });
      valid += file.valid;
      invalid += file.invalid;
      skipped += file.skipped;
    }
    const total = opts.files * opts.recordsPerFile;
    expect(valid + invalid + skipped).to.equal(total);
    expect(skipped / total).to.be.within(0.27, 0.33);
    expect(invalid / total).to.be.within(0.01, 0.03);
    expect(Object.keys(types).sort()).to.deep.equal(['app', 'movie', 'song']);
    for (const n of Object.values(types)) expect(n / valid).to.be.within(0.3, 0.37);
    expect(invalidShapes.size).to.be.at.least(8);
  });

  it('varies invalid records and uses non-ASCII titles', () => {
    const { records } = all({ files: 5, recordsPerFile: 100, seed: 9, invalidRate: 0.2 });
    const text = JSON.stringify(records);
    for (const fragment of ['"year":"', '"budget":-5', '"is_adult":0', '"2021-02-30"', '"rating":"4.5"', '"size_bytes":1.5', '"data":null']) {
      expect(text, fragment).to.include(fragment);
    }
    expect(records.some((r) => typeof r === 'number')).to.equal(true);
    expect(records.some((r) => isObject(r) && r.type === 'song' && isObject(r.data) && !('title' in r.data))).to.equal(true);
    expect([...text].some((ch) => ch.charCodeAt(0) > 0x7f)).to.equal(true);
  });

  it('makes key collisions only through duplicateRate', () => {
    const collisions = (duplicateRate: number): { valid: number; dups: number } => {
      const seen = new Set<string>();
      let valid = 0;
      let dups = 0;
      for (const record of all({ files: 30, recordsPerFile: 200, seed: 77, duplicateRate }).records) {
        if (classify(record) !== 'valid') continue;
        valid++;
        const key = recordKey(record as { type: string; data: Record<string, unknown> });
        if (seen.has(key)) dups++;
        else seen.add(key);
      }
      return { valid, dups };
    };
    expect(collisions(0).dups).to.equal(0);
    const { dups } = collisions(0.05);
    expect(dups / (30 * 200)).to.be.within(0.035, 0.065);
  });

  it('indexText joins keys with \\n and no trailing newline', () => {
    expect(indexText(['a.data', 'b.data'])).to.equal('a.data\nb.data');
    expect(indexText([])).to.equal('');
  });

  it('writeBucket writes every file and the index, and sums the counts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bucket-gen-'));
    try {
      const small: GenerateOptions = { files: 4, recordsPerFile: 25, seed: 3 };
      const summary = await writeBucket(dir, small);
      expect(summary.keys).to.have.length(4);
      expect(summary.records).to.equal(100);
      expect(summary.valid + summary.invalid + summary.skipped).to.equal(100);
      expect((await readdir(dir)).sort()).to.deep.equal([...summary.keys, 'files_list.data'].sort());
      expect(await readFile(join(dir, 'files_list.data'), 'utf8')).to.equal(summary.keys.join('\n'));
      const { bodies } = all(small);
      let bytes = 0;
      for (const [i, key] of summary.keys.entries()) {
        const onDisk = await readFile(join(dir, key), 'utf8');
        expect(onDisk).to.equal(bodies[i]);
        bytes += Buffer.byteLength(onDisk);
      }
      expect(summary.bytes).to.equal(bytes);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('writeOneFileBucket writes every generated record, in order, as one JSON array, and sums the counts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bucket-gen-'));
    try {
      // Enough files that both compact and pretty-printed ones (with their trailing newline) are joined.
      const opts: GenerateOptions = { files: 12, recordsPerFile: 30, seed: 5 };
      const files = [...generateFiles(opts)];
      expect(files.some((f) => f.body.endsWith('\n')) && files.some((f) => !f.body.endsWith('\n'))).to.equal(true);
      const summary = await writeOneFileBucket(dir, opts, 'one.data');
      expect(summary.keys).to.deep.equal(['one.data']);
      expect(await readFile(join(dir, 'files_list.data'), 'utf8')).to.equal('one.data');
      const body = await readFile(join(dir, 'one.data'), 'utf8');
      expect(JSON.parse(body)).to.deep.equal(files.flatMap((f) => JSON.parse(f.body) as unknown[]));
      expect(summary.bytes).to.equal(Buffer.byteLength(body));
      expect(summary.records).to.equal(12 * 30);
      expect(summary).to.include({
        valid: files.reduce((n, f) => n + f.valid, 0),
        invalid: files.reduce((n, f) => n + f.invalid, 0),
        skipped: files.reduce((n, f) => n + f.skipped, 0),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reproduces examples/sample-bucket (see its README for the command)', async () => {
    const dir = new URL('../examples/sample-bucket/', import.meta.url);
    for (const file of generateFiles({ files: 6, recordsPerFile: 40, seed: 42, invalidRate: 0.08, duplicateRate: 0.03 })) {
      expect(await readFile(new URL(file.key, dir), 'utf8'), file.key).to.equal(file.body);
    }
  });
});
