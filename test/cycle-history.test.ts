import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { IngestError } from '../src/errors.js';
import type { Binding } from '../src/registry/binding.js';
import { appendCycleHistory, cycleHistoryPath, HISTORY_CYCLES, readCycleHistory } from '../src/registry/cycle-history.js';
import type { LastCycle } from '../src/registry/last-cycle.js';
import type { CycleSummary } from '../src/telemetry.js';
import { tempDir } from './helpers/cli.js';

const BOUND: Binding = { database: '5b0c8f3e-0000-4000-8000-000000000001', bucket: 'file:///buckets/a/#files_list.data' };
const OTHER: Binding = { database: '5b0c8f3e-0000-4000-8000-000000000002', bucket: 'file:///buckets/a/#files_list.data' };

function summary(files: number): CycleSummary {
  return {
    listed: files, planned: files, filesDone: files, filesFailed: 0, filesUnchanged: 0, filesUpToDate: 0, filesBackoff: 0, filesCancelled: 0,
    filesElsewhere: 0, failedListed: 0, recordsLoaded: files * 10, recordsRejected: 1, recordsSkipped: 2, bytes: 100, seconds: 0.5,
  };
}

function cycle(n: number, binding: Binding = BOUND): LastCycle & { binding: Binding } {
  return { cycle: n, finishedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(), ok: true, error: null, summary: summary(n), binding };
}

describe('cycle history (<registry>.cycles.json, the dashboard\'s History)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let path: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    path = join(dir, 'reg', 'p.json');
  });
  afterEach(() => cleanup());

  it('is empty before any cycle, then keeps each cycle in order with its summary', async () => {
    expect(await readCycleHistory(path, BOUND)).to.deep.equal([]);
    for (const n of [1, 2, 3]) await appendCycleHistory(path, cycle(n));
    const read = await readCycleHistory(path, BOUND);
    expect(read.map((c) => c.cycle)).to.deep.equal([1, 2, 3]);
    expect(read[2]!.summary).to.deep.equal(summary(3));
  });

  it(`keeps the last ${HISTORY_CYCLES} cycles`, async () => {
    for (let n = 1; n <= HISTORY_CYCLES + 5; n++) await appendCycleHistory(path, cycle(n));
    const read = await readCycleHistory(path, BOUND);
    expect(read).to.have.length(HISTORY_CYCLES);
    expect(read[0]!.cycle).to.equal(6);
    expect(read[read.length - 1]!.cycle).to.equal(HISTORY_CYCLES + 5);
  });

  it('counts only the cycles of its database and bucket, and a new binding starts it anew', async () => {
    await appendCycleHistory(path, cycle(1));
    await appendCycleHistory(path, cycle(2));
    expect(await readCycleHistory(path, OTHER)).to.deep.equal([]);
    await appendCycleHistory(path, cycle(1, OTHER));
    expect((await readCycleHistory(path, OTHER)).map((c) => c.cycle)).to.deep.equal([1]);
    expect(await readCycleHistory(path, BOUND)).to.deep.equal([]);
  });

  it('drops recorded cycles numbered from a restart of the numbering (the last-cycle file was removed)', async () => {
    for (const n of [5, 6, 7]) await appendCycleHistory(path, cycle(n));
    await appendCycleHistory(path, cycle(1));
    expect((await readCycleHistory(path, BOUND)).map((c) => c.cycle)).to.deep.equal([1]);
  });

  it('masks credentials in a failed cycle\'s error before it reaches the disk', async () => {
    await appendCycleHistory(path, { ...cycle(1), ok: false, summary: null, error: 'cannot list http://reader:hunter2@bucket.example/?token=s3cr3t' });
    const text = readFileSync(cycleHistoryPath(path), 'utf8');
    expect(text).to.not.contain('hunter2').and.not.contain('s3cr3t');
    expect((await readCycleHistory(path, BOUND))[0]!.summary).to.equal(null);
  });

  it('reads a corrupt file as BI_REGISTRY_CORRUPT naming it, and the next cycle starts the history anew', async () => {
    await appendCycleHistory(path, cycle(1));
    writeFileSync(cycleHistoryPath(path), '{"version":1,"cycles":[{"cycle":"one"}]}\n');
    const err = await readCycleHistory(path, BOUND).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(IngestError);
    expect((err as IngestError).code).to.equal('BI_REGISTRY_CORRUPT');
    expect((err as IngestError).message).to.contain(cycleHistoryPath(path));
    await appendCycleHistory(path, cycle(2));
    expect((await readCycleHistory(path, BOUND)).map((c) => c.cycle)).to.deep.equal([2]);
  });
});
