import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { runCli, startCli, tempDir } from '../helpers/cli.js';
import { fixture, type Fixture } from '../helpers/bucket-fixture.js';
import { dumpSqlite, type Dump } from '../helpers/tables.js';
import { startTestBucket, type Fault, type TestBucket } from '../helpers/test-bucket.js';
import { doneKeys } from '../helpers/registry.js';

const ENV = { DATABASE_URL: 'sqlite://data/t.sqlite3', REGISTRY_PATH: 'registry/t.json', CONCURRENCY: '4', COMMIT_MAX_FILES: '2' };


async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('crash safety and shutdown (integration)', function () {
  this.timeout(120_000);
  let fx: Fixture;
  let reference: Dump;
  let bucket: TestBucket;
  const dirs: Array<() => Promise<void>> = [];

  const slow = (ms: number): Record<string, Fault[]> => Object.fromEntries(fx.keys.map((k) => [k, [{ kind: 'delay', ms } as Fault]]));
  const newDir = async (): Promise<string> => {
    const t = await tempDir();
    dirs.push(t.cleanup);
    return t.dir;
  };

  before(async () => {
    // Cross-file duplicates make the final tables depend on the order files are committed in.
    fx = fixture({ files: 30, recordsPerFile: 120, seed: 5, duplicateRate: 0.08, invalidRate: 0.05 });
    bucket = await startTestBucket({ files: fx.files });
    const dir = await newDir();
    const r = await runCli(['run', '--once'], { cwd: dir, env: { ...ENV, BUCKET_URL: bucket.url } });
    expect(r.code, r.stderr).to.equal(0);
    reference = await dumpSqlite(join(dir, 'data', 't.sqlite3'));
    expect(reference.songs!.length).to.be.greaterThan(0);
  });
  after(async () => {
    await bucket.close();
    for (const c of dirs) await c();
  });

  for (const killAfterDone of [0, 4, 12]) {
    it(`converges to the uninterrupted tables after SIGKILL once ${killAfterDone} files are done, then restart`, async () => {
      const dir = await newDir();
      for (const [k, f] of Object.entries(slow(30))) bucket.addFaults(k, f);
      const env = { ...ENV, BUCKET_URL: bucket.url };
      const run = startCli(['run', '--once'], { cwd: dir, env });
      if (killAfterDone === 0) await waitFor(() => run.output().includes('CycleStarted'), 10_000);
      else await waitFor(() => doneKeys(dir).length >= killAfterDone, 20_000);
      run.child.kill('SIGKILL');
      const killed = await run.finished;
      expect(killed.signal).to.equal('SIGKILL');
      const doneAtKill = doneKeys(dir).length;
      expect(doneAtKill).to.be.lessThan(fx.keys.length);

      const restart = await runCli(['run', '--once'], { cwd: dir, env });
      expect(restart.code, restart.stderr).to.equal(0);
      expect(doneKeys(dir)).to.have.members(fx.keys);
      expect(await dumpSqlite(join(dir, 'data', 't.sqlite3'))).to.deep.equal(reference);
    });
  }

  it('SIGTERM finishes the files in flight, saves the registry and exits 0; a restart completes the rest', async () => {
    const dir = await newDir();
    for (const [k, f] of Object.entries(slow(60))) bucket.addFaults(k, f);
    const env = { ...ENV, BUCKET_URL: bucket.url, POLL_INTERVAL_SECONDS: '3600' };
    const daemon = startCli(['run'], { cwd: dir, env });
    await waitFor(() => doneKeys(dir).length >= 2, 20_000);
    daemon.child.kill('SIGTERM');
    const r = await daemon.finished;
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('ShutdownRequested');
    const done = doneKeys(dir);
    expect(done.length).to.be.greaterThan(1).and.lessThan(fx.keys.length);
    // Files done are exactly the files whose rows are in the database, and the registry was folded on exit.
    const partial = await dumpSqlite(join(dir, 'data', 't.sqlite3'));
    const withRows = new Set(Object.values(partial).flat().map((row) => row.source_key as string));
    for (const key of withRows) expect(done).to.include(key);
    expect(readFileSync(join(dir, 'registry', 't.json.journal'), 'utf8')).to.equal('');

    const resumed = await runCli(['run', '--once'], { cwd: dir, env });
    expect(resumed.code).to.equal(0);
    expect(await dumpSqlite(join(dir, 'data', 't.sqlite3'))).to.deep.equal(reference);
  });

  it('a second signal stops at once, abandoning hung fetches without marking them', async () => {
    const dir = await newDir();
    const hung = fx.keys.slice(0, 4);
    for (const k of hung) bucket.addFaults(k, [{ kind: 'hang' }]);
    const daemon = startCli(['run'], { cwd: dir, env: { ...ENV, BUCKET_URL: bucket.url, POLL_INTERVAL_SECONDS: '3600' } });
    await waitFor(() => daemon.output().includes('CycleStarted'), 10_000);
    await sleep(200);
    daemon.child.kill('SIGTERM');
    await sleep(200);
    expect(daemon.child.exitCode).to.equal(null); // still draining: the hung fetches are in flight
    const signalled = Date.now();
    daemon.child.kill('SIGTERM');
    const r = await daemon.finished;
    expect(Date.now() - signalled).to.be.lessThan(10_000);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.contain('ShutdownForced');
    expect(doneKeys(dir)).to.not.include.members(hung.slice(0, 1));
  });

  it('a drain longer than SHUTDOWN_TIMEOUT_SECONDS is cut short: files in flight are abandoned, exit 0', async () => {
    const dir = await newDir();
    for (const k of fx.keys.slice(0, 4)) bucket.addFaults(k, [{ kind: 'hang' }]);
    const daemon = startCli(['run'], { cwd: dir, env: { ...ENV, BUCKET_URL: bucket.url, POLL_INTERVAL_SECONDS: '3600', SHUTDOWN_TIMEOUT_SECONDS: '0.5' } });
    await waitFor(() => daemon.output().includes('CycleStarted'), 10_000);
    await sleep(200);
    const signalled = Date.now();
    daemon.child.kill('SIGTERM');
    const r = await daemon.finished;
    expect(Date.now() - signalled).to.be.lessThan(10_000);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/"event":"ShutdownForced","reason":"timeout"/);
    expect(doneKeys(dir)).to.not.include(fx.keys[0]);
  });
});
