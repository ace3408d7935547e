import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { runCli, tempDir } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/tables.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

interface Entry { status: string; error: string | null }

const song = (title: string): string => JSON.stringify([{ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } }]);

/** The registry entries a run left (REGISTRY_PATH=registry.json). */
const entriesOf = (dir: string): Record<string, Entry> =>
  (JSON.parse(readFileSync(join(dir, 'registry.json'), 'utf8')) as { entries: Record<string, Entry> }).entries;

/**
 * Nothing outside the bucket is ever read: keys that URL resolution would take out of the bucket's path or to another
 * host, and symbolic links out of a local bucket, are recorded failed (BI_BAD_KEY) without anything being fetched.
 */
describe('keys leading outside the bucket (integration)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  const servers: TestBucket[] = [];

  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    await cleanup();
  });

  it('HTTP: dot segments, a leading "/" and protocol-relative keys are refused, and nothing outside the bucket path is requested', async () => {
    // The bucket lives under /bucket/ of this server, which also serves a secret at its root.
    const other = await startTestBucket({ files: { 'secret.data': song('OTHER HOST SECRET') }, index: '' });
    servers.push(other);
    const otherHost = other.url.replace('http://', '');
    const bad = ['../secret.data', 'sub/../../secret.data', '/secret.data', '//localhost/secret.data', `//${otherHost}/secret.data`];
    const bucket = await startTestBucket({
      files: { 'bucket/a.data': song('a'), 'secret.data': song('SECRET') },
      indexKey: 'bucket/files_list.data',
      index: '',
    });
    servers.push(bucket);
    bad.push(`//${bucket.url.replace('http://', '')}/secret.data`); // the same server, reached past the bucket path
    bucket.setIndex(['a.data', ...bad].join('\n'));

    const r = await runCli(['run', '--once'], {
      cwd: dir,
      env: { BUCKET_URL: `${bucket.url}/bucket`, DATABASE_URL: 'sqlite://db.sqlite3', REGISTRY_PATH: 'registry.json', MAX_ATTEMPTS: '2' },
    });
    expect(r.code, r.stderr).to.equal(1); // files failed
    const entries = entriesOf(dir);
    expect(entries['a.data']?.status).to.equal('done');
    for (const key of bad) {
      expect(entries[key]?.status, key).to.equal('failed');
      expect(entries[key]?.error, key).to.match(/^BI_BAD_KEY: /).and.contain(key);
    }
    expect(bucket.requests.map((q) => q.path)).to.have.members(['/bucket/files_list.data', '/bucket/a.data']);
    expect(other.requests).to.deep.equal([]);
    const tables = await dumpSqlite(join(dir, 'db.sqlite3'));
    expect(tables.songs!.map((row) => row.title)).to.deep.equal(['a']);
  });

  it('local: a symbolic link to a file or a directory outside the bucket is refused; links that stay inside work', async () => {
    const bucket = join(dir, 'bucket');
    mkdirSync(join(bucket, 'real'), { recursive: true });
    mkdirSync(join(dir, 'outside'));
    writeFileSync(join(dir, 'outside', 'secret.data'), song('SECRET'));
    writeFileSync(join(bucket, 'a.data'), song('a'));
    writeFileSync(join(bucket, 'real', 'b.data'), song('b'));
    writeFileSync(join(bucket, '..c.data'), song('c')); // a name that begins with two dots, not a `..` segment
    symlinkSync(join(dir, 'outside', 'secret.data'), join(bucket, 'file-link.data')); // absolute target
    symlinkSync('../outside', join(bucket, 'dir-link')); // relative target
    symlinkSync('real/b.data', join(bucket, 'inside-link.data'));
    symlinkSync('real', join(bucket, 'inside-dir'));
    writeFileSync(join(bucket, 'files_list.data'), ['a.data', 'file-link.data', 'dir-link/secret.data', 'inside-link.data', 'inside-dir/b.data', '..c.data'].join('\n'));
    // The bucket directory named through a link of its own: its real path is what keys must stay inside.
    symlinkSync(bucket, join(dir, 'bucket-link'));

    const r = await runCli(['run', '--once'], {
      cwd: dir,
      env: { BUCKET_URL: join(dir, 'bucket-link'), DATABASE_URL: 'sqlite://db.sqlite3', REGISTRY_PATH: 'registry.json' },
    });
    expect(r.code, r.stderr).to.equal(1);
    const entries = entriesOf(dir);
    for (const key of ['a.data', 'inside-link.data', 'inside-dir/b.data', '..c.data']) expect(entries[key]?.status, key).to.equal('done');
    for (const key of ['file-link.data', 'dir-link/secret.data']) {
      expect(entries[key]?.status, key).to.equal('failed');
      expect(entries[key]?.error, key).to.match(/^BI_BAD_KEY: /).and.contain(key).and.contain('symbolic link');
    }
    const tables = await dumpSqlite(join(dir, 'db.sqlite3'));
    expect(tables.songs!.map((row) => row.title)).to.have.members(['a', 'b', 'c']);
  });
});
