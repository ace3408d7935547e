import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { events, runCli } from '../helpers/cli.js';
import { fixture } from '../helpers/bucket-fixture.js';
import { dumpSqlite } from '../helpers/tables.js';
import { sharedBucket } from '../helpers/test-bucket.js';

/**
 * Whole files are parsed and validated in decoding threads (DECODE_THREADS) or in the main thread (0): the
 * tables, the rejections and the registry must come out the same, broken files included.
 */
describe('decoding threads (integration)', function () {
  this.timeout(120_000);
  const data = fixture({ files: 12, recordsPerFile: 400, seed: 21, invalidRate: 0.05, duplicateRate: 0.05 });
  const files = { ...data.files, 'not-json.data': '[{"type":"song","data":', 'string.data': '"song"' };
  const keys = [...data.keys.slice(0, 6), 'not-json.data', ...data.keys.slice(6), 'string.data'];
  const shared = sharedBucket({ files, index: keys.join('\n') });

  const run = async (threads: string) => {
    const dir = await shared.dir();
    const r = await runCli(['run', '--once'], {
      cwd: dir,
      env: { BUCKET_URL: shared.bucket().url, DATABASE_URL: 'sqlite://db.sqlite3', REGISTRY_PATH: 'registry.json', DECODE_THREADS: threads, CONCURRENCY: '6', COMMIT_MAX_FILES: '4' },
    });
    const registry = JSON.parse(readFileSync(join(dir, 'registry.json'), 'utf8')) as { entries: Record<string, { status: string; error: string | null; loaded: number; rejected: number; skipped: number }> };
    const entries = Object.fromEntries(Object.entries(registry.entries).map(([k, e]) => [k, { status: e.status, error: e.error, loaded: e.loaded, rejected: e.rejected, skipped: e.skipped }]));
    return { ...r, tables: await dumpSqlite(join(dir, 'db.sqlite3')), entries, finished: events(r.stdout).find((e) => e.event === 'CycleFinished') };
  };

  it('load the same rows, rejections and registry entries as the main thread, and fail the same broken files', async () => {
    const inThread = await run('0');
    const threaded = await run('2');
    expect(inThread.code, inThread.stderr).to.equal(1); // the two broken files
    expect(threaded.code, threaded.stderr).to.equal(1);
    expect(threaded.finished).to.include({ filesDone: 12, filesFailed: 2, recordsLoaded: data.valid, recordsRejected: data.invalid, recordsSkipped: data.skipped });
    expect(threaded.tables).to.deep.equal(inThread.tables);
    expect(threaded.entries).to.deep.equal(inThread.entries);
    expect(threaded.entries['not-json.data']).to.include({ status: 'failed' });
    expect(threaded.entries['not-json.data']?.error).to.match(/^BI_DECODE: not-json\.data: not JSON/);
    expect(threaded.entries['string.data']?.error).to.equal('BI_DECODE: string.data: not a JSON array (got string)');
  });
});
