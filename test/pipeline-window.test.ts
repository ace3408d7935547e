import { expect } from 'chai';
import { Readable } from 'node:stream';
import type { PlanItem } from '../src/plan.js';
import { WINDOW_MAX_ROWS, windowHasRoom, windowRowsOf, type Prepared, type WindowState } from '../src/pipeline.js';

/** How many files the window takes in when every file holds `rows` rows and none leaves it. */
function fill(rows: number, limits: { maxInFlight: number; maxFiles: number }, decodedBefore = { files: 0, rows: 0 }): number {
  const w: WindowState = { inFlight: 0, waiting: 0, waitingRows: 0, decodedFiles: decodedBefore.files, decodedRows: decodedBefore.rows };
  for (;;) {
    // Files in flight arrive (are decoded and wait for the loader) whenever no more may start.
    while (windowHasRoom(w, limits)) w.inFlight++;
    if (w.inFlight === 0) return w.waiting;
    w.inFlight--;
    w.waiting++;
    w.waitingRows += rows;
    w.decodedFiles++;
    w.decodedRows += rows;
  }
}

describe('the loader window', () => {
  const limits = { maxInFlight: 32, maxFiles: 1000 };

  it('takes in up to COMMIT_MAX_FILES small files, so they commit hundreds at a time', () => {
    expect(fill(1, limits)).to.equal(1000);
    expect(fill(50, limits)).to.be.within(WINDOW_MAX_ROWS / 50 - 32, WINDOW_MAX_ROWS / 50 + 32);
  });

  it('keeps large files to 2 × CONCURRENCY, as a window of a fixed number of files did', () => {
    expect(fill(1000, limits)).to.equal(32);
    expect(fill(100_000, limits)).to.equal(32);
  });

  it('never has more than 2 × CONCURRENCY files in flight', () => {
    const w: WindowState = { inFlight: 0, waiting: 0, waitingRows: 0, decodedFiles: 100, decodedRows: 100 };
    while (windowHasRoom(w, limits)) w.inFlight++;
    expect(w.inFlight).to.equal(32);
  });

  it('stops at the rows of the files waiting, even when earlier files were small', () => {
    // 100,000 one-row files decoded earlier keep the mean low; 20 large files waiting still close the window.
    const w: WindowState = { inFlight: 0, waiting: 40, waitingRows: 20 * 5000, decodedFiles: 100_020, decodedRows: 100_000 + 20 * 5000 };
    expect(windowHasRoom(w, limits)).to.equal(false);
  });

  it('counts a file to be streamed as a full window, so files that hold a connection open do not pile up', () => {
    const item: PlanItem = { key: 'big.data', index: 0, reason: 'new' };
    const stream: Prepared = { kind: 'stream', item, etag: null, size: null, stream: Readable.from([]), startedAt: 0 };
    expect(windowRowsOf(stream)).to.equal(WINDOW_MAX_ROWS);
    // One-row files so far, 2 × CONCURRENCY files in the window, one of them a stream waiting: no more.
    const w: WindowState = { inFlight: 31, waiting: 1, waitingRows: windowRowsOf(stream), decodedFiles: 1000, decodedRows: 999 + windowRowsOf(stream) };
    expect(windowHasRoom(w, limits)).to.equal(false);
    expect(windowHasRoom({ ...w, inFlight: 30 }, limits)).to.equal(true); // below 2 × CONCURRENCY files, always
  });

  it('keeps the window of a fixed number of files when COMMIT_MAX_FILES is below 2 × CONCURRENCY', () => {
    expect(fill(1, { maxInFlight: 32, maxFiles: 4 })).to.equal(32);
  });
});
