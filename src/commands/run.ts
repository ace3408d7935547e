import type { CommandModule } from 'yargs';
import { openApp } from '../app.js';
import { runDaemon } from '../daemon.js';
import { createLogger, Telemetry, type LogFormat } from '../telemetry.js';
import { configFrom, withCommonOptions, type CommonArgs } from './common.js';

export interface RunArgs extends CommonArgs {
  once?: boolean;
  force?: boolean;
  concurrency?: number;
  'log-format'?: LogFormat;
}

/** Exit codes of `run`: 0 all done, 1 some files failed (with --once). Usage/config errors exit 2 in main. */
export async function runHandler(args: RunArgs): Promise<number> {
  const config = configFrom(args, { CONCURRENCY: args.concurrency });
  const level = args.verbose ? 'debug' : config.settings.LOG_LEVEL;
  const telemetry = new Telemetry(createLogger({ level, format: args['log-format'] }));
  const app = await openApp(config, telemetry);
  const stop = new AbortController();
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      telemetry.log.info({ event: 'ShutdownRequested', signal }, `${signal}: finishing files in flight, then exiting (send again to stop at once)`);
      stop.abort();
    } else {
      telemetry.log.warn({ event: 'ShutdownForced', signal }, `${signal} again: abandoning files in flight`);
      abort.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    telemetry.log.info({ event: 'DaemonStarted', profile: config.profile, bucket: app.source.description, once: Boolean(args.once) },
      `bucket-ingest: profile ${config.profile}, bucket ${app.source.description}${args.once ? ', one cycle' : `, every ${config.settings.POLL_INTERVAL_SECONDS} s`}`);
    const result = await runDaemon(app, { once: Boolean(args.once), force: Boolean(args.force), stop: stop.signal, abort: abort.signal });
    if (args.once && result.failedKeys.length > 0) {
      telemetry.log.warn({ event: 'FilesFailed', count: result.failedKeys.length }, `${result.failedKeys.length} file(s) are failed; see \`bucket-ingest status\``);
      return 1;
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await app.close();
    telemetry.log.flush();
  }
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: ['run', '$0'],
  describe: 'ingest the bucket: one cycle with --once, else every POLL_INTERVAL_SECONDS until SIGTERM',
  builder: (y) =>
    withCommonOptions(y)
      .option('once', { type: 'boolean', describe: 'run one cycle and exit (exit 1 if files failed)' })
      .option('force', { type: 'boolean', describe: 'process every listed file again, whatever the registry says' })
      .option('concurrency', { type: 'number', describe: 'files fetched at once (CONCURRENCY)' })
      .option('log-format', { choices: ['json', 'pretty'] as const, describe: 'log format (default: pretty on a terminal, else JSON lines)' }) as never,
  handler: async (args) => {
    process.exitCode = await runHandler(args);
  },
};
