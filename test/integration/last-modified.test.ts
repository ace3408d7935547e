import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { events, runCli, tempDir } from '../helpers/cli.js';
import { startRawServer, type RawServer } from '../helpers/raw-server.js';
import { dumpSqlite } from '../helpers/tables.js';

type Entry = Record<string, unknown> & { status: string; etag: string | null; size: number | null };

const songs = (...titles: string[]): string =>
  JSON.stringify(titles.map((title) => ({ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } })));

/**
 * A server without ETags (`python3 -m http.server`, many static servers) names versions by Last-Modified: a recheck
 * asks with If-Modified-Since, and a done file that did not change is not downloaded or loaded again.
 */
describe('rechecks against a server without ETags (integration)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: RawServer;
  /** What the server holds: body and Last-Modified per key. */
  const files = new Map<string, { body: string; lastModified: string }>();
  /** As python's http.server: 304 when If-Modified-Since is not before Last-Modified. Off: always 200. */
  let honoursIfModifiedSince = true;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    files.set('files_list.data', { body: 'a.data\nb.data', lastModified: 'Wed, 21 Oct 2015 07:00:00 GMT' });
    files.set('a.data', { body: songs('a1', 'a2'), lastModified: 'Wed, 21 Oct 2015 07:28:00 GMT' });
    files.set('b.data', { body: songs('b1'), lastModified: 'Wed, 21 Oct 2015 07:28:00 GMT' });
    server = await startRawServer((req, res) => {
      const file = files.get((req.url ?? '/').slice(1));
      if (file === undefined) {
        res.statusCode = 404;
        return res.end();
      }
      const since = Date.parse(req.headers['if-modified-since'] ?? '');
      if (honoursIfModifiedSince && since >= Date.parse(file.lastModified)) {
        res.statusCode = 304;
        return res.end();
      }
      res.setHeader('last-modified', file.lastModified);
      res.setHeader('content-length', Buffer.byteLength(file.body));
      res.end(file.body);
    });
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  const run = async () => {
    const from = server.requests.length;
    const env = { BUCKET_URL: server.url, DATABASE_URL: 'sqlite://db.sqlite3', REGISTRY_PATH: 'registry.json', RECHECK_DONE_SECONDS: '0', LOG_FORMAT: 'json' };
    const r = await runCli(['run', '--once'], { cwd: dir, env });
    expect(r.code, r.stderr).to.equal(0);
    const entries = (JSON.parse(readFileSync(join(dir, 'registry.json'), 'utf8')) as { entries: Record<string, Entry> }).entries;
    return {
      finished: events(r.stdout).find((e) => e.event === 'CycleFinished'),
      entries,
      requests: server.requests.slice(from).filter((q) => q.path !== '/files_list.data'),
      tables: await dumpSqlite(join(dir, 'db.sqlite3')),
    };
  };
  /** An entry without the times a recheck moves. */
  const stable = (e: Entry | undefined) => {
    const { checkedAt: _c, updatedAt: _u, ...rest } = e ?? ({} as Entry);
    return rest;
  };

  it('keeps Last-Modified as the version, and a recheck answered 304 leaves the file, its rows and its entry as they were', async () => {
    const first = await run();
    expect(first.finished).to.include({ filesDone: 2 });
    expect(first.entries['a.data']).to.include({ status: 'done', etag: 'last-modified:Wed, 21 Oct 2015 07:28:00 GMT', size: Buffer.byteLength(files.get('a.data')!.body) });
    expect(first.requests.every((q) => q.headers['if-modified-since'] === undefined && q.headers['if-none-match'] === undefined)).to.equal(true);

    const again = await run();
    expect(again.finished).to.include({ filesDone: 0, filesUnchanged: 2, recordsLoaded: 0 });
    expect(again.requests.map((q) => [q.path, q.headers['if-modified-since'], q.headers['if-none-match']])).to.have.deep.members([
      ['/a.data', 'Wed, 21 Oct 2015 07:28:00 GMT', undefined],
      ['/b.data', 'Wed, 21 Oct 2015 07:28:00 GMT', undefined],
    ]);
    for (const key of ['a.data', 'b.data']) expect(stable(again.entries[key]), key).to.deep.equal(stable(first.entries[key]));
    expect(again.tables).to.deep.equal(first.tables);
  });

  it('loads a file again once its Last-Modified changes', async () => {
    files.set('b.data', { body: songs('b1', 'b2'), lastModified: 'Wed, 21 Oct 2015 08:00:00 GMT' });
    const r = await run();
    expect(r.finished).to.include({ filesDone: 1, filesUnchanged: 1, recordsLoaded: 2 });
    expect(r.entries['b.data']).to.include({ etag: 'last-modified:Wed, 21 Oct 2015 08:00:00 GMT', size: Buffer.byteLength(files.get('b.data')!.body) });
    expect(r.tables.songs!.map((row) => row.title)).to.have.members(['a1', 'a2', 'b1', 'b2']);
  });

  it('when the server ignores If-Modified-Since: the same Last-Modified and size is unchanged, another size loads again', async () => {
    honoursIfModifiedSince = false;
    const same = await run();
    expect(same.finished).to.include({ filesDone: 0, filesUnchanged: 2 });
    // Rewritten within the same second: the date stays, the size tells.
    files.set('a.data', { body: songs('a1', 'a2', 'a3'), lastModified: files.get('a.data')!.lastModified });
    const changed = await run();
    expect(changed.finished).to.include({ filesDone: 1, filesUnchanged: 1, recordsLoaded: 3 });
    expect(changed.tables.songs!.map((row) => row.title)).to.have.members(['a1', 'a2', 'a3', 'b1', 'b2']);
  });
});
