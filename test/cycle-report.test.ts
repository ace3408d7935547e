import { Writable } from 'node:stream';
import { expect } from 'chai';
import { formatLastCycle } from '../src/commands/status.js';
import { createLogger } from '../src/log.js';
import { Telemetry, type CycleSummary } from '../src/telemetry.js';

const summary = (over: Partial<CycleSummary> = {}): CycleSummary => ({
  listed: 6, planned: 6, filesDone: 0, filesFailed: 0, filesUnchanged: 0, filesUpToDate: 0, filesBackoff: 0, filesCancelled: 0, filesElsewhere: 0,
  failedListed: 0, recordsLoaded: 0, recordsRejected: 0, recordsSkipped: 0, bytes: 0, seconds: 0.1, ...over,
});

describe('how a cycle is reported', () => {
  it('status calls a cycle in which files failed what it is, not "ok"', () => {
    const at = '2026-01-01T00:00:00.000Z';
    expect(formatLastCycle({ cycle: 3, finishedAt: at, ok: true, error: null, summary: summary({ filesFailed: 6 }) }))
      .to.match(/^#3 finished with 6 failed file\(s\), finished at /);
    expect(formatLastCycle({ cycle: 4, finishedAt: at, ok: true, error: null, summary: summary({ filesDone: 6 }) })).to.match(/^#4 ok, /);
    expect(formatLastCycle({ cycle: 5, finishedAt: at, ok: false, error: 'BI_DATABASE: x', summary: null })).to.match(/^#5 failed, .*error: BI_DATABASE: x$/);
  });

  it('the summary of a cycle cut short by shutdown counts the files it abandoned', () => {
    let out = '';
    const sink = new Writable({ write(chunk: Buffer, _enc, done) { out += chunk.toString(); done(); } });
    const telemetry = new Telemetry(createLogger({ level: 'info', format: 'json', destination: sink }));
    telemetry.cycleFinished(2, summary({ filesDone: 2, filesCancelled: 4 }));
    telemetry.cycleFinished(3, summary({ filesDone: 6 }));
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
    expect(lines[0]!.msg).to.contain('files 2 done, 0 failed, 0 unchanged, 4 abandoned (left for the next run)');
    expect(lines[1]!.msg).to.not.contain('abandoned');
  });
});
