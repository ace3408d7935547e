/**
 * Child processes of the benchmark: a `node` run with its wall time and peak resident set size (GNU time's `%M`, else
 * `/proc/<pid>/status` VmHWM polled every 50 ms), and the environment a daemon run gets.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETTING_KEYS } from '../src/config/schema.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const GNU_TIME = '/usr/bin/time';

export interface ChildResult {
  wallSeconds: number;
  /** Peak resident set size in MB; null when it could not be measured. */
  peakRssMB: number | null;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export type RssMethod = 'gnu-time' | 'proc-vmhwm' | 'none';

export function detectRssMethod(): RssMethod {
  if (existsSync(GNU_TIME)) {
    try {
      execFileSync(GNU_TIME, ['-f', '%M', '-o', '/dev/null', 'true'], { stdio: 'ignore' });
      return 'gnu-time';
    } catch {
      // not GNU time (e.g. BSD): fall through
    }
  }
  return existsSync('/proc/self/status') ? 'proc-vmhwm' : 'none';
}

let currentChild: { pid: number } | undefined;

/** Keeps the last `max` characters of a stream. */
function tail(stream: NodeJS.ReadableStream | null, max = 64 * 1024): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    text += chunk;
    if (text.length > 2 * max) text = text.slice(-max);
  });
  return () => text.slice(-max);
}

async function readVmHwmKB(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Runs `node ARGS` with `env`; wall time runs from spawn to exit. */
export async function runNode(args: string[], env: NodeJS.ProcessEnv, rssMethod: RssMethod, scratch: string): Promise<ChildResult> {
  const timeFile = join(scratch, 'time.txt');
  const [command, argv] = rssMethod === 'gnu-time'
    ? [GNU_TIME, ['-f', '%M', '-o', timeFile, process.execPath, ...args]]
    : [process.execPath, args];
  const started = performance.now();
  // Own process group, so an interrupt can stop /usr/bin/time and node together.
  const child = spawn(command, argv, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (child.pid !== undefined) currentChild = { pid: child.pid };
  const stdout = tail(child.stdout);
  const stderr = tail(child.stderr);
  let hwmKB = 0;
  const poller = rssMethod === 'proc-vmhwm' && child.pid !== undefined
    ? setInterval(() => {
      void readVmHwmKB(child.pid as number).then((kb) => {
        if (kb !== null && kb > hwmKB) hwmKB = kb;
      });
    }, 50)
    : undefined;
  let wallSeconds = 0;
  const closed = new Promise<void>((ok, fail) => {
    child.once('error', fail);
    child.once('exit', () => {
      wallSeconds = (performance.now() - started) / 1000;
      if (poller) clearInterval(poller);
    });
    // 'close' comes after 'exit' once stdout and stderr are drained, so the tails are complete.
    child.once('close', () => ok());
  });
  await closed;
  currentChild = undefined;
  const exitCode = child.exitCode;
  const signal = child.signalCode;
  let peakRssMB: number | null = null;
  if (rssMethod === 'gnu-time') {
    const text = await readFile(timeFile, 'utf8').catch(() => '');
    // GNU time writes "Command exited with non-zero status N" before the value when the command fails.
    const kb = Number(text.trim().split('\n').pop());
    peakRssMB = Number.isFinite(kb) && kb > 0 ? kb / 1024 : null;
  } else if (rssMethod === 'proc-vmhwm') {
    peakRssMB = hwmKB > 0 ? hwmKB / 1024 : null;
  }
  return { wallSeconds, peakRssMB, exitCode, signal, stdout: stdout(), stderr: stderr() };
}

/** The environment of a child: ours without any daemon setting (nor PROFILE/NODE_OPTIONS), plus `set`. */
export function childEnv(set: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of [...SETTING_KEYS, 'PROFILE', 'NODE_OPTIONS']) delete env[key];
  return { ...env, ...set };
}

/** Stops the child under way (its whole process group: /usr/bin/time and node), if any: on an interrupt. */
export function stopCurrentChild(): void {
  if (currentChild === undefined) return;
  try {
    process.kill(-currentChild.pid, 'SIGTERM');
  } catch {
    // already gone
  }
}
