import { execFile } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { CLI, cleanEnv, runCli, tempDir } from '../helpers/cli.js';
import { runOnTerminal, screenAfter } from '../helpers/terminal.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

const run = promisify(execFile);

describe('progress and log format (integration)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    cpSync(resolve('examples/sample-bucket'), join(dir, 'examples', 'sample-bucket'), { recursive: true });
  });
  afterEach(() => cleanup());

  it('on a terminal, run --once draws a progress bar and readable log lines', async () => {
    // `script` gives the child a pseudo-terminal, as an operator's shell would.
    const { stdout } = await run('script', ['-qec', `${process.execPath} ${CLI} run --once`, '/dev/null'], { cwd: dir, env: cleanEnv({ COLUMNS: '120' }) });
    expect(stdout).to.match(/files .*\d+\/6 \| \d+ records \| \d+ rec\/s \| ETA/);
    expect(stdout).to.contain('INFO').and.contain('cycle 1 finished');
    expect(stdout).to.not.contain('"event"');
  });

  describe('the bar never hides a log line (regression: the cycle summary was erased, pieces of the bar were left)', () => {
    let bucket: TestBucket;
    const keys = Array.from({ length: 12 }, (_, i) => `f${String(i).padStart(2, '0')}.data`);
    const song = (i: number) => JSON.stringify([{ type: 'song', data: { artist_name: 'A', title: `t${i}`, year: 1, release: 'R' } }]);
    beforeEach(async () => {
      // Slow files, so the bar is on screen for a while; a broken one, so lines are logged while it is drawn.
      const files: Record<string, string> = Object.fromEntries(keys.map((k, i) => [k, song(i)]));
      bucket = await startTestBucket({
        files: { ...files, 'broken.data': '[]' },
        index: [...keys.slice(0, 6), 'broken.data', ...keys.slice(6)].join('\n'),
        broken: ['broken.data'],
        faults: Object.fromEntries(keys.map((k) => [k, [{ kind: 'delay', ms: 120 }]])),
      });
    });
    afterEach(() => bucket.close());

    const settings = () => ({ BUCKET_URL: bucket.url, CONCURRENCY: '2', MAX_ATTEMPTS: '2', RETRY_FAILED_SECONDS: '0' });
    const bar = /rec\/s|ETA|[░█]/;

    /** The screen must end with the summary and what follows it, every log line whole, nothing of the bar left. */
    const expectCleanScreen = async (output: string, cycle: number) => {
      const screen = await screenAfter(output);
      const text = screen.join('\n');
      expect(text, text).to.not.match(bar);
      const summary = screen.findIndex((l) => l.includes(`cycle ${cycle} finished: files 12 done, 1 failed`));
      expect(summary, text).to.be.greaterThan(-1);
      expect(screen.slice(summary + 1).map((l) => l.replace(/^\[[\d:]+\] /, '')), text).to.deep.equal([
        'WARN: 1 file(s) are failed; see `bucket-ingest status`',
        'INFO: stopped',
      ]);
      expect(screen.filter((l) => /broken\.data: attempt 1 failed \(BI_HTTP_STATUS: broken\.data: HTTP 500\); retrying in \d+ ms$/.test(l)), text).to.have.length(1);
      expect(screen.filter((l) => l.includes('broken.data: failed (BI_HTTP_STATUS')), text).to.have.length(1);
      // What the brief asks for in bytes: the bar's last erasing comes before the summary line.
      const lastClear = Math.max(output.lastIndexOf('\x1b[2K'), output.lastIndexOf('\x1b[K'), output.lastIndexOf('\x1b[0K'));
      expect(output.slice(lastClear)).to.contain(`cycle ${cycle} finished`);
    };

    it('run --once: the summary stays on screen, below every line logged while the bar was drawn', async () => {
      const r = await runOnTerminal(`${process.execPath} ${CLI} run --once`, { cwd: dir, env: cleanEnv(settings()) });
      expect(r.code, r.output).to.equal(1);
      expect(r.output).to.match(/files .*\d+\/13 \| \d+ records \| \d+ rec\/s \| ETA/); // the bar was drawn
      await expectCleanScreen(r.output, 1);
    });

    it('reprocess --now: the same, after the lines it prints first', async () => {
      await runCli(['run', '--once'], { cwd: dir, env: settings() });
      const r = await runOnTerminal(`${process.execPath} ${CLI} reprocess 'f*' --now`, { cwd: dir, env: cleanEnv(settings()) });
      expect(r.code, r.output).to.equal(1);
      expect(r.output).to.match(/files .*\d+\/13 \| \d+ records/);
      await expectCleanScreen(r.output, 2); // cycles are numbered per registry: the run before was cycle 1
      expect((await screenAfter(r.output))[0]).to.match(/^marked 12 file\(s\) for reprocessing: f00\.data/);
    });
  });

  it('without a terminal, no progress bar and JSON lines only', async () => {
    const r = await runCli(['run', '--once'], { cwd: dir });
    expect(r.code).to.equal(0);
    expect(r.stdout + r.stderr).to.not.contain('ETA').and.not.contain('\r');
    for (const line of r.stdout.trim().split('\n')) expect(() => JSON.parse(line), line).to.not.throw();
  });

  it('--log-format json forces JSON lines on a terminal', async () => {
    const { stdout } = await run('script', ['-qec', `${process.execPath} ${CLI} run --once --log-format json`, '/dev/null'], { cwd: dir, env: cleanEnv({}) });
    expect(stdout).to.contain('"event":"CycleFinished"');
  });
});
