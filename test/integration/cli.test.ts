import { cpSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { events, runCli, startCli, tempDir } from '../helpers/cli.js';
import { countRows } from '../helpers/tables.js';

const SAMPLE = resolve('examples/sample-bucket');

describe('command line edges (integration)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  const fails = async (args: string[], env: Record<string, string> = {}): Promise<string> => {
    const r = await runCli(args, { cwd: dir, env });
    expect(r.code, r.stdout + r.stderr).to.equal(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).to.have.length(1);
    expect(r.stderr).to.not.match(/\n\s+at /); // no stack trace without --verbose
    return lines[0] as string;
  };

  it('runs the bundled sample bucket with the default profile, like `npm start`', async () => {
    cpSync(SAMPLE, join(dir, 'examples', 'sample-bucket'), { recursive: true });
    const r = await runCli(['run', '--once'], { cwd: dir });
    expect(r.code, r.stderr).to.equal(0);
    const finished = events(r.stdout).find((e) => e.event === 'CycleFinished');
    expect(finished).to.include({ filesDone: 6, filesFailed: 0 });
    expect(finished!.recordsRejected).to.be.greaterThan(0);
    expect(finished!.recordsSkipped).to.be.greaterThan(0);
    expect(await countRows(join(dir, 'data', 'bucket-ingest.sqlite3'), 'rejected_records')).to.equal(finished!.recordsRejected);
  });

  it('exits 2 with one line for an unknown profile', async () => {
    expect(await fails(['run', '--once', '--profile', 'nope'])).to.contain('profile "nope"');
    expect(await fails(['run', '--once', '--profile', 'constructor'])).to.contain('BI_CONFIG: profile "constructor" is not in');
  });

  it('refuses run options that mean nothing together, before doing anything (regression: run --json started a daemon)', async () => {
    cpSync(SAMPLE, join(dir, 'examples', 'sample-bucket'), { recursive: true });
    expect(await fails(['run', '--json'])).to.match(/^bucket-ingest: BI_USAGE: --json is for --dry-run/);
    expect(await fails(['--once', '--json'])).to.match(/^bucket-ingest: BI_USAGE: --json is for --dry-run/);
    expect(await fails(['run', '--dry-run', '--http-port', '0'])).to.match(/^bucket-ingest: BI_USAGE: --http-port means nothing with --dry-run/);
    expect(await fails(['run', '--dry-run', '--log-format', 'json', '--http-port', '9'])).to.contain('--http-port and --log-format mean nothing with --dry-run');
    expect(readdirSync(dir)).to.deep.equal(['examples']); // no database, no registry
    const ok = await runCli(['run', '--dry-run', '--json', '--force'], { cwd: dir });
    expect(ok.code, ok.stderr).to.equal(0);
    expect(JSON.parse(ok.stdout)).to.have.property('planned', 6);
  });

  it('exits 2 with one line for a missing config file', async () => {
    expect(await fails(['run', '--once', '--config', 'missing.ini'])).to.contain('missing.ini does not exist');
  });

  it('exits 2 for a bad number, and for an unknown option', async () => {
    expect(await fails(['run', '--once', '--concurrency', '0'])).to.contain('CONCURRENCY on the command line');
    expect(await fails(['run', '--once'], { MAX_ATTEMPTS: 'many' })).to.contain('MAX_ATTEMPTS in the environment');
    expect(await fails(['run', '--bogus'])).to.contain('Unknown argument');
  });

  it('exits 2 naming an unreachable bucket, and never prints its password', async () => {
    const line = await fails(['run', '--once'], {
      BUCKET_URL: 'http://reader:hunter2@127.0.0.1:9/bucket?token=abc123', MAX_ATTEMPTS: '1', DATABASE_URL: 'sqlite://t.sqlite3',
    });
    expect(line).to.contain('BI_SOURCE_UNAVAILABLE').and.contain('127.0.0.1:9');
    expect(line).to.not.contain('hunter2').and.not.contain('abc123');
    const verbose = await runCli(['run', '--once', '--verbose'], {
      cwd: dir, env: { BUCKET_URL: 'http://reader:hunter2@127.0.0.1:9/b', MAX_ATTEMPTS: '1', DATABASE_URL: 'sqlite://t.sqlite3' },
    });
    expect(verbose.stdout + verbose.stderr).to.not.contain('hunter2');
    expect(verbose.stderr).to.match(/\n\s+at /); // --verbose shows where
  });

  it('exits 2 for a bad DATABASE_URL, masking its password', async () => {
    const line = await fails(['run', '--once'], { BUCKET_URL: SAMPLE, DATABASE_URL: 'oracle://scott:tiger@db/x' });
    expect(line).to.contain('unsupported scheme "oracle"').and.not.contain('tiger');
    mkdirSync(join(dir, 'file-not-dir'));
    writeFileSync(join(dir, 'blocker'), 'x');
    expect(await fails(['run', '--once'], { BUCKET_URL: SAMPLE, DATABASE_URL: 'sqlite://blocker/x.sqlite3' })).to.contain('BI_DATABASE');
    const unreachable = await fails(['run', '--once'], { BUCKET_URL: SAMPLE, DATABASE_URL: 'postgres://app:tiger@127.0.0.1:9/x' });
    expect(unreachable).to.contain('BI_DATABASE').and.contain('127.0.0.1:9').and.not.contain('tiger');
  });

  it('a port in use is one BI_HTTP_LISTEN line naming HTTP_PORT, and the failed start leaves nothing behind (regression: "error: EADDRINUSE…")', async () => {
    cpSync(SAMPLE, join(dir, 'examples', 'sample-bucket'), { recursive: true });
    const taken = createServer();
    await new Promise<void>((resolvePromise) => taken.listen(0, '127.0.0.1', resolvePromise));
    try {
      const port = (taken.address() as AddressInfo).port;
      const line = await fails(['run', '--once'], { HTTP_PORT: String(port) });
      expect(line).to.equal(`bucket-ingest: BI_HTTP_LISTEN: cannot serve HTTP on 127.0.0.1:${port} (HTTP_PORT=${port}, HTTP_HOST=127.0.0.1): the port is in use (another daemon, or another program) (EADDRINUSE)`);
      expect(readdirSync(dir)).to.deep.equal(['examples']); // no data/, no registry/
    } finally {
      await new Promise((resolvePromise) => taken.close(resolvePromise));
    }
  });

  it('bad values say what was typed and what is allowed (regression: "got null", no list)', async () => {
    expect(await fails(['run', '--once', '--concurrency', 'abc'])).to.equal('bucket-ingest: BI_CONFIG: CONCURRENCY on the command line: expected an integer from 1 to 256, got "abc"');
    expect(await fails(['run', '--http-port', 'x'])).to.contain('HTTP_PORT on the command line: expected a port from 0 to 65535, or off, got "x"');
    expect(await fails(['inspect', '--samples', 'many'])).to.equal('bucket-ingest: BI_USAGE: --samples: expected an integer from 0 to 10000, got "many"');
    expect(await fails(['run', '--concurrency'])).to.equal('bucket-ingest: BI_USAGE: Not enough arguments following: concurrency');
    expect(await fails(['status'], { LOG_LEVEL: 'loud' })).to.equal('bucket-ingest: BI_CONFIG: LOG_LEVEL in the environment: expected one of trace, debug, info, warn, error, fatal, silent, got "loud"');
    expect(await fails(['status'], { REGISTRY: 'db' })).to.equal('bucket-ingest: BI_CONFIG: REGISTRY in the environment: expected one of auto, json, database, got "db"');
    expect(await fails(['status'], { LOG_FORMAT: 'xml' })).to.contain('expected one of auto, json, pretty, got "xml"');
  });

  it('a start that fails takes back the directories and files it created, and only those (regression: sqlite:/// made its directory)', async () => {
    const missing = join(dir, 'no-bucket');
    // Into directories that do not exist: all of them go again.
    const deep = await fails(['run', '--once'], { BUCKET_URL: missing, DATABASE_URL: `sqlite://${join(dir, 'new', 'deeper', 'x.sqlite3')}`, REGISTRY_PATH: join(dir, 'reg', 'r.json') });
    expect(deep).to.contain('BI_SOURCE_UNAVAILABLE');
    expect(readdirSync(dir)).to.deep.equal([]);
    // The default paths, in directories that exist and hold other files: those files stay, the new ones go.
    mkdirSync(join(dir, 'data'));
    mkdirSync(join(dir, 'registry'));
    writeFileSync(join(dir, 'data', 'other.sqlite3'), 'x');
    writeFileSync(join(dir, 'registry', 'other.json'), '{}');
    expect(await fails(['run', '--once'], { BUCKET_URL: missing })).to.contain('BI_SOURCE_UNAVAILABLE');
    expect(readdirSync(join(dir, 'data'))).to.deep.equal(['other.sqlite3']);
    expect(readdirSync(join(dir, 'registry'))).to.deep.equal(['other.json']);
    // A start that succeeds keeps what it made, and a later failed start leaves that alone.
    cpSync(SAMPLE, join(dir, 'bucket'), { recursive: true });
    expect((await runCli(['run', '--once'], { cwd: dir, env: { BUCKET_URL: join(dir, 'bucket') } })).code).to.equal(0);
    const kept = { data: readdirSync(join(dir, 'data')), registry: readdirSync(join(dir, 'registry')) };
    expect(kept.data).to.include('bucket-ingest.sqlite3');
    expect(await fails(['run', '--once'], { BUCKET_URL: missing })).to.contain('BI_SOURCE_UNAVAILABLE');
    expect(readdirSync(join(dir, 'data'))).to.include.members(kept.data.filter((f) => !f.endsWith('-wal') && !f.endsWith('-shm')));
    expect(readdirSync(join(dir, 'registry'))).to.include('default.json');
  });

  it('exits 2 naming a corrupt registry file', async () => {
    mkdirSync(join(dir, 'registry'));
    writeFileSync(join(dir, 'registry', 'default.json'), '{"version":1,"entr');
    const line = await fails(['run', '--once'], { BUCKET_URL: SAMPLE });
    expect(line).to.contain('BI_REGISTRY_CORRUPT').and.contain(join('registry', 'default.json'));
    expect(await fails(['status'])).to.contain('BI_REGISTRY_CORRUPT');
  });

  it('refuses local keys that escape the bucket directory, as failed files', async () => {
    const bucket = join(dir, 'bucket');
    mkdirSync(bucket);
    writeFileSync(join(dir, 'secret.data'), '[]');
    writeFileSync(join(bucket, 'ok.data'), '[]');
    writeFileSync(join(bucket, 'files_list.data'), 'ok.data\n../secret.data\n/etc/passwd');
    const r = await runCli(['run', '--once'], { cwd: dir, env: { BUCKET_URL: `file://${bucket}` } });
    expect(r.code).to.equal(1);
    const status = JSON.parse((await runCli(['status', '--json'], { cwd: dir, env: { BUCKET_URL: `file://${bucket}` } })).stdout) as { failed: Array<{ key: string; error: string }> };
    expect(status.failed.map((f) => f.key)).to.have.members(['../secret.data', '/etc/passwd']);
    expect(status.failed.every((f) => f.error.includes('outside the bucket directory'))).to.equal(true);
  });

  it('a megabyte line in the index fails that key quickly and logs at most a short piece of it (regression: hung at 100% CPU, deaf to SIGTERM)', async () => {
    const bucket = join(dir, 'bucket');
    mkdirSync(bucket);
    writeFileSync(join(bucket, 'ok.data'), '[]');
    const long = `https://u:${'p'.repeat(1 << 20)}`;
    writeFileSync(join(bucket, 'files_list.data'), `ok.data\n${long}\n`);
    const run = startCli(['run', '--once'], { cwd: dir, env: { BUCKET_URL: bucket } });
    const killer = setTimeout(() => run.child.kill('SIGKILL'), 20_000);
    const r = await run.finished.finally(() => clearTimeout(killer));
    expect(r.signal, 'killed after 20 s').to.equal(null);
    expect(r.code, r.stderr).to.equal(1);
    const failed = events(r.stdout).find((e) => e.event === 'FileError');
    expect(failed?.key).to.match(/^https:\/\/u:p+…\(\d+ characters left out\)…p+$/);
    for (const line of r.stdout.split('\n')) expect(line.length).to.be.below(5000);
  });

  it('reloads a local file whose size or modification time changed', async () => {
    const bucket = join(dir, 'bucket');
    mkdirSync(bucket);
    const song = (year: number) => JSON.stringify([{ type: 'song', data: { artist_name: 'a', title: 't', year, release: 'r' } }]);
    writeFileSync(join(bucket, 'a.data'), song(1));
    writeFileSync(join(bucket, 'files_list.data'), 'a.data');
    const env = { BUCKET_URL: bucket, RECHECK_DONE_SECONDS: '0' };
    expect((await runCli(['run', '--once'], { cwd: dir, env })).code).to.equal(0);
    writeFileSync(join(bucket, 'a.data'), song(2));
    utimesSync(join(bucket, 'a.data'), new Date(), new Date(Date.now() + 5000));
    const r = await runCli(['run', '--once'], { cwd: dir, env });
    expect(events(r.stdout).find((e) => e.event === 'CycleFinished')).to.include({ filesDone: 1 });
    const status = readFileSync(join(dir, 'registry', 'default.json'), 'utf8');
    expect(JSON.parse(status).entries['a.data'].attempts).to.equal(2);
  });

  it('status prints totals and failed files as text and JSON', async () => {
    cpSync(SAMPLE, join(dir, 'examples', 'sample-bucket'), { recursive: true });
    await runCli(['run', '--once'], { cwd: dir });
    const text = await runCli(['status'], { cwd: dir });
    expect(text.stdout).to.match(/files: 6 known, 6 done, 0 failed/);
    const json = JSON.parse((await runCli(['status', '--json'], { cwd: dir })).stdout) as { files: { done: number } };
    expect(json.files.done).to.equal(6);
  });
});
