import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { expect } from 'chai';
import { readLastCycle } from '../../src/registry/last-cycle.js';
import { sideFilesBase } from '../../src/registry/side-files.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { postgresDialect, type TestDatabase } from '../helpers/databases.js';

const SAMPLE = resolve('examples/sample-bucket');

describe('side files of replicas (sideFilesBase)', () => {
  const settings = { REGISTRY_PATH: '/registry/docker.json', WORKER_NAME: '' };

  it('is the registry path itself with the JSON registry, whatever the host (reprocess from another container finds it)', () => {
    expect(sideFilesBase(settings, 'json', 'a1b2c3')).to.equal('/registry/docker.json');
    expect(sideFilesBase({ ...settings, WORKER_NAME: 'w' }, 'json', 'a1b2c3')).to.equal('/registry/docker.json');
  });

  it('is one per worker with the database registry: WORKER_NAME, else the host name', () => {
    expect(sideFilesBase(settings, 'database', 'a1b2c3')).to.equal('/registry/docker.json.a1b2c3');
    expect(sideFilesBase(settings, 'database', 'd4e5f6')).to.not.equal(sideFilesBase(settings, 'database', 'a1b2c3'));
    expect(sideFilesBase({ ...settings, WORKER_NAME: 'ingest-7f9c' }, 'database', 'a1b2c3')).to.equal('/registry/docker.json.ingest-7f9c');
  });

  it('keeps a worker name that is not a safe file name inside the registry directory', () => {
    const base = sideFilesBase({ ...settings, WORKER_NAME: '../../etc/x y' }, 'database', 'h');
    expect(base).to.equal('/registry/docker.json..._.._etc_x_y');
    expect(dirname(base)).to.equal('/registry');
  });
});

const pg = postgresDialect();

(pg ? describe : describe.skip)('replicas on one REGISTRY_PATH with the database registry (integration)', function () {
  this.timeout(120_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let db: TestDatabase;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    db = await pg!.create(dir);
  });
  after(async () => {
    await db?.drop();
    await cleanup?.();
  });

  // Regression: every replica of the compose service wrote `/registry/docker.json.cycle.json` (and `.cycles.json`)
  // on the shared volume, so `status` showed whichever replica finished last, each start took the others' cycle
  // number, and the history's read-modify-write lost the others' cycles.
  it("each replica keeps its own last cycle; status by worker name shows that replica's", async () => {
    const registryPath = join(dir, 'registry', 'docker.json');
    const env = (worker: string) => ({ BUCKET_URL: SAMPLE, DATABASE_URL: db.url, REGISTRY_PATH: registryPath, WORKER_NAME: worker });
    const a = await runCli(['run', '--once'], { cwd: dir, env: env('replica-a') });
    expect(a.code, a.stderr).to.equal(0);
    const b = await runCli(['run', '--once'], { cwd: dir, env: env('replica-b') });
    expect(b.code, b.stderr).to.equal(0);

    // The last cycle and the cycle history the dashboard plots, one pair per replica.
    expect(readdirSync(join(dir, 'registry')).sort()).to.deep.equal([
      'docker.json.replica-a.cycle.json', 'docker.json.replica-a.cycles.json', 'docker.json.replica-b.cycle.json', 'docker.json.replica-b.cycles.json',
    ]);
    const lastA = await readLastCycle(`${registryPath}.replica-a`);
    const lastB = await readLastCycle(`${registryPath}.replica-b`);
    // Replica b found every file done by a: its cycle 1 (not a's #1 + 1) loaded nothing.
    expect({ cycle: lastA?.cycle, done: lastA?.summary?.filesDone }).to.deep.equal({ cycle: 1, done: 6 });
    expect({ cycle: lastB?.cycle, done: lastB?.summary?.filesDone }).to.deep.equal({ cycle: 1, done: 0 });

    const status = await runCli(['status'], { cwd: dir, env: env('replica-a') });
    expect(status.code, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/^files: 6 known, 6 done, 0 failed$/m);
    expect(status.stdout).to.match(/^last cycle: #1 ok, .*files 6 done/m);
  });
});
