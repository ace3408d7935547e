import { readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { JSON_REGISTRY_WARN_ENTRIES } from '../../src/app.js';
import { events, runCli, tempDir } from '../helpers/cli.js';

/** The JSON registry says when a bucket is too big for it (issue 16: a million keys take ~1 GB in it). */
describe('a JSON registry of a very big bucket', function () {
  this.timeout(120_000);

  it(`warns at start-up once it holds ${JSON_REGISTRY_WARN_ENTRIES} files, naming REGISTRY=database`, async () => {
    const t = await tempDir();
    try {
      await mkdir(join(t.dir, 'bucket'));
      await writeFile(join(t.dir, 'bucket', 'files_list.data'), '');
      const env = { BUCKET_URL: join(t.dir, 'bucket'), DATABASE_URL: 'sqlite://data/t.sqlite3', REGISTRY_PATH: 'registry/t.json', LOG_FORMAT: 'json' };
      const first = await runCli(['run', '--once'], { cwd: t.dir, env });
      expect(first.code).to.equal(0);
      expect(events(first.stdout).filter((e) => e.event === 'RegistryLarge')).to.deep.equal([]);
      const path = join(t.dir, 'registry', 't.json');
      const snapshot = JSON.parse(await readFile(path, 'utf8')) as { entries: Record<string, unknown> };
      const at = new Date().toISOString();
      for (let i = 0; i < JSON_REGISTRY_WARN_ENTRIES; i++) {
        snapshot.entries[`k/${i}.data`] = {
          status: 'done', etag: '"e"', size: 1, attempts: 1, failures: 0, loaded: 0, rejected: 0, skipped: 0, error: null,
          firstSeenAt: at, updatedAt: at, doneAt: at, checkedAt: at, nextAttemptAt: null,
        };
      }
      await writeFile(path, JSON.stringify(snapshot));
      await rm(`${path}.journal`, { force: true });
      const second = await runCli(['run', '--once'], { cwd: t.dir, env });
      expect(second.code).to.equal(0);
      const warned = events(second.stdout).filter((e) => e.event === 'RegistryLarge');
      expect(warned).to.have.length(1);
      expect(warned[0]?.entries).to.equal(JSON_REGISTRY_WARN_ENTRIES);
      expect(String(warned[0]?.msg)).to.contain('use REGISTRY=database');
    } finally {
      await t.cleanup();
    }
  });
});
