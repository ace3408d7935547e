import cliProgress from 'cli-progress';
import type { ProgressListener } from './telemetry.js';

/**
 * A progress bar for `run --once` on a terminal: files and records, rate and ETA (cli-progress). Drawn on
 * stderr so stdout stays clean for logs; never created when stderr is not a terminal.
 */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ProgressListener | null {
  if (!stream.isTTY) return null;
  let bar: cliProgress.SingleBar | null = null;
  let records = 0;
  let started = 0;
  return {
    cycleStarted(planned) {
      if (planned === 0) return;
      records = 0;
      started = Date.now();
      bar = new cliProgress.SingleBar({
        stream,
        format: 'files {bar} {value}/{total} | {records} records | {rate} rec/s | ETA {eta_formatted}',
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
      }, cliProgress.Presets.shades_classic);
      bar.start(planned, 0, { records: 0, rate: 0 });
    },
    fileSettled(_outcome, n) {
      records += n;
      const seconds = (Date.now() - started) / 1000;
      bar?.increment(1, { records, rate: seconds > 0 ? Math.round(records / seconds) : 0 });
    },
    cycleEnded() {
      bar?.stop();
      bar = null;
    },
  };
}
