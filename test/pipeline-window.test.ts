import { expect } from 'chai';
import { WINDOW_MAX_ROWS, windowHasRoom, type WindowState } from '../src/pipeline.js';

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

  it('keeps the window of a fixed number of files when COMMIT_MAX_FILES is below 2 × CONCURRENCY', () => {
    expect(fill(1, { maxInFlight: 32, maxFiles: 4 })).to.equal(32);
  });
});
