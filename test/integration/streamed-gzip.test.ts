import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { events, runCli, tempDir } from '../helpers/cli.js';
import { startRawServer, type RawServer } from '../helpers/raw-server.js';
import { dumpSqlite } from '../helpers/tables.js';

interface Entry { status: string; error: string | null }

const songs = (title: string, n = 1): string =>
  `[${Array.from({ length: n }, () => JSON.stringify({ type: 'song', data: { artist_name: 'A', title, year: 1, release: 'R' } })).join(',')}]`;

/** A gzip body whose deflate data is damaged in the middle. */
function corruptGzip(): Buffer {
  const gz = Buffer.from(gzipSync(songs('corrupt', 200)));
  for (let i = 12; i < 40; i++) gz[i] = (gz[i] as number) ^ 0xff;
  return gz;
}

/**
 * How each key is served. All but `plain.data` and `bomb-sized.data` are sent chunked (no Content-Length), so the
 * daemon streams them, and all but `plain*.data` gzipped. `cut.data` and `plain-cut.data` lose their connection
 * halfway; `short.data` ends properly but its gzip data stops halfway.
 */
const MB = 1024 * 1024;
const bodies: Record<string, { gzip: Buffer | null; plain?: string; cut?: boolean; sized?: boolean }> = {
  'good.data': { gzip: gzipSync(songs('good')) },
  'plain.data': { gzip: null, plain: songs('plain') },
  'corrupt.data': { gzip: corruptGzip() },
  'cut.data': { gzip: gzipSync(songs('cut', 2000)), cut: true },
  'plain-cut.data': { gzip: null, plain: songs('plain-cut', 2000), cut: true },
  'short.data': { gzip: (() => { const gz = gzipSync(songs('short', 2000)); return gz.subarray(0, gz.length >> 1); })() },
  // Over MAX_FILE_MB (1) as sent: one string of random bytes, which do not compress (and decompress to no more).
  'big.data': { gzip: gzipSync(Buffer.concat([Buffer.from('["'), randomBytes(MB + MB / 4).map((b) => (b === 0x22 || b === 0x5c ? 0x20 : b)), Buffer.from('"]')])) },
  // Gzip bombs: a few kB that decompress to 3 MB of valid records, streamed, and sent whole with a Content-Length.
  'bomb.data': { gzip: gzipSync(songs('bomb', 45_000)) },
  'bomb-sized.data': { gzip: gzipSync(songs('bomb-sized', 45_000)), sized: true },
};

/**
 * A streamed gzip body that is corrupt, cut short or over MAX_FILE_MB (before or after decompression) is a failed
 * file like any other: the daemon records it with its error and carries on, instead of dying of an error event
 * nobody listened to (and dying again at every restart, the file never recorded).
 */
describe('streamed gzip bodies that go wrong (integration)', function () {
  this.timeout(60_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: RawServer;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    server = await startRawServer((req, res) => {
      const key = (req.url ?? '/').slice(1);
      if (key === 'files_list.data') return res.end(Object.keys(bodies).join('\n'));
      const file = bodies[key];
      if (file === undefined) {
        res.statusCode = 404;
        return res.end();
      }
      if (file.gzip === null && !file.cut) {
        res.setHeader('content-length', Buffer.byteLength(file.plain ?? ''));
        return res.end(file.plain);
      }
      const body = file.gzip ?? Buffer.from(file.plain ?? '');
      if (file.gzip !== null) res.setHeader('content-encoding', 'gzip');
      if (file.sized) {
        res.setHeader('content-length', body.length);
        return res.end(body);
      }
      // No Content-Length: Node sends the body chunked.
      if (file.cut) return res.write(body.subarray(0, body.length >> 1), () => req.socket.destroy());
      res.write(body.subarray(0, body.length >> 1));
      res.end(body.subarray(body.length >> 1));
    });
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  it('records each such file failed with its error, loads the others, and exits 1', async () => {
    const env = { BUCKET_URL: server.url, DATABASE_URL: 'sqlite://db.sqlite3', REGISTRY_PATH: 'registry.json', MAX_FILE_MB: '1', STREAM_ABOVE_MB: '1', LOG_FORMAT: 'json', MAX_ATTEMPTS: '1' };
    const r = await runCli(['run', '--once'], { cwd: dir, env });
    expect(r.stderr, 'no crash').to.not.match(/Uncaught|at .*\.js:\d+/);
    expect(events(r.stdout).find((e) => e.event === 'CycleFinished'), r.stderr).to.include({ filesDone: 2, filesFailed: 7 });
    expect(r.code).to.equal(1);
    const entries = (JSON.parse(readFileSync(join(dir, 'registry.json'), 'utf8')) as { entries: Record<string, Entry> }).entries;
    expect(entries['good.data']?.status).to.equal('done');
    expect(entries['plain.data']?.status).to.equal('done');
    const failed = Object.fromEntries(Object.entries(entries).filter(([, e]) => e.status === 'failed').map(([k, e]) => [k, e.error]));
    expect(Object.keys(failed)).to.have.members(['corrupt.data', 'cut.data', 'plain-cut.data', 'short.data', 'big.data', 'bomb.data', 'bomb-sized.data']);
    expect(failed['corrupt.data']).to.match(/^BI_DECODE: corrupt\.data: bad gzip body: /);
    expect(failed['short.data']).to.match(/^BI_DECODE: short\.data: bad gzip body: unexpected end of file/);
    expect(failed['cut.data']).to.match(/^BI_BODY_TRUNCATED: cut\.data: body cut short/);
    expect(failed['plain-cut.data']).to.match(/^BI_BODY_TRUNCATED: plain-cut\.data: body cut short/);
    expect(failed['big.data']).to.match(/^BI_BODY_TOO_LARGE: big\.data: .* over MAX_FILE_MB \(1048576 bytes\)$/);
    expect(failed['bomb.data']).to.match(/^BI_BODY_TOO_LARGE: bomb\.data: .* over MAX_FILE_MB \(1048576 bytes\) once decompressed/);
    expect(failed['bomb-sized.data']).to.match(/^BI_BODY_TOO_LARGE: bomb-sized\.data: .* over MAX_FILE_MB \(1048576 bytes\) once decompressed/);
    const tables = await dumpSqlite(join(dir, 'db.sqlite3'));
    expect(tables.songs!.map((row) => row.title)).to.have.members(['good', 'plain']);
  });
});
