import { renameSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { expect } from 'chai';
import knexFactory from 'knex';
import { events, startCli, tempDir, until } from '../helpers/cli.js';
import { fixture } from '../helpers/bucket-fixture.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

/** Reads one sample of a metric (with exact labels) from Prometheus text. */
function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  if (line === undefined) throw new Error(`no ${name}${labels} in metrics`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Sends `GET <target> HTTP/1.1` as it is (fetch would normalise the target) and returns the raw answer. */
function rawGet(base: string, target: string): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(`GET ${target} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`));
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('daemon HTTP endpoints (integration)', function () {
  this.timeout(90_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let bucket: TestBucket;
  let daemon: ReturnType<typeof startCli>;
  let base: string;
  const fx = fixture({ files: 6, recordsPerFile: 50, seed: 21 });
  const extra = fixture({ files: 1, recordsPerFile: 30, seed: 99 });

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    bucket = await startTestBucket({ files: { ...fx.files, ...extra.files, 'broken.data': '[]' }, index: [...fx.keys, 'broken.data'].join('\n'), broken: ['broken.data'] });
    const url = bucket.url.replace('http://', 'http://reader:hunter2@');
    daemon = startCli(['run'], {
      cwd: dir,
      env: { BUCKET_URL: `${url}/?token=s3cr3t`, HTTP_PORT: '0', POLL_INTERVAL_SECONDS: '0.3', DATABASE_URL: 'sqlite://db.sqlite3', MAX_ATTEMPTS: '1', RETRY_FAILED_SECONDS: '3600' },
    });
    const port = await until(() => events(daemon.output()).find((e) => e.event === 'HttpListening')?.port as number | undefined);
    base = `http://127.0.0.1:${port}`;
    await until(() => (events(daemon.output()).some((e) => e.event === 'CycleFinished') ? true : undefined));
  });
  after(async () => {
    daemon.child.kill('SIGTERM');
    const r = await daemon.finished;
    expect(r.code).to.equal(0);
    // Nothing the daemon printed, in any event, carries the bucket's password or token.
    expect(r.stdout + r.stderr).to.not.contain('hunter2').and.not.contain('s3cr3t');
    await bucket.close();
    await cleanup();
  });

  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`);
    const text = await res.text();
    expect(text).to.not.contain('hunter2').and.not.contain('s3cr3t');
    return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };

  it('binds 127.0.0.1 and answers /healthz while the loop runs', async () => {
    expect(base).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await get('/healthz');
    expect(r.status).to.equal(200);
    expect(r.json()).to.include({ status: 'ok' });
  });

  it('/metrics moves as files are processed', async () => {
    const before = (await get('/metrics')).text;
    expect(metric(before, 'bucket_ingest_files_total', '{outcome="done"}')).to.equal(6);
    expect(metric(before, 'bucket_ingest_files_total', '{outcome="failed"}')).to.be.greaterThan(0);
    expect(metric(before, 'bucket_ingest_records_total', '{outcome="loaded"}')).to.equal(fx.valid);
    expect(metric(before, 'bucket_ingest_records_total', '{outcome="rejected"}')).to.equal(fx.invalid);
    expect(metric(before, 'bucket_ingest_pending_files')).to.equal(1); // broken.data waits for its retry
    expect(metric(before, 'bucket_ingest_oldest_pending_age_seconds')).to.be.greaterThan(0);
    expect(metric(before, 'bucket_ingest_http_responses_total', '{class="5xx"}')).to.be.greaterThan(0);
    expect(before).to.contain('process_cpu_seconds_total');

    bucket.setIndex([...fx.keys, 'broken.data', ...extra.keys].join('\n'));
    const after = await until(async () => {
      const text = (await get('/metrics')).text;
      return metric(text, 'bucket_ingest_files_total', '{outcome="done"}') === 7 ? text : undefined;
    });
    expect(metric(after, 'bucket_ingest_records_total', '{outcome="loaded"}') - metric(before, 'bucket_ingest_records_total', '{outcome="loaded"}')).to.equal(extra.valid);
    expect(metric(after, 'bucket_ingest_records_total', '{outcome="skipped"}') - metric(before, 'bucket_ingest_records_total', '{outcome="skipped"}')).to.equal(extra.skipped);
    expect(metric(after, 'bucket_ingest_http_responses_total', '{class="2xx"}')).to.be.greaterThan(metric(before, 'bucket_ingest_http_responses_total', '{class="2xx"}'));
    expect(metric(after, 'bucket_ingest_bytes_fetched_total')).to.be.greaterThan(metric(before, 'bucket_ingest_bytes_fetched_total'));
    expect(metric(after, 'bucket_ingest_cycle_duration_seconds_count')).to.be.greaterThan(metric(before, 'bucket_ingest_cycle_duration_seconds_count'));
    expect(metric(after, 'bucket_ingest_last_success_timestamp_seconds')).to.be.greaterThan(metric(before, 'bucket_ingest_last_success_timestamp_seconds') - 0.001);
  });

  it('the read API pages every row exactly once, in key order', async () => {
    const tables = (await get('/api/tables')).json().tables as Array<{ name: string; rows: number }>;
    expect(tables.map((t) => t.name)).to.deep.equal(['apps', 'movies', 'songs', 'rejected_records']);
    const db = knexFactory({ client: 'better-sqlite3', connection: { filename: join(dir, 'db.sqlite3') }, useNullAsDefault: true });
    try {
      for (const [table, key] of [['songs', ['artist_name', 'title']], ['apps', ['name', 'version']], ['rejected_records', ['id']]] as const) {
        const seen: string[] = [];
        let after: string | null = null;
        do {
          const page = (await get(`/api/tables/${table}/rows?limit=7${after ? `&after=${after}` : ''}`)).json() as { rows: Array<Record<string, unknown>>; next: string | null };
          expect(page.rows.length).to.be.at.most(7);
          seen.push(...page.rows.map((r) => JSON.stringify(key.map((k) => r[k]))));
          after = page.next;
        } while (after !== null);
        const all = ((await db(table).select(...key)) as Array<Record<string, unknown>>).map((r) => JSON.stringify(key.map((k) => r[k])));
        expect(new Set(seen).size).to.equal(seen.length);
        expect(seen).to.have.members(all);
        expect(tables.find((t) => t.name === table)!.rows).to.equal(all.length);
      }
    } finally {
      await db.destroy();
    }
  });

  it('the read API caps limit, refuses unknown tables, bad cursors and writes', async () => {
    const big = (await get('/api/tables/songs/rows?limit=100000')).json() as { rows: unknown[] };
    expect(big.rows.length).to.be.at.most(1000);
    expect((await get('/api/tables/sqlite_master/rows')).status).to.equal(404);
    expect((await get('/api/tables/songs%3B%20drop%20table%20songs/rows')).status).to.equal(404);
    expect((await get('/api/tables/songs/rows?after=garbage')).status).to.equal(400);
    expect((await get('/api/tables/songs/rows?limit=-1')).status).to.equal(400);
    expect((await fetch(`${base}/api/tables`, { method: 'POST' })).status).to.equal(405);
  });

  it('answers 400, never 500, for a request it cannot decode: path escapes, request targets, cursors', async () => {
    for (const path of ['/api/tables/%E0%A4%A/rows', '/api/tables/%/rows', '/api/tables/%FF/rows']) {
      const r = await get(path);
      expect(r.status, path).to.equal(400);
      expect(r.json(), path).to.deep.equal({ error: 'table name in the path is not percent-encoded UTF-8' });
    }
    // A target that is no URL (raw, as a client could send it), and `//…`, which is a path, not a host.
    for (const target of ['http://[/api/tables', '//[']) {
      const answer = await rawGet(base, target);
      expect(answer.split('\r\n')[0], target).to.equal(target === '//[' ? 'HTTP/1.1 404 Not Found' : 'HTTP/1.1 400 Bad Request');
    }
    expect((await rawGet(base, '//api/tables')).split('\r\n')[0]).to.equal('HTTP/1.1 404 Not Found');
    // Cursors this API never returns: a value of the wrong kind, U+0000, bytes that are not UTF-8.
    const cursor = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    for (const after of [cursor(['x']), cursor([null]), cursor([1, 2]), Buffer.from([0x5b, 0x22, 0xff, 0x22, 0x5d]).toString('base64url')]) {
      expect((await get(`/api/tables/rejected_records/rows?after=${after}`)).status, after).to.equal(400);
    }
    for (const after of [cursor(['a', 1]), cursor(['a\u0000', 'b']), cursor(['\ud800', 'b'])]) {
      expect((await get(`/api/tables/songs/rows?after=${after}`)).status, after).to.equal(400);
    }
    expect((await get(`/api/files?after=${cursor([1])}`)).status).to.equal(400);
    expect((await get(`/api/tables/songs/rows?after=${cursor(['a', 'b'])}`)).status).to.equal(200);
    expect((await get(`/api/tables/rejected_records/rows?after=${cursor([1])}`)).status).to.equal(200);
  });

  it('/api/files lists registry entries, filtered by status', async () => {
    const failed = (await get('/api/files?status=failed')).json() as { files: Array<{ key: string; error: string }> };
    expect(failed.files.map((f) => f.key)).to.deep.equal(['broken.data']);
    expect(failed.files[0]!.error).to.contain('HTTP 500');
    const done = (await get('/api/files?status=done&limit=100')).json() as { files: unknown[] };
    expect(done.files.length).to.be.at.least(6);
    expect((await get('/api/files?status=weird')).status).to.equal(400);
  });

  it('/readyz is 200 when ready and 503 with a reason once the database file is unreadable', async () => {
    expect((await get('/readyz')).status).to.equal(200);
    const file = join(dir, 'db.sqlite3');
    renameSync(file, `${file}.moved`);
    writeFileSync(file, 'this is not a database, just garbage bytes '.repeat(200));
    try {
      const r = await get('/readyz');
      expect(r.status).to.equal(503);
      expect(JSON.stringify(r.json())).to.contain('database');
    } finally {
      renameSync(`${file}.moved`, file);
    }
    expect((await get('/readyz')).status).to.equal(200);
  });
});
