import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { events, runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/bucket-fixture.js';
import { dumpSqlite } from '../helpers/tables.js';
import { sharedBucket, startTestBucket } from '../helpers/test-bucket.js';

/**
 * Files over STREAM_ABOVE_MB are read in batches as they arrive. The streamed path must end with exactly the
 * rows, rejections and registry counts of the whole-file path.
 */
describe('streamed large files (integration)', function () {
  this.timeout(120_000);
  // Two big files (~2 MB, 12,000 records each: more than two 5,000-record batches) and small ones.
  const big = fixture({ files: 2, recordsPerFile: 12_000, seed: 8, duplicateRate: 0.05, invalidRate: 0.05 });
  const small = fixture({ files: 3, recordsPerFile: 50, seed: 9 });
  const files = { ...big.files, ...small.files };
  const keys = [...big.keys, ...small.keys];
  const shared = sharedBucket({ files, index: keys.join('\n') });
  const run = async (extra: Record<string, string>, url = shared.bucket().url) => {
    const dir = await shared.dir();
    const r = await runCli(['run', '--once'], { cwd: dir, env: { BUCKET_URL: url, DATABASE_URL: 'sqlite://db.sqlite3', RETRY_FAILED_SECONDS: '0', ...extra } });
    return { ...r, dir: dir, finished: events(r.stdout).find((e) => e.event === 'CycleFinished') };
  };

  it('loads the same rows, rejections and counts as the whole-file path, over HTTP and from a directory', async () => {
    const whole = await run({ STREAM_ABOVE_MB: '64' });
    const streamed = await run({ STREAM_ABOVE_MB: '1' });
    expect(whole.code, whole.stderr).to.equal(0);
    expect(streamed.code, streamed.stderr).to.equal(0);
    const total = { recordsLoaded: big.valid + small.valid, recordsRejected: big.invalid + small.invalid, recordsSkipped: big.skipped + small.skipped };
    expect(streamed.finished).to.include({ filesDone: 5, ...total });
    expect(whole.finished).to.include(total);
    const reference = await dumpSqlite(join(whole.dir, 'db.sqlite3'));
    expect(await dumpSqlite(join(streamed.dir, 'db.sqlite3'))).to.deep.equal(reference);

    const dir = join(streamed.dir, 'bucket');
    mkdirSync(dir);
    for (const [k, body] of Object.entries(files)) writeFileSync(join(dir, k), body);
    writeFileSync(join(dir, 'files_list.data'), keys.join('\n'));
    const local = await run({ STREAM_ABOVE_MB: '1' }, dir);
    expect(local.finished).to.include({ filesDone: 5, ...total });
    expect(await dumpSqlite(join(local.dir, 'db.sqlite3'))).to.deep.equal(reference);
  });

  it('a streamed body that breaks off leaves nothing of the file, records it failed, and the next cycle loads it', async () => {
    const key = big.keys[0]!;
    shared.bucket().addFaults(key, [{ kind: 'truncate' }]);
    const first = await run({ STREAM_ABOVE_MB: '1' });
    expect(first.code).to.equal(1);
    const partial = await dumpSqlite(join(first.dir, 'db.sqlite3'));
    expect(Object.values(partial).flat().some((row) => row.source_key === key)).to.equal(false);
    const status = JSON.parse((await runCli(['status', '--json'], { cwd: first.dir, env: { BUCKET_URL: shared.bucket().url, DATABASE_URL: 'sqlite://db.sqlite3' } })).stdout) as { failed: Array<{ key: string; error: string }> };
    expect(status.failed.map((f) => f.key)).to.deep.equal([key]);
    const again = await runCli(['run', '--once'], { cwd: first.dir, env: { BUCKET_URL: shared.bucket().url, DATABASE_URL: 'sqlite://db.sqlite3', STREAM_ABOVE_MB: '1', RETRY_FAILED_SECONDS: '0' } });
    expect(again.code, again.stderr).to.equal(0);
    expect(events(again.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 1 });
  });

  it('reads an index larger than STREAM_ABOVE_MB whole', async () => {
    // 1.2 MB of blank lines after the keys: over the threshold, and cleaned away.
    const padded = await startTestBucket({ files: small.files, index: `${small.keys.join('\r\n')}${'\r\n '.repeat(400_000)}` });
    shared.defer(() => padded.close());
    const r = await run({ STREAM_ABOVE_MB: '1' }, padded.url);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.finished).to.include({ listed: 3, filesDone: 3 });
  });
});
