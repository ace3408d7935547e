import { expect } from 'chai';
import { fixture } from '../helpers/bucket-fixture.js';
import { dialects } from '../helpers/databases.js';
import { events, runCli, startCli, tempDir, until } from '../helpers/cli.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

/**
 * The dashboard's HTTP side without a browser (test/slow/dashboard/ has the browser): its assets and their caching, its
 * reads, and its actions, which answer only with DASHBOARD_TOKEN set and the token sent.
 */
const TOKEN = 'api-test-token-3f9a1c';

interface Daemon { dir: string; base: string; stop(): Promise<void>; output(): string; env: Record<string, string> }

describe('dashboard HTTP routes (integration)', function () {
  this.timeout(60_000);
  const fx = fixture({ files: 3, recordsPerFile: 30, seed: 5, invalidRate: 0.1 });
  let bucket: TestBucket;
  let plain: Daemon;
  let guarded: Daemon;
  const undo: Array<() => Promise<void>> = [];

  async function start(extra: Record<string, string>): Promise<Daemon> {
    const { dir, cleanup } = await tempDir();
    undo.push(cleanup);
    const env = {
      BUCKET_URL: bucket.url.replace('http://', 'http://reader:hunter2@'), DATABASE_URL: 'sqlite://db.sqlite3', HTTP_PORT: '0', POLL_INTERVAL_SECONDS: '0.5',
      MAX_ATTEMPTS: '1', RETRY_FAILED_SECONDS: '3600', LOG_FORMAT: 'json', DECODE_THREADS: '0', ...extra,
    };
    const d = startCli(['run'], { cwd: dir, env });
    const port = await until(() => events(d.output()).find((e) => e.event === 'HttpListening')?.port as number | undefined);
    await until(() => (events(d.output()).some((e) => e.event === 'CycleFinished') ? true : undefined));
    return {
      dir, env, base: `http://127.0.0.1:${port}`, output: d.output,
      stop: async () => {
        d.child.kill('SIGTERM');
        const r = await d.finished;
        expect(r.code, r.stderr).to.equal(0);
        expect(r.stdout + r.stderr).to.not.contain(TOKEN).and.not.contain('hunter2');
      },
    };
  }

  before(async () => {
    bucket = await startTestBucket({ files: { ...fx.files, 'broken.data': '[]' }, index: [...fx.keys, 'broken.data'].join('\n'), broken: ['broken.data'] });
    [plain, guarded] = await Promise.all([start({}), start({ DASHBOARD_TOKEN: TOKEN })]);
  });
  after(async () => {
    await plain?.stop();
    await guarded?.stop();
    await bucket?.close();
    for (const u of undo) await u();
  });

  const post = (d: Daemon, path: string, body: string, authorization?: string): Promise<Response> =>
    fetch(`${d.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, body });

  it('serves the page revalidated and its hashed assets as immutable, with a policy that loads nothing from elsewhere', async () => {
    const page = await fetch(`${plain.base}/`);
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-type')).to.equal('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).to.equal('no-cache');
    expect(page.headers.get('content-security-policy')).to.contain("default-src 'none'").and.contain("connect-src 'self'");
    const html = await page.text();
    const etag = page.headers.get('etag')!;
    expect((await fetch(`${plain.base}/`, { headers: { 'if-none-match': etag } })).status).to.equal(304);
    const assets = [...html.matchAll(/\/assets\/(app-[A-Z0-9]+\.(?:js|css))/g)].map((m) => m[1]!);
    expect(assets).to.have.length(2);
    for (const name of assets) {
      const res = await fetch(`${plain.base}/assets/${name}`);
      expect(res.status, name).to.equal(200);
      expect(res.headers.get('cache-control')).to.equal('public, max-age=31536000, immutable');
      expect(res.headers.get('content-type')).to.match(name.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      const body = await res.text();
      expect(body).to.not.match(/https?:\/\/(?!127\.0\.0\.1)[a-z0-9.-]+\.[a-z]{2,}\/[^\s"')]*\.(?:js|css|woff2?)/i); // nothing fetched from a CDN
    }
    expect((await fetch(`${plain.base}/assets/nope.js`)).status).to.equal(404);
    expect(html).to.not.match(/<(?:script|link)[^>]+(?:src|href)="https?:/);
  });

  it('answers the overview with the numbers of `status --json`, credentials masked, and streams it as server-sent events', async () => {
    const res = await fetch(`${plain.base}/api/dashboard/overview`);
    const text = await res.text();
    expect(text).to.not.contain('hunter2');
    const o = JSON.parse(text) as { state: string; actions: boolean; status: { files: unknown; records: unknown }; history: unknown[] };
    const r = await runCli(['status', '--json'], { cwd: plain.dir, env: plain.env });
    const status = JSON.parse(r.stdout) as { files: unknown; records: unknown };
    expect(o.state).to.equal('running');
    expect(o.actions).to.equal(false);
    expect(o.status.files).to.deep.equal(status.files);
    expect(o.status.records).to.deep.equal(status.records);
    expect(o.history.length).to.be.greaterThan(0);

    const ac = new AbortController();
    const stream = await fetch(`${plain.base}/api/dashboard/events`, { signal: ac.signal });
    expect(stream.headers.get('content-type')).to.equal('text/event-stream; charset=utf-8');
    const reader = stream.body!.getReader();
    let got = '';
    while (!got.includes('event: overview\ndata: {')) got += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
  });

  it('refuses bad reads with 400', async () => {
    expect((await fetch(`${plain.base}/api/dashboard/rejections`)).status).to.equal(400);
    expect((await fetch(`${plain.base}/api/dashboard/rejections?group=x&after=bm9wZQ`)).status).to.equal(400);
    expect((await fetch(`${plain.base}/api/dashboard/file`)).status).to.equal(400);
    expect((await fetch(`${plain.base}/api/dashboard/nope`)).status).to.equal(404);
  });

  it('has no action endpoint without DASHBOARD_TOKEN, whatever is sent', async () => {
    for (const path of ['/api/actions/reprocess', '/api/actions/replay', '/api/actions/nope']) {
      expect((await post(plain, path, '{"failed":true}', `Bearer ${TOKEN}`)).status, path).to.equal(404);
    }
    expect((await post(plain, '/api/tables', '{}')).status).to.equal(405);
  });

  it('with DASHBOARD_TOKEN, answers 401 to a request without it, and reads what it is sent strictly', async () => {
    const res = await post(guarded, '/api/actions/reprocess', '{"failed":true}');
    expect(res.status).to.equal(401);
    expect(res.headers.get('www-authenticate')).to.match(/^Bearer /);
    const auth = `Bearer ${TOKEN}`;
    expect((await post(guarded, '/api/actions/reprocess', 'not json', auth)).status).to.equal(400);
    expect((await post(guarded, '/api/actions/reprocess', '{"keys":"a"}', auth)).status).to.equal(400);
    expect((await post(guarded, '/api/actions/reprocess', JSON.stringify({ keys: ['x'.repeat(300 * 1024)] }), auth)).status).to.equal(413);
    expect((await post(guarded, '/api/actions/nope', '{}', auth)).status).to.equal(404);
    expect((await fetch(`${guarded.base}/api/actions/reprocess`, { headers: { authorization: auth } })).status).to.equal(405);
    const none = await post(guarded, '/api/actions/reprocess', '{"keys":["no-such.data"]}', auth);
    expect(none.status).to.equal(400);
    expect(((await none.json()) as { error: string }).error).to.contain('"no-such.data" matched none of the');
    const type = await post(guarded, '/api/actions/replay', '{"type":"boat"}', auth);
    expect(type.status).to.equal(400);
    expect(((await type.json()) as { error: string }).error).to.contain('no such record type');
  });

  it('with the token, marks files as `reprocess` does and replays rejections as `reprocess --rejected` does', async () => {
    const auth = `Bearer ${TOKEN}`;
    const res = await post(guarded, '/api/actions/reprocess', JSON.stringify({ keys: [fx.keys[0]] }), auth);
    expect(res.status).to.equal(200);
    const body = (await res.json()) as { message: string; keys: string[] };
    expect(body.keys).to.deep.equal([fx.keys[0]]);
    expect(body.message).to.match(/^marked 1 file\(s\) for reprocessing: /);
    const dry = (await (await post(guarded, '/api/actions/replay', '{"dryRun":true}', auth)).json()) as { report: { dryRun: boolean; matched: number }; message: string };
    const cli = await runCli(['reprocess', '--rejected', '--dry-run'], { cwd: guarded.dir, env: guarded.env });
    expect(dry.report.dryRun).to.equal(true);
    expect(dry.report.matched).to.equal(fx.invalid);
    expect(`${dry.message}\n`).to.equal(cli.stdout);
    await until(() => (events(guarded.output()).some((e) => e.event === 'DashboardAction' && e.action === 'replay') ? true : undefined));
  });
});

describe('dashboard reads and actions on every dialect (integration)', function () {
  this.timeout(90_000);
  const fx = fixture({ files: 3, recordsPerFile: 40, seed: 9, invalidRate: 0.15 });
  let bucket: TestBucket;
  before(async () => {
    bucket = await startTestBucket({ files: { ...fx.files, 'broken.data': '[]' }, index: [...fx.keys, 'broken.data'].join('\n'), broken: ['broken.data'] });
  });
  after(() => bucket?.close());

  for (const dialect of dialects()) {
    it(`${dialect.name}: problems as \`inspect\` groups them, each group paged whole, a file's counts, reprocess as the CLI marks`, async () => {
      const { dir, cleanup } = await tempDir();
      const db = await dialect.create(dir);
      const env = {
        BUCKET_URL: bucket.url, DATABASE_URL: db.url, HTTP_PORT: '0', POLL_INTERVAL_SECONDS: '0.5', MAX_ATTEMPTS: '1', RETRY_FAILED_SECONDS: '3600',
        LOG_FORMAT: 'json', DECODE_THREADS: '0', DASHBOARD_TOKEN: TOKEN,
      };
      const d = startCli(['run'], { cwd: dir, env });
      try {
        const port = await until(() => events(d.output()).find((e) => e.event === 'HttpListening')?.port as number | undefined);
        await until(() => (events(d.output()).some((e) => e.event === 'CycleFinished') ? true : undefined));
        const base = `http://127.0.0.1:${port}`;
        const get = async <T>(path: string): Promise<T> => {
          const res = await fetch(`${base}${path}`);
          expect(res.status, path).to.equal(200);
          return (await res.json()) as T;
        };
        const problems = await get<{ failed: Array<{ key: string; error: string }>; rejections: { total: number; groups: Array<{ reason: string; count: number }> } }>('/api/dashboard/problems');
        const inspect = JSON.parse((await runCli(['inspect', '--json'], { cwd: dir, env })).stdout) as { rejections: unknown };
        expect(problems.rejections).to.deep.equal(inspect.rejections);
        expect(problems.failed.map((f) => f.key)).to.deep.equal(['broken.data']);
        expect(problems.rejections.total).to.equal(fx.invalid);
        for (const g of problems.rejections.groups) {
          const ids: number[] = [];
          let after: string | null = null;
          do {
            const q = new URLSearchParams({ group: g.reason, limit: '2', ...(after ? { after } : {}) });
            const page: { rows: Array<{ id: number | string }>; next: string | null } = await get(`/api/dashboard/rejections?${q.toString()}`);
            ids.push(...page.rows.map((r) => Number(r.id)));
            after = page.next;
          } while (after !== null);
          expect(ids.length, g.reason).to.equal(g.count);
          expect([...ids].sort((a, b) => a - b)).to.deep.equal(ids);
        }
        const key = fx.keys[0]!;
        const file = await get<{ explanation: { entry: { rejected: number } | null; summary: string }; tables: Array<{ name: string; rows: number }> }>(`/api/dashboard/file?key=${encodeURIComponent(key)}`);
        const explained = JSON.parse((await runCli(['explain', key, '--json'], { cwd: dir, env })).stdout) as { summary: string };
        expect(file.explanation.summary).to.equal(explained.summary);
        expect(file.tables.find((t) => t.name === 'rejected_records')!.rows).to.equal(file.explanation.entry!.rejected);
        const rows = await get<{ rows: Array<{ source_key: string }> }>(`/api/tables/rejected_records/rows?source_key=${encodeURIComponent(key)}&limit=1000`);
        expect(rows.rows.length).to.equal(file.explanation.entry!.rejected);
        expect(rows.rows.every((r) => r.source_key === key)).to.equal(true);

        const res = await fetch(`${base}/api/actions/reprocess`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{"failed":true}' });
        expect(res.status).to.equal(200);
        const status = JSON.parse((await runCli(['status', '--json'], { cwd: dir, env })).stdout) as { reprocess: Array<{ key: string }>; failed: Array<{ attempts: number }> };
        // The next cycle may already have taken the mark and tried the file again.
        expect(status.reprocess.map((r) => r.key).concat(status.failed[0]!.attempts > 1 ? ['broken.data'] : [])).to.include('broken.data');
      } finally {
        d.child.kill('SIGTERM');
        const r = await d.finished;
        expect(r.code, r.stderr).to.equal(0);
        await db.drop();
        await cleanup();
      }
    });
  }
});
