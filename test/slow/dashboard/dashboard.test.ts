import { mkdir, copyFile, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../../helpers/browser.js';
import { fixture } from '../../helpers/bucket-fixture.js';
import { events, runCli, startCli, tempDir, until } from '../../helpers/cli.js';
import { startTestBucket, type TestBucket } from '../../helpers/test-bucket.js';

/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core), on a daemon of a test bucket with a
 * failing file and rejected records. One browser for the whole suite; one daemon without DASHBOARD_TOKEN, then the
 * same registry restarted with one. Screenshots go to test-results/dashboard/ (gitignored); with
 * UPDATE_DASHBOARD_SCREENSHOT=1 the Now view also to docs/dashboard.png, the README's picture.
 */

const SHOTS = resolve('test-results/dashboard');
const TOKEN = 'dashboard-test-token-0123456789';

/** 30 songs whose years are text, each another value: 30 exact reasons, one group (`year: expected SafeInteger, got …`). */
const BAD_YEARS = JSON.stringify(Array.from({ length: 30 }, (_, i) => ({ type: 'song', data: { artist_name: `Band ${i}`, title: `Song ${i}`, year: `year ${i}`, release: 'R' } })));

const fmt = (n: number): string => n.toLocaleString('en-US');

interface Status {
  files: { total: number; done: number; failed: number };
  records: { loaded: number; rejected: number; skipped: number };
  failed: Array<{ key: string; error: string | null; attempts: number }>;
  lastCycle: { cycle: number } | null;
  reprocess: unknown[];
}
interface Inspect {
  tables: Array<{ table: string; rows: number }>;
  rejections: { total: number; groups: Array<{ reason: string; count: number }> };
}

describe('dashboard in a real browser (integration)', function () {
  this.timeout(120_000);
  const fx = fixture({ files: 4, recordsPerFile: 40, seed: 18, invalidRate: 0.1 });
  const extra = fixture({ files: 1, recordsPerFile: 20, seed: 81 });
  const baseIndex = [...fx.keys, 'bad-years.data', 'broken.data'];
  let browser: Browser | undefined;
  let bucket: TestBucket;
  let dir: string;
  let cleanup: () => Promise<void>;
  let daemon: ReturnType<typeof startCli> | undefined;
  let base = '';
  let env: Record<string, string>;
  /** Every request the pages made, console errors and page errors, over the whole suite. */
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  /** A console line the next step expects (the browser logs a refused request as an error). */
  let expectedConsole: RegExp | null = null;
  const contexts: BrowserContext[] = [];

  async function startDaemon(extraEnv: Record<string, string> = {}): Promise<void> {
    daemon = startCli(['run'], { cwd: dir, env: { ...env, ...extraEnv } });
    const running = daemon;
    const port = await until(() => events(running.output()).find((e) => e.event === 'HttpListening')?.port as number | undefined);
    base = `http://127.0.0.1:${port}`;
    await until(() => (events(running.output()).some((e) => e.event === 'CycleFinished') ? true : undefined));
  }

  async function stopDaemon(): Promise<void> {
    for (const c of contexts.splice(0)) await c.close();
    if (!daemon) return;
    daemon.child.kill('SIGTERM');
    const r = await daemon.finished;
    daemon = undefined;
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout + r.stderr).to.not.contain(TOKEN);
  }

  async function open(hash = '#/now', viewport = { width: 1280, height: 900 }): Promise<Page> {
    if (!browser) throw new Error('no browser');
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    context.on('request', (r) => requests.push(r.url()));
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      if (expectedConsole?.test(m.text())) return;
      consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
    await page.goto(`${base}/${hash}`);
    await page.locator('#state[data-state="running"]').waitFor();
    return page;
  }

  async function shot(page: Page, name: string): Promise<void> {
    await mkdir(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  }

  const cli = async <T>(...args: string[]): Promise<T> => {
    const r = await runCli([...args, '--json'], { cwd: dir, env });
    expect(r.code, r.stderr).to.equal(0);
    return JSON.parse(r.stdout) as T;
  };

  const text = (page: Page, field: string): Promise<string> => page.locator(`[data-field="${field}"]`).first().innerText();

  before(async function () {
    const launched = await launchChromium();
    if (typeof launched === 'string') {
      process.stdout.write(`      dashboard browser tests skipped: ${launched}\n`);
      this.skip();
    }
    browser = launched;
    ({ dir, cleanup } = await tempDir());
    bucket = await startTestBucket({
      files: { ...fx.files, ...extra.files, 'bad-years.data': BAD_YEARS, 'broken.data': '[]' },
      index: baseIndex.join('\n'),
      broken: ['broken.data'],
    });
    env = {
      BUCKET_URL: bucket.url, DATABASE_URL: 'sqlite://db.sqlite3', HTTP_PORT: '0', POLL_INTERVAL_SECONDS: '0.5', MAX_ATTEMPTS: '1',
      RETRY_FAILED_SECONDS: '3600', RECHECK_DONE_SECONDS: '3600', LOG_FORMAT: 'json', DECODE_THREADS: '0',
    };
    await startDaemon();
  });

  after(async () => {
    await stopDaemon().catch(() => undefined);
    await browser?.close();
    await bucket?.close();
    await cleanup?.();
  });

  describe('read-only (no DASHBOARD_TOKEN)', () => {
    it('Now shows the numbers `status --json` gives', async () => {
      const page = await open();
      const status = await cli<Status>('status');
      expect(status.files.failed).to.equal(1);
      await until(async () => ((await text(page, 'files.done')) === fmt(status.files.done) ? true : undefined), 10_000);
      expect(await text(page, 'files.total')).to.equal(fmt(status.files.total));
      expect(await text(page, 'files.failed')).to.equal(fmt(status.files.failed));
      expect(await text(page, 'records.loaded')).to.equal(fmt(status.records.loaded));
      expect(await text(page, 'records.rejected')).to.equal(fmt(status.records.rejected));
      expect(await text(page, 'records.skipped')).to.equal(fmt(status.records.skipped));
      expect(await text(page, 'reprocess')).to.equal(fmt(status.reprocess.length));
      expect(await text(page, 'pending.files')).to.equal('1'); // broken.data waits out its backoff
      expect(await page.locator('#bucket').innerText()).to.equal(`${bucket.url}/`);
      expect(await page.locator('#database').innerText()).to.equal('sqlite://db.sqlite3');
      await shot(page, 'now-1280');
      if (process.env.UPDATE_DASHBOARD_SCREENSHOT === '1') await copyFile(join(SHOTS, 'now-1280.png'), resolve('docs/dashboard.png'));
    });

    it('History plots a point per cycle, from the first one, beside a table of them', async () => {
      const page = await open('#/history');
      const figure = page.locator('#history-chart');
      await figure.locator('canvas').waitFor();
      const before = (await cli<Status>('status')).lastCycle?.cycle ?? 0;
      await until(async () => (Number(await figure.getAttribute('data-last-cycle')) >= before ? true : undefined), 10_000);
      const points = Number(await figure.getAttribute('data-points'));
      const first = Number(await figure.getAttribute('data-first-cycle'));
      const last = Number(await figure.getAttribute('data-last-cycle'));
      expect(first).to.equal(1);
      expect(points).to.equal(last - first + 1);
      const stored = JSON.parse(await readFile(join(dir, 'registry/default.json.cycles.json'), 'utf8')) as { cycles: Array<{ cycle: number }> };
      expect(stored.cycles.map((c) => c.cycle)).to.include.members(Array.from({ length: last }, (_, i) => i + 1));
      expect(await page.locator('#cycles tbody tr').count()).to.equal(Math.min(50, points));
      expect(await page.locator('#cycles tbody tr').last().locator('th').innerText()).to.equal('#1');
      await shot(page, 'history-1280');
    });

    it('Problems shows the failed file with its error and the rejection groups `inspect --json` gives', async () => {
      const page = await open('#/problems');
      const status = await cli<Status>('status');
      const inspect = await cli<Inspect>('inspect');
      const failed = status.failed[0]!;
      const row = page.locator('#failed tr[data-key="broken.data"]');
      await row.waitFor();
      expect(await row.locator('td.error').innerText()).to.equal(failed.error);
      expect(failed.error).to.contain('500');
      expect(await row.locator('td').nth(1).innerText()).to.equal(String(failed.attempts));
      await page.locator('#groups tbody tr').first().waitFor();
      const shown = await page.locator('#groups tbody tr').evaluateAll((rows) => rows.map((r) => ({
        reason: r.getAttribute('data-reason'), count: Number((r.querySelector('td') as { textContent: string | null } | null)?.textContent?.replace(/,/g, '')),
      })));
      expect(shown).to.deep.equal(inspect.rejections.groups.map((g) => ({ reason: g.reason, count: g.count })));
      await shot(page, 'problems-1280');
    });

    it('a rejection group opens its records, page by page', async () => {
      const inspect = await cli<Inspect>('inspect');
      const group = inspect.rejections.groups.find((g) => g.reason === 'year: expected SafeInteger, got …')!;
      expect(group.count).to.be.at.least(30);
      const page = await open('#/problems');
      await page.locator(`#groups tr[data-reason="${group.reason}"] a`).first().click();
      await page.locator('[data-field="group"]').waitFor();
      expect(await page.locator('[data-field="group"]').innerText()).to.equal(group.reason);
      const ids = new Set<string>();
      const paged = page.locator('[data-paged]');
      for (let n = 0; ; n++) {
        await until(async () => ((await paged.locator('.page-no').innerText()).startsWith(`page ${n + 1}`) ? true : undefined), 10_000);
        const rows = paged.locator('tbody tr');
        for (const r of await rows.all()) {
          expect(await r.locator('td').nth(4).innerText()).to.match(/^year: expected SafeInteger, got /);
          ids.add(await r.locator('td').first().innerText());
        }
        const next = paged.locator('[data-pager="next"]');
        if (await next.isDisabled()) break;
        expect(await rows.count()).to.equal(25);
        await next.click();
      }
      expect(ids.size).to.equal(group.count);
      await shot(page, 'rejections-1280');
    });

    it("a file's page says what `explain` says, with its rows and rejections", async () => {
      const explanation = await cli<{ summary: string }>('explain', 'bad-years.data');
      const page = await open(`#/file/${encodeURIComponent('bad-years.data')}`);
      await until(async () => ((await text(page, 'explain.summary')) === explanation.summary ? true : undefined), 10_000);
      expect(await page.locator('[data-fact="status"]').innerText()).to.equal('done');
      const rejected = page.locator('[data-paged="rejected_records of bad-years.data"]');
      await rejected.locator('tbody tr').first().waitFor();
      expect(await rejected.locator('tbody tr').count()).to.equal(25);
      const key = fx.keys[0]!;
      const songs = (await cli<{ entry: { loaded: number } }>('explain', key)).entry.loaded;
      await page.goto(`${base}/#/file/${encodeURIComponent(key)}`);
      await page.locator('[data-paged]').first().waitFor();
      const counted = await page.locator('section h3').allInnerTexts();
      const rows = counted.filter((t) => !t.startsWith('rejected_records')).reduce((n, t) => n + Number(/: ([\d,]+) from this file/.exec(t)?.[1]?.replace(/,/g, '') ?? 0), 0);
      expect(rows).to.be.at.most(songs).and.greaterThan(0); // a row a later record of the same key replaced counts once
      expect(await page.locator('[data-paged] tbody td a').first().innerText()).to.equal(key);
    });

    it('Data lists every table with the row count `inspect --json` gives, each browsable page by page', async () => {
      const inspect = await cli<Inspect>('inspect');
      const page = await open('#/data');
      await page.locator('#tables tbody tr').first().waitFor();
      for (const t of inspect.tables) {
        expect(await page.locator(`#tables tr[data-table="${t.table}"] td`).innerText(), t.table).to.equal(fmt(t.rows));
      }
      await page.locator('#tables tr[data-table="songs"] a').click();
      const paged = page.locator('[data-paged="Rows of songs"]');
      await paged.locator('tbody tr').first().waitFor();
      const first = await paged.locator('tbody tr').first().innerText();
      expect(await paged.locator('tbody tr').count()).to.equal(Math.min(25, inspect.tables.find((t) => t.table === 'songs')!.rows));
      await paged.locator('[data-pager="next"]').click();
      await until(async () => ((await paged.locator('.page-no').innerText()).startsWith('page 2') ? true : undefined), 10_000);
      expect(await paged.locator('tbody tr').first().innerText()).to.not.equal(first);
      await paged.locator('[data-pager="prev"]').click();
      await until(async () => ((await paged.locator('.page-no').innerText()).startsWith('page 1') ? true : undefined), 10_000);
      expect(await paged.locator('tbody tr').first().innerText()).to.equal(first);
    });

    it('updates itself when a new file lands, without reloading', async () => {
      const page = await open('#/now');
      const done = (await cli<Status>('status')).files.done;
      await until(async () => ((await text(page, 'files.done')) === fmt(done) ? true : undefined), 10_000);
      await page.evaluate('window.__notReloaded = true');
      // Where each box of the view is: an update changes the text in them, never where they are (no layout jump).
      const boxes = (): Promise<unknown> => page.evaluate('[...document.querySelectorAll("main .panel, main .stat, main .last-cycle")].map((e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })');
      const before = await boxes();
      bucket.setIndex([...baseIndex, ...extra.keys].join('\n'));
      await until(async () => ((await text(page, 'files.done')) === fmt(done + 1) ? true : undefined), 20_000);
      expect(await page.evaluate('window.__notReloaded')).to.equal(true);
      expect(await boxes()).to.deep.equal(before);
      const status = await cli<Status>('status');
      expect(await text(page, 'records.loaded')).to.equal(fmt(status.records.loaded));
    });

    it('shows no action, and no action endpoint answers, without DASHBOARD_TOKEN', async () => {
      const page = await open('#/problems');
      await page.locator('#failed tr[data-key="broken.data"]').waitFor();
      expect(await page.locator('[data-action]').count()).to.equal(0);
      expect(await page.locator('#unlock').isVisible()).to.equal(false);
      for (const path of ['/api/actions/reprocess', '/api/actions/replay']) {
        const res = await fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{"failed":true}' });
        expect(res.status, path).to.equal(404);
      }
      expect((await cli<Status>('status')).reprocess).to.deep.equal([]);
    });

    it('works at 390 px wide and from the keyboard', async () => {
      const page = await open('#/now', { width: 390, height: 844 });
      await page.locator('[data-field="files.done"]').waitFor();
      for (const hash of ['#/now', '#/history', '#/problems', '#/data']) {
        await page.goto(`${base}/${hash}`);
        await page.locator('main h2').waitFor();
        const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
        expect(overflow, hash).to.be.at.most(0);
      }
      await page.goto(`${base}/#/now`);
      await page.locator('[data-field="files.done"]').waitFor();
      // From the first stop of the page (the skip link), three Tabs reach Problems, and Enter opens it.
      await page.locator('a.skip').focus();
      expect(await page.evaluate('document.activeElement.textContent')).to.equal('Skip to content');
      for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement.getAttribute("data-nav")')).to.equal('problems');
      await page.keyboard.press('Enter');
      await page.waitForFunction('location.hash === "#/problems" && document.activeElement.tagName === "H2"');
      await page.locator('#failed tr[data-key="broken.data"]').waitFor();
      // Every control has a name a screen reader can say, and every view one heading under the page's.
      const unnamed = await page.evaluate(`[...document.querySelectorAll('a, button, input, progress, [role=region]')]
        .filter((e) => !e.hidden && e.offsetParent !== null)
        .filter((e) => !((e.getAttribute('aria-label') || e.textContent || '').trim() || e.labels?.length || e.getAttribute('aria-labelledby')))
        .map((e) => e.outerHTML.slice(0, 80))`);
      expect(unnamed).to.deep.equal([]);
      expect(await page.locator('h1').count()).to.equal(1);
      expect(await page.locator('main h2').count()).to.equal(1);
      await shot(page, 'problems-390');
      await page.goto(`${base}/#/now`);
      await page.locator('[data-field="files.done"]').waitFor();
      await shot(page, 'now-390');
    });
  });

  describe('with DASHBOARD_TOKEN, after a restart', () => {
    before(async function () {
      if (!browser) return this.skip();
      await stopDaemon();
      await startDaemon({ DASHBOARD_TOKEN: TOKEN });
    });

    it('keeps the history across the restart', async () => {
      const page = await open('#/history');
      const figure = page.locator('#history-chart');
      await figure.locator('canvas').waitFor();
      const last = (await cli<Status>('status')).lastCycle!.cycle;
      await until(async () => (Number(await figure.getAttribute('data-last-cycle')) >= last ? true : undefined), 10_000);
      expect(await figure.getAttribute('data-first-cycle')).to.equal('1');
      expect(Number(await figure.getAttribute('data-points'))).to.equal(Number(await figure.getAttribute('data-last-cycle')));
    });

    it('refuses actions without the token or with a wrong one', async () => {
      for (const authorization of [undefined, 'Bearer wrong-token', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
        const res = await fetch(`${base}/api/actions/reprocess`, { method: 'POST', headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) }, body: '{"failed":true}' });
        expect(res.status, authorization).to.equal(401);
        expect(res.headers.get('www-authenticate')).to.match(/^Bearer/);
      }
      expect((await fetch(`${base}/api/actions/reprocess`)).status).to.equal(405);
      expect((await cli<Status>('status')).reprocess).to.deep.equal([]);
      const page = await open('#/problems');
      await page.locator('#failed tr[data-key="broken.data"]').waitFor();
      expect(await page.locator('[data-action]').count()).to.equal(0);
      await page.locator('#token').fill('wrong-token');
      await page.locator('#unlock button[type=submit]').click();
      await page.locator('[data-action="reprocess"]').waitFor();
      expectedConsole = /status of 401/;
      await page.locator('[data-action="reprocess"]').click();
      await until(async () => ((await page.locator('#notice').innerText()).includes('needs the dashboard token') ? true : undefined), 10_000);
      expectedConsole = null;
      expect((await cli<Status>('status')).reprocess).to.deep.equal([]);
    });

    it('reprocesses a failed file and replays rejections with the token, as the CLI does', async () => {
      const page = await open('#/problems');
      await page.locator('#token').fill(TOKEN);
      await page.locator('#unlock button[type=submit]').click();
      const row = page.locator('#failed tr[data-key="broken.data"]');
      await row.locator('[data-action="reprocess"]').waitFor();
      const attempts = (await cli<Status>('status')).failed[0]!.attempts;
      await row.locator('[data-action="reprocess"]').click();
      await until(async () => ((await page.locator('#notice').innerText()).startsWith('marked 1 file(s) for reprocessing: broken.data') ? true : undefined), 10_000);
      // The next cycle takes the request and tries the file again at once, backoff or not; the page shows the attempt.
      await until(async () => ((await row.locator('td').nth(1).innerText()) === String(attempts + 1) ? true : undefined), 20_000);
      expect((await cli<Status>('status')).failed[0]!.attempts).to.equal(attempts + 1);
      expect(events(daemon!.output()).some((e) => e.event === 'DashboardAction' && e.action === 'reprocess')).to.equal(true);

      const inspect = await cli<Inspect>('inspect');
      await page.locator('[data-action="replay-all"]').click();
      await until(async () => ((await page.locator('#notice').innerText()).includes('stored rejection(s) of bucket') ? true : undefined), 20_000);
      expect(await page.locator('#notice').innerText()).to.contain(`${inspect.rejections.total} stored rejection(s)`).and.contain(`${inspect.rejections.total} still rejected`);
      await shot(page, 'problems-actions-1280');
    });
  });

  after(() => {
    if (!browser) return;
    // No request left this machine's daemon: the page loads nothing from elsewhere (no CDN, no fonts, no beacons).
    const elsewhere = requests.filter((u) => !u.startsWith('http://127.0.0.1:') && !u.startsWith('data:'));
    expect(elsewhere).to.deep.equal([]);
    expect(requests.length).to.be.greaterThan(0);
    expect(consoleErrors).to.deep.equal([]);
  });
});
