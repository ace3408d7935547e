import type { CommandModule } from 'yargs';
import { openApp } from '../app.js';
import { runDaemon } from '../daemon.js';
import { startHttpServer, type RunningServer } from '../http/server.js';
import { createLogger, type LogFormat } from '../log.js';
import { terminalProgress } from '../progress.js';
import { Telemetry } from '../telemetry.js';
import { configFrom, withCommonOptions, type CommonArgs } from './common.js';

export interface RunArgs extends CommonArgs {
  once?: boolean;
  force?: boolean;
  concurrency?: number;
  'http-port'?: number;
  'log-format'?: LogFormat;
}

/**
 * `run`: opens everything, serves HTTP if asked, runs cycles until done or stopped, closes in order.
 * Exit codes: 0 all done, 1 some files failed (with --once). Usage/config errors exit 2 in main.
 *
 * Shutdown: the first SIGTERM/SIGINT stops starting files and lets those in flight finish, for at most
 * SHUTDOWN_TIMEOUT_SECONDS; a second signal (or the timeout) abandons them. Either way only committed files
 * are marked done, so the registry stays consistent.
 */
export async function runHandler(args: RunArgs): Promise<number> {
  const config = configFrom(args, { CONCURRENCY: args.concurrency, HTTP_PORT: args['http-port'] });
  const { settings } = config;
  const level = args.verbose ? 'debug' : settings.LOG_LEVEL;
  const telemetry = new Telemetry(createLogger({ level, format: args['log-format'] ?? settings.LOG_FORMAT }));
  const app = await openApp(config, telemetry);
  const stop = new AbortController();
  const abort = new AbortController();
  let forceTimer: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      telemetry.log.info({ event: 'ShutdownRequested', signal }, `${signal}: finishing files in flight (at most ${settings.SHUTDOWN_TIMEOUT_SECONDS} s), then exiting; send again to stop at once`);
      stop.abort();
      forceTimer = setTimeout(() => {
        telemetry.log.warn({ event: 'ShutdownForced', reason: 'timeout' }, `files in flight did not finish within SHUTDOWN_TIMEOUT_SECONDS; abandoning them`);
        abort.abort();
      }, settings.SHUTDOWN_TIMEOUT_SECONDS * 1000);
      forceTimer.unref();
    } else if (!abort.signal.aborted) {
      telemetry.log.warn({ event: 'ShutdownForced', signal }, `${signal} again: abandoning files in flight`);
      abort.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let server: RunningServer | undefined;
  const unsubscribe = args.once ? subscribeProgress(telemetry) : undefined;
  try {
    if (settings.HTTP_PORT !== null) {
      server = await startHttpServer({
        telemetry, registry: app.registry, db: app.db, checkDatabase: app.checkDatabase, alive: () => !stop.signal.aborted,
      }, settings.HTTP_HOST, settings.HTTP_PORT);
      telemetry.log.info({ event: 'HttpListening', host: settings.HTTP_HOST, port: server.port }, `serving /healthz, /readyz, /metrics and /api on http://${settings.HTTP_HOST}:${server.port}`);
    }
    telemetry.log.info({ event: 'DaemonStarted', profile: config.profile, bucket: app.source.description, once: Boolean(args.once) },
      `bucket-ingest: profile ${config.profile}, bucket ${app.source.description}${args.once ? ', one cycle' : `, every ${settings.POLL_INTERVAL_SECONDS} s`}`);
    const result = await runDaemon(app, { once: Boolean(args.once), force: Boolean(args.force), stop: stop.signal, abort: abort.signal });
    if (args.once && result.failedKeys.length > 0) {
      telemetry.log.warn({ event: 'FilesFailed', count: result.failedKeys.length }, `${result.failedKeys.length} file(s) are failed; see \`bucket-ingest status\``);
      return 1;
    }
    return 0;
  } finally {
    clearTimeout(forceTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    unsubscribe?.();
    await server?.close();
    await app.close();
    telemetry.log.info({ event: 'DaemonStopped' }, 'stopped');
    telemetry.log.flush();
  }
}

function subscribeProgress(telemetry: Telemetry): (() => void) | undefined {
  const progress = terminalProgress();
  return progress ? telemetry.subscribe(progress) : undefined;
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: ['run', '$0'],
  describe: 'ingest the bucket: one cycle with --once, else every POLL_INTERVAL_SECONDS until SIGTERM',
  builder: (y) =>
    withCommonOptions(y)
      .option('once', { type: 'boolean', describe: 'run one cycle and exit (exit 1 if files failed)' })
      .option('force', { type: 'boolean', describe: 'process every listed file again, whatever the registry says' })
      .option('concurrency', { type: 'number', describe: 'files fetched at once (CONCURRENCY)' })
      .option('http-port', { type: 'number', describe: 'serve /healthz, /readyz, /metrics and /api on this port (HTTP_PORT; 0 = any free port)' })
      .option('log-format', { choices: ['auto', 'json', 'pretty'] as const, describe: 'log format (LOG_FORMAT; auto = pretty on a terminal, else JSON lines)' }) as never,
  handler: async (args) => {
    process.exitCode = await runHandler(args);
  },
};
