/**
 * A PostgreSQL cluster of a test's own: `initdb` + `pg_ctl` from the PostgreSQL server package, in a temp dir, on
 * a free port of 127.0.0.1, its unix socket inside that dir. A test may restart or stop only a server it started,
 * never the machine's own (TEST_PG_URL's server is shared with other runs).
 *
 * @example
 *   const pg = await startPrivatePostgres(); // pg.url: postgres://postgres@127.0.0.1:PORT/postgres
 *   await pg.restart();
 *   await pg.destroy(); // stop -m immediate, rm -rf
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { chown, readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './cli.js';

const run = promisify(execFile);

export interface PgBinaries {
  initdb: string;
  pgCtl: string;
}

function onPath(name: string, extra: string[] = []): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...extra]) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** initdb and pg_ctl: on PATH, else in the newest /usr/lib/postgresql/<version>/bin (Debian keeps them off PATH). */
export function findPgBinaries(): PgBinaries | null {
  const initdb = onPath('initdb');
  const pgCtl = onPath('pg_ctl');
  if (initdb && pgCtl) return { initdb, pgCtl };
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const bin = join(root, v, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return { initdb: join(bin, 'initdb'), pgCtl: join(bin, 'pg_ctl') };
  }
  return null;
}

interface Runner {
  binaries: PgBinaries;
  /** Prefix that runs a command as the cluster's owner: `runuser -u postgres --` as root (initdb refuses root). */
  as: string[];
  /** uid/gid to give the cluster's directory, when running as root. */
  owner?: { uid: number; gid: number };
}

function idOf(user: string, flag: '-u' | '-g'): number | null {
  const r = spawnSync('id', [flag, user], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : null;
}

/** How to run a private cluster on this machine, or why it cannot be. */
export function privatePgRunner(): Runner | string {
  const binaries = findPgBinaries();
  if (!binaries) return 'no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)';
  if (process.getuid?.() !== 0) return { binaries, as: [] };
  const runuser = onPath('runuser', ['/usr/sbin', '/sbin']);
  const uid = idOf('postgres', '-u');
  const gid = idOf('postgres', '-g');
  if (!runuser || uid === null || gid === null) return 'running as root, and there is no `postgres` user or no runuser to run initdb as it';
  return { binaries, as: [runuser, '-u', 'postgres', '--'], owner: { uid, gid } };
}

const said = new Set<string>();
/** The runner, or null after one visible line saying why the private cluster tests are skipped. */
export function privatePgOrSkip(what: string): Runner | null {
  const runner = privatePgRunner();
  if (typeof runner !== 'string') return runner;
  if (!said.has(what)) {
    said.add(what);
    process.stdout.write(`  (skipping ${what}: ${runner})\n`);
  }
  return null;
}

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:PORT/postgres`, trust authentication. */
  url: string;
  /** `pg_ctl restart -m fast` of this cluster: every session is cut, the server is back when it returns. */
  restart(): Promise<void>;
  /** Stops the server at once (`-m immediate`) and removes its directory. Idempotent, never throws. */
  destroy(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts a fresh cluster; on any failure, what was made is removed before the error is thrown. */
export async function startPrivatePostgres(runner: Runner): Promise<PrivatePostgres> {
  const t = await tempDir('bucket-ingest-pg-');
  const data = join(t.dir, 'data');
  const log = join(t.dir, 'server.log');
  const [cmd0, ...prefix] = [...runner.as, runner.binaries.pgCtl];
  // As the owner, from a directory it can read (the caller's may be root's own).
  const pgCtl = (args: string[]) => run(cmd0!, [...prefix, ...args], { cwd: t.dir, timeout: 90_000 });
  const logTail = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');

  let stopped = false;
  const stopNow = (): void => {
    if (stopped) return;
    stopped = true;
    if (existsSync(join(data, 'postmaster.pid'))) spawnSync(cmd0!, [...prefix, 'stop', '-D', data, '-m', 'immediate', '-w', '-s'], { cwd: t.dir, stdio: 'ignore', timeout: 30_000 });
    rmSync(t.dir, { recursive: true, force: true });
  };
  // Should mocha exit without running after() hooks, the server must not outlive it.
  process.once('exit', stopNow);
  const destroy = async (): Promise<void> => {
    process.off('exit', stopNow);
    if (stopped) return;
    stopped = true;
    await pgCtl(['stop', '-D', data, '-m', 'immediate', '-w', '-s']).catch(() => undefined);
    await t.cleanup();
  };

  try {
    if (runner.owner) await chown(t.dir, runner.owner.uid, runner.owner.gid);
    const [init0, ...initPrefix] = [...runner.as, runner.binaries.initdb];
    // -N: no fsync of the new files, the cluster lives for one suite.
    await run(init0!, [...initPrefix, '-D', data, '-A', 'trust', '-U', 'postgres', '--no-locale', '-E', 'UTF8', '-N'], { cwd: t.dir, timeout: 90_000 });
    // The port is free when asked, but another process may take it before the server binds it: ask again.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      try {
        // pg_ctl passes -o through a shell: quote the socket directory.
        await pgCtl(['start', '-D', data, '-w', '-t', '60', '-s', '-l', log, '-o', `-c listen_addresses=127.0.0.1 -p ${port} -k '${t.dir}'`]);
        return {
          url: `postgres://postgres@127.0.0.1:${port}/postgres`,
          restart: async () => {
            try {
              await pgCtl(['restart', '-D', data, '-w', '-t', '60', '-s', '-m', 'fast', '-l', log]);
            } catch (err) {
              throw new Error(`pg_ctl restart of the private cluster failed: ${(err as Error).message}\n${await logTail()}`);
            }
          },
          destroy,
        };
      } catch (err) {
        if (attempt === 3) throw new Error(`pg_ctl start of the private cluster failed: ${(err as Error).message}\n${await logTail()}`);
      }
    }
  } catch (err) {
    await destroy();
    throw err;
  }
}
