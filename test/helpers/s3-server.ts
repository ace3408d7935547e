/**
 * A real S3 server for the S3 suites: Ceph's RADOS Gateway (scripts/s3-server.sh), started once per mocha run and
 * stopped by the root hooks, or the one named by TEST_S3_ENDPOINT / TEST_S3_ACCESS_KEY / TEST_S3_SECRET_KEY
 * (.ci/run starts one and sets them). Where neither is to be had, the S3 suites are skipped with one line. Apart from
 * the client helpers (s3.ts), so the root hooks load no AWS SDK.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const SCRIPT = resolve('scripts/s3-server.sh');

export interface S3Server {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}

const run = promisify(execFile);

let started: Promise<S3Server | null> | undefined;
/** The directory of the server this run started, to stop at the end (none when it came from the environment). */
let ownDir: string | undefined;
let said = false;

function skip(why: string): null {
  if (!said) process.stdout.write(`  (skipping the S3 suites: ${why})\n`);
  said = true;
  return null;
}

/** The run's S3 server, started on first use; null (after one line saying why) when none can be had. */
export function s3Server(): Promise<S3Server | null> {
  started ??= (async () => {
    const env = process.env;
    if (env.TEST_S3_ENDPOINT) {
      return { endpoint: env.TEST_S3_ENDPOINT, accessKey: env.TEST_S3_ACCESS_KEY ?? '', secretKey: env.TEST_S3_SECRET_KEY ?? '' };
    }
    const dir = await mkdtemp(join(tmpdir(), 'bucket-ingest-s3-server-'));
    try {
      const { stdout } = await run('bash', [SCRIPT, 'start', dir], { timeout: 120_000 });
      ownDir = dir;
      const vars = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
      return { endpoint: vars.TEST_S3_ENDPOINT ?? '', accessKey: vars.TEST_S3_ACCESS_KEY ?? '', secretKey: vars.TEST_S3_SECRET_KEY ?? '' };
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      const stderr = String((err as { stderr?: unknown }).stderr ?? (err as Error).message).trim().split('\n')[0];
      return skip(`no S3 server could start (${stderr}); or set TEST_S3_ENDPOINT and its keys`);
    }
  })();
  return started;
}

/** Stops the server this run started (root hooks, after all suites). */
export async function stopS3Server(): Promise<void> {
  if (ownDir === undefined) return;
  const dir = ownDir;
  ownDir = undefined;
  await run('bash', [SCRIPT, 'stop', dir], { timeout: 60_000 }).catch(() => undefined);
}
