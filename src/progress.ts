import cliProgress from 'cli-progress';
import type { ProgressListener } from './telemetry.js';

export interface TerminalProgress extends ProgressListener {
  /**
   * Clears the bar off the screen before a log line is written to the same terminal; the next settled file
   * draws it again, below that line. Without this a line logged while the bar is drawn shares the bar's row,
   * and the bar's next redraw (or its final clear, which returns to where it started) erases it: the cycle
   * summary vanished that way, and pieces of the bar were left behind.
   */
  beforeLog(): void;
  /** Clears the bar for good (the command is ending, whatever happened to the cycle). */
  stop(): void;
}

/**
 * A progress bar for `run --once` on a terminal: files and records, rate and ETA (cli-progress). Drawn on
 * stderr so stdout stays clean for logs; never created when stderr is not a terminal.
 */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): TerminalProgress | null {
  if (!stream.isTTY) return null;
  const bar = new cliProgress.SingleBar({
    stream,
    format: 'files {bar} {value}/{total} | {records} records | {rate} rec/s | ETA {eta}',
    hideCursor: true,
    clearOnComplete: true,
  }, cliProgress.Presets.shades_classic);
  let total = 0;
  let settled = 0;
  let records = 0;
  let started = 0;
  let inCycle = false;
  let drawn = false;
  const payload = () => {
    const seconds = (Date.now() - started) / 1000;
    // Computed here rather than by cli-progress, whose estimate starts again each time the bar is redrawn after a log line.
    const eta = settled > 0 ? (seconds / settled) * (total - settled) : null;
    return { records, rate: seconds > 0 ? Math.round(records / seconds) : 0, eta: eta === null ? '…' : formatSeconds(eta) };
  };
  const hide = (): void => {
    if (!drawn) return;
    drawn = false;
    bar.stop(); // clearOnComplete: its line is emptied and the cursor left at its start
  };
  return {
    cycleStarted(planned) {
      hide();
      inCycle = planned > 0;
      if (!inCycle) return;
      [total, settled, records, started] = [planned, 0, 0, Date.now()];
      bar.start(total, 0, payload());
      drawn = true;
    },
    cycleGrew(planned) {
      if (!inCycle) return;
      total += planned;
      if (drawn) bar.setTotal(total);
    },
    fileSettled(_outcome, n) {
      if (!inCycle) return;
      settled++;
      records += n;
      if (drawn) {
        bar.update(settled, payload());
      } else {
        bar.start(total, settled, payload());
        drawn = true;
      }
    },
    cycleEnded() {
      inCycle = false;
      hide();
    },
    beforeLog: hide,
    stop() {
      inCycle = false;
      hide();
    },
  };
}

function formatSeconds(s: number): string {
  if (s < 60) return `${Math.ceil(s)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
