import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { fixture } from '../helpers/bucket-fixture.js';
import { events, runCli, tempDir } from '../helpers/cli.js';
import { doneKeys } from '../helpers/registry.js';
import { dumpSqlite } from '../helpers/tables.js';

const ENV = { DATABASE_URL: 'sqlite://data/t.sqlite3', REGISTRY_PATH: 'registry/t.json', CONCURRENCY: '4', LOG_FORMAT: 'json', LOG_LEVEL: 'debug' };

/**
 * PLAN_AHEAD_FILES: a cycle that finds more files to load than that starts loading them while it goes on planning the
 * listing, and plans no further while that many wait. Here a directory's index of 2,300 keys, planned 1,000 at a time.
 */
describe('planning ahead of the loader (PLAN_AHEAD_FILES)', function () {
  this.timeout(120_000);
  const fx = fixture({ files: 2300, recordsPerFile: 2, seed: 41 });
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });
  const run = async (settings: Record<string, string>): Promise<{ dir: string; log: Array<Record<string, unknown>> }> => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    await mkdir(join(t.dir, 'bucket'));
    for (const [key, body] of Object.entries(fx.files)) await writeFile(join(t.dir, 'bucket', key), body);
    await writeFile(join(t.dir, 'bucket', 'files_list.data'), fx.keys.join('\n'));
    const r = await runCli(['run', '--once'], { cwd: t.dir, env: { ...ENV, BUCKET_URL: join(t.dir, 'bucket'), ...settings } });
    expect(r.code, r.stderr).to.equal(0);
    return { dir: t.dir, log: events(r.stdout) };
  };

  it('loads the first files while the rest is planned, with the totals, tables and registry of a cycle that planned everything first', async () => {
    const whole = await run({});
    const ahead = await run({ PLAN_AHEAD_FILES: '5' });
    const at = (log: Array<Record<string, unknown>>, name: string): number => log.findIndex((e) => e.event === name);

    // Planned whole first: one CycleStarted with every count, no ListingFinished.
    expect(whole.log[at(whole.log, 'CycleStarted')]).to.include({ listed: 2300, planned: 2300 }).and.not.have.property('listing');
    expect(at(whole.log, 'ListingFinished')).to.equal(-1);

    // Planned ahead: loading began with the first 1,000 keys planned, and files were done before the last were planned.
    const { log } = ahead;
    expect(log[at(log, 'CycleStarted')]).to.include({ listing: 'continuing', listed: 1000, planned: 1000 });
    expect(at(log, 'FileDone')).to.be.within(0, at(log, 'ListingFinished'));
    expect(log[at(log, 'ListingFinished')]).to.include({ listed: 2300, planned: 2300, upToDate: 0, backoff: 0 });
    const finished = (l: Array<Record<string, unknown>>) => {
      const { time: _t, seconds: _s, msg: _m, ...rest } = l.find((e) => e.event === 'CycleFinished') as Record<string, unknown>;
      return rest;
    };
    expect(finished(log)).to.deep.equal(finished(whole.log));
    expect(finished(log)).to.include({ listed: 2300, planned: 2300, filesDone: 2300 });
    expect(log.filter((e) => e.event === 'FileDone')).to.have.length(2300);
    expect(doneKeys(ahead.dir)).to.deep.equal(doneKeys(whole.dir));
    expect(await dumpSqlite(join(ahead.dir, 'data', 't.sqlite3'))).to.deep.equal(await dumpSqlite(join(whole.dir, 'data', 't.sqlite3')));
  });
});
