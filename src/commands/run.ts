import { resolve } from 'node:path';
import { openApp } from '../app.js';
import { runDaemon } from '../daemon.js';
import { startHttpServer, type RunningServer } from '../http/server.js';
import { createLogger, type LogFormat } from '../log.js';
import { terminalProgress } from '../progress.js';
import { Telemetry } from '../telemetry.js';
import type { LoadedConfig } from '../config/load.js';
import { parseDatabaseUrl } from '../load/database.js';
import { configFrom, registryPathOf } from './common.js';
import { noteWhatStartCreates } from './created-on-start.js';
import type { CommonArgs } from './options.js';
import { dryRunHandler } from './dry-run.js';
import { IngestError } from '../errors.js';
import { timeWindow } from '../listing.js';

export interface RunArgs extends CommonArgs {
  once?: boolean;
  'dry-run'?: boolean;
  json?: boolean;
  force?: boolean;
  /** A number, or the text typed when it is not one (the settings' codecs refuse it, quoting it). */
  concurrency?: number | string;
  'http-port'?: number | string;
  'log-format'?: LogFormat;
  since?: string;
  until?: string;
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
  const window = timeWindow(args);
  const level = args.verbose ? 'debug' : settings.LOG_LEVEL;
  // The bar and the logs share the terminal when both go to one: the bar steps aside for every line logged.
  const progress = args.once ? terminalProgress() : null;
  const beforeWrite = progress && process.stdout.isTTY ? () => progress.beforeLog() : undefined;
  const telemetry = new Telemetry(createLogger({ level, format: args['log-format'] ?? settings.LOG_FORMAT, beforeWrite }));
  const undoStart = noteWhatStartCreates(startAnchors(config));
  const app = await openApp(config, telemetry).catch(async (err: unknown) => {
    await undoStart();
    throw err;
  });
  // A start that fails (no HTTP port, a first cycle that cannot list the bucket or write) before any file is
  // known leaves nothing behind; once the registry knows a file, what was made is real state and stays.
  let startFailed = false;
  const stop = new AbortController();
  const abort = new AbortController();
  let forceTimer: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      telemetry.shutdownRequested(signal, settings.SHUTDOWN_TIMEOUT_SECONDS);
      stop.abort();
      forceTimer = setTimeout(() => {
        telemetry.shutdownForced({ reason: 'timeout' });
        abort.abort();
      }, settings.SHUTDOWN_TIMEOUT_SECONDS * 1000);
      forceTimer.unref();
    } else if (!abort.signal.aborted) {
      telemetry.shutdownForced({ signal });
      abort.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let server: RunningServer | undefined;
  const unsubscribe = progress ? telemetry.subscribe(progress) : undefined;
  try {
    if (settings.HTTP_PORT !== null) {
      server = await startHttpServer({
        telemetry, registry: app.registry, db: app.db, catalog: config.catalog, checkDatabase: app.checkDatabase, alive: () => !stop.signal.aborted,
        dashboard: {
          config, bucket: app.source.description, target: parseDatabaseUrl(settings.DATABASE_URL), registryPath: registryPathOf(config), binding: app.binding,
          token: settings.DASHBOARD_TOKEN === '' ? null : settings.DASHBOARD_TOKEN,
        },
      }, settings.HTTP_HOST, settings.HTTP_PORT);
      telemetry.httpListening(settings.HTTP_HOST, server.port);
    }
    if ((window.since !== undefined || window.until !== undefined) && !app.source.listObjects) {
      throw new IngestError('BI_USAGE', `--since and --until select objects by the date a listing gives, and ${app.source.description} is read from its index file (an s3:// bucket without FILES_LIST_KEY is listed)`);
    }
    telemetry.daemonStarted({ profile: config.profile, bucket: app.source.description, once: Boolean(args.once), pollSeconds: settings.POLL_INTERVAL_SECONDS });
    const result = await runDaemon(app, { once: Boolean(args.once), force: Boolean(args.force), stop: stop.signal, abort: abort.signal, window });
    if (args.once && result.failedListed > 0) {
      telemetry.filesFailed(result.failedListed);
      return 1;
    }
    return 0;
  } catch (err) {
    // A registry set aside as untrusted (moved to `.untrusted`) is real state too: what the start did to it stays.
    startFailed = (await app.registry.count()) === 0 && app.registry.untrusted === null;
    throw err;
  } finally {
    clearTimeout(forceTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    unsubscribe?.();
    progress?.stop();
    await server?.close();
    await app.close();
    if (startFailed) await undoStart();
    telemetry.daemonStopped();
    telemetry.log.flush();
  }
}

/** The files a start may create: the SQLite database and the registry path (its side files sit beside it). */
function startAnchors(config: LoadedConfig): string[] {
  const target = parseDatabaseUrl(config.settings.DATABASE_URL);
  const anchors = [resolve(config.settings.REGISTRY_PATH)];
  if (target.filename !== undefined && target.filename !== ':memory:') anchors.push(target.filename);
  return anchors;
}

/** What `run` does once its command line is parsed (src/commands/index.ts loads this module only then). */
export async function runMain(args: RunArgs): Promise<void> {
  process.exitCode = args['dry-run'] ? await dryRunHandler(args) : await runHandler(args);
}
