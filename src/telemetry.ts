import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { redactText } from './redact.js';

export type LogFormat = 'json' | 'pretty';

export interface CycleSummary {
  listed: number;
  planned: number;
  filesDone: number;
  filesFailed: number;
  filesUnchanged: number;
  filesUpToDate: number;
  filesBackoff: number;
  filesCancelled: number;
  recordsLoaded: number;
  recordsRejected: number;
  recordsSkipped: number;
  bytes: number;
  seconds: number;
}

/**
 * The one place that says what the daemon reports. Every event has a stable name (`<Noun><Verb>[Error]`)
 * and fields; logs are written from here, and metrics read the same calls.
 */
export class Telemetry {
  constructor(readonly log: Logger) {}

  cycleStarted(fields: { cycle: number; listed: number; planned: number; upToDate: number; backoff: number }): void {
    this.log.info({ event: 'CycleStarted', ...fields }, `cycle ${fields.cycle}: ${fields.listed} keys listed, ${fields.planned} to process, ${fields.upToDate} up to date, ${fields.backoff} waiting to retry`);
  }

  cycleFinished(cycle: number, s: CycleSummary): void {
    this.log.info(
      { event: 'CycleFinished', cycle, ...s },
      `cycle ${cycle} finished: files ${s.filesDone} done, ${s.filesFailed} failed, ${s.filesUnchanged + s.filesUpToDate} unchanged; ` +
        `records ${s.recordsLoaded} loaded, ${s.recordsRejected} rejected, ${s.recordsSkipped} skipped; ${s.seconds.toFixed(2)} s`,
    );
  }

  cycleFailed(cycle: number, error: string): void {
    this.log.error({ event: 'CycleError', cycle, error: redactText(error) }, `cycle ${cycle} failed: ${redactText(error)}`);
  }

  fileDone(f: { key: string; loaded: number; rejected: number; skipped: number; bytes: number; ms: number }): void {
    this.log.debug({ event: 'FileDone', ...f }, `${f.key}: ${f.loaded} loaded, ${f.rejected} rejected, ${f.skipped} skipped`);
  }

  fileUnchanged(key: string): void {
    this.log.debug({ event: 'FileUnchanged', key }, `${key}: unchanged since it was loaded`);
  }

  fileFailed(f: { key: string; error: string; attempts: number; nextAttemptAt: string | null }): void {
    const error = redactText(f.error);
    this.log.warn({ event: 'FileError', ...f, error }, `${f.key}: failed (${error})${f.nextAttemptAt ? `; next try after ${f.nextAttemptAt}` : ''}`);
  }

  fileRetry(f: { key: string; attempt: number; delayMs: number; reason: string }): void {
    const reason = redactText(f.reason);
    this.log.info({ event: 'FileRetry', ...f, reason }, `${f.key}: attempt ${f.attempt} failed (${reason}); retrying in ${f.delayMs} ms`);
  }

  databaseRetry(f: { attempt: number; delayMs: number; reason: string }): void {
    const reason = redactText(f.reason);
    this.log.warn({ event: 'DatabaseRetry', ...f, reason }, `database write failed (${reason}); retrying in ${f.delayMs} ms`);
  }
}

/** JSON lines when stdout is not a terminal (or when asked), readable lines on a terminal. */
export function createLogger(opts: { level: string; format?: LogFormat | undefined; destination?: NodeJS.WritableStream }): Logger {
  const dest = opts.destination ?? process.stdout;
  const format = opts.format ?? ((dest as { isTTY?: boolean }).isTTY ? 'pretty' : 'json');
  const base = { level: opts.level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'pretty') {
    return pino(base, pretty({ destination: dest as never, sync: true, translateTime: 'SYS:HH:MM:ss', hideObject: true }));
  }
  return pino(base, dest as pino.DestinationStream);
}
