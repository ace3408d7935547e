import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, resolve } from 'node:path';
import { RUN_ID } from './run-id.js';

export const CLI = resolve('dist/bundle/cli.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Settings names that must not leak from the developer's environment into a test's daemon. */
const SETTING_ENV = [
  'PROFILE', 'BUCKET_URL', 'FILES_LIST_KEY', 'SCHEMAS', 'PII_HASH_KEY', 'DATABASE_URL', 'REGISTRY_PATH', 'CONCURRENCY', 'MAX_ATTEMPTS',
  'REQUEST_TIMEOUT_SECONDS', 'POLL_INTERVAL_SECONDS', 'MAX_FILE_MB', 'STREAM_ABOVE_MB', 'RECHECK_DONE_SECONDS', 'RETRY_FAILED_SECONDS',
  'COMMIT_MAX_FILES', 'DECODE_THREADS', 'LOG_LEVEL', 'LOG_FORMAT', 'HTTP_PORT', 'HTTP_HOST', 'DASHBOARD_TOKEN', 'SHUTDOWN_TIMEOUT_SECONDS', 'REGISTRY', 'LEASE_SECONDS', 'WORKER_NAME', 'DATABASE_LOCK_TIMEOUT_SECONDS',
  'S3_ENDPOINT', 'S3_FORCE_PATH_STYLE', 'S3_REGION', 'INCLUDE', 'EXCLUDE', 'MIN_AGE_SECONDS', 'LISTING', 'LOOKBACK_KEYS', 'RECONCILE_SECONDS', 'PLAN_AHEAD_FILES',
  // The developer's own AWS credentials and profile never reach a test's daemon.
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_REGION', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE',
  'AFTER_LOAD', 'FORMAT', 'FORMAT_OVERRIDES', 'ROUTES', 'CSV_DELIMITER', 'ARCHIVE_CACHE_MB',
  'NOTIFY_URL', 'NOTIFY_QUEUE', 'NOTIFY_EXCHANGE', 'NOTIFY_ROUTING_KEY',
];

export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of SETTING_ENV) delete env[key];
  return { ...env, ...extra };
}

/** Starts the built CLI; the caller waits with `finished`. */
export function startCli(args: string[], opts: { cwd: string; env?: Record<string, string> }): { child: ChildProcess; finished: Promise<CliResult>; output: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: cleanEnv(opts.env ?? {}), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const finished = new Promise<CliResult>((resolvePromise) => {
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
  return { child, finished, output: () => stdout + stderr };
}

export function runCli(args: string[], opts: { cwd: string; env?: Record<string, string> }): Promise<CliResult> {
  return startCli(args, opts).finished;
}

/** A fresh working directory named for this run (`<prefix><RUN_ID>-XXXXXX`, see root-hooks.ts), removed by `cleanup`. */
export async function tempDir(prefix = 'bucket-ingest-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `${prefix}${RUN_ID}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Parses JSON log lines from a run's stdout. */
export function events(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The first value `fn` gives that is not undefined, asked every 25 ms; fails after `ms` (a bound, not a measure). */
export async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await sleep(25);
  }
}
