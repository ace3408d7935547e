import { cpSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { events, runCli, tempDir } from '../helpers/cli.js';

const SAMPLE = resolve('examples/sample-bucket');

describe('listing filters and their refusals (integration)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  const oneLine = async (args: string[], env: Record<string, string>): Promise<string> => {
    const r = await runCli(args, { cwd: dir, env });
    expect(r.code, r.stdout + r.stderr).to.equal(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).to.have.length(1);
    return lines[0] as string;
  };

  it('INCLUDE and EXCLUDE choose the keys of an index too: the others are not listed, fetched or counted', async () => {
    cpSync(SAMPLE, join(dir, 'b'), { recursive: true });
    const keys = readFileSync(join(dir, 'b', 'files_list.data'), 'utf8').split('\n').map((k) => k.trim()).filter((k) => k !== '');
    const [first, second] = keys as [string, string];
    const r = await runCli(['run', '--once'], { cwd: dir, env: { BUCKET_URL: 'b', INCLUDE: `${first.slice(0, 4)}*, ${second}`, EXCLUDE: second } });
    expect(r.code, r.stderr).to.equal(0);
    expect(events(r.stdout).find((e) => e.event === 'CycleFinished')).to.include({ listed: 1, filesDone: 1 });
  });

  it('refuses --since/--until on a bucket read from its index, a date that is none, and LISTING=ordered without a listing', async () => {
    cpSync(SAMPLE, join(dir, 'b'), { recursive: true });
    expect(await oneLine(['run', '--once', '--since', '2026-01-01'], { BUCKET_URL: 'b' })).to.match(/^bucket-ingest: BI_USAGE: --since and --until select objects by the date a listing gives/);
    expect(await oneLine(['run', '--once', '--until', 'yesterday'], { BUCKET_URL: 'b' })).to.contain('BI_USAGE: --until "yesterday": not a date');
    expect(await oneLine(['run', '--once', '--since', '2026-02-01', '--until', '2026-01-01'], { BUCKET_URL: 'b' })).to.contain('is not before --until');
    expect(await oneLine(['run', '--once'], { BUCKET_URL: 'b', LISTING: 'ordered' })).to.contain('BI_CONFIG: LISTING=ordered lists after the last key seen');
  });
});
