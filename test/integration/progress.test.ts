import { execFile } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { CLI, cleanEnv, runCli, tempDir } from '../helpers/cli.js';

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
