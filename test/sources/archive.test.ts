import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect } from 'chai';
import { IngestError } from '../../src/errors.js';
import { DEFAULT_RULES } from '../../src/formats/index.js';
import { ArchiveSource, type ArchiveOptions } from '../../src/sources/archive.js';
import { LocalSource } from '../../src/sources/local.js';
import type { FetchedObject, FetchOptions, NotModified, Source, StreamedObject } from '../../src/sources/types.js';
import { tempDir } from '../helpers/cli.js';
import { centralEntries, renamed, zipOf } from '../helpers/zip.js';

const MB = 1024 * 1024;

/** A source that counts the fetches of each key it passes on. */
class Counting implements Source {
  readonly fetched = new Map<string, number>();
  constructor(private readonly inner: Source) {}
  get description(): string {
    return this.inner.description;
  }
  listKeys(signal?: AbortSignal): Promise<string[]> {
    return this.inner.listKeys(signal);
  }
  fetch(key: string, opts?: FetchOptions): Promise<FetchedObject | StreamedObject | NotModified> {
    this.fetched.set(key, (this.fetched.get(key) ?? 0) + 1);
    return this.inner.fetch(key, opts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

async function bodyOf(got: FetchedObject | StreamedObject | NotModified): Promise<string> {
  if ('notModified' in got) throw new Error('not modified');
  if ('body' in got) return got.body.toString();
  const chunks: Buffer[] = [];
  for await (const c of got.stream) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

async function failure(p: Promise<unknown>): Promise<IngestError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(IngestError);
    return err as IngestError;
  }
  throw new Error('expected a failure');
}

describe('ZIP archives (sources/archive.ts)', function () {
  this.timeout(20_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  const opened: Source[] = [];

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await cleanup();
  });

  async function put(key: string, body: Buffer | string): Promise<void> {
    await mkdir(dirname(join(dir, key)), { recursive: true });
    await writeFile(join(dir, key), body);
  }

  async function bucket(files: Record<string, Buffer | string>, opts: Partial<ArchiveOptions> = {}): Promise<{ source: ArchiveSource; inner: Counting }> {
    for (const [key, body] of Object.entries(files)) await put(key, body);
    await put('files_list.data', `${Object.keys(files).join('\n')}\n`);
    const inner = new Counting(new LocalSource(dir, 'files_list.data', 64 * MB));
    const source = new ArchiveSource(inner, { rules: DEFAULT_RULES, maxBytes: MB, streamAboveBytes: 8 * MB, concurrency: 2, cacheBytes: 64 * MB, ...opts });
    opened.push(source);
    return { source, inner };
  }

  const SONGS = '{"type":"song","data":{"title":"a"}}\n';

  it('lists each member of an archive as a key of its own, in the archive\'s order, beside the other keys', async () => {
    const zip = await zipOf([
      { name: 'songs.ndjson', body: SONGS },
      { name: 'dir/', body: '' },
      { name: 'dir/movies.json', body: '[]' },
      { name: 'people.csv', body: 'a,b\n1,2\n', compress: false },
    ]);
    const { source } = await bucket({ 'plain.json': '[]', 'sub/batch.zip': zip, 'last.ndjson': '' });
    expect(await source.listKeys()).to.deep.equal(['plain.json', 'sub/batch.zip!songs.ndjson', 'sub/batch.zip!dir/movies.json', 'sub/batch.zip!people.csv', 'last.ndjson']);
    expect(await bodyOf(await source.fetch('sub/batch.zip!songs.ndjson'))).to.equal(SONGS);
    expect(await bodyOf(await source.fetch('sub/batch.zip!people.csv'))).to.equal('a,b\n1,2\n');
    expect(await bodyOf(await source.fetch('plain.json'))).to.equal('[]');
  });

  it('gives a member its CRC-32 and size as version: unchanged members of a changed archive are not modified', async () => {
    const { source, inner } = await bucket({ 'a.zip': await zipOf([{ name: 'x.ndjson', body: SONGS }, { name: 'y.ndjson', body: SONGS + SONGS }]) });
    await source.listKeys();
    const x = await source.fetch('a.zip!x.ndjson');
    const y = await source.fetch('a.zip!y.ndjson');
    expect(x.size).to.equal(SONGS.length);
    expect(x.etag).to.match(/^"zip-crc32-[0-9a-f]{8}"$/);
    expect(await source.fetch('a.zip!x.ndjson', { known: x })).to.include({ notModified: true });
    expect(inner.fetched.get('a.zip')).to.equal(1); // read once, for the listing

    await source.listKeys(); // unchanged: the source says so, nothing read again
    expect(inner.fetched.get('a.zip')).to.equal(2);

    await put('a.zip', await zipOf([{ name: 'x.ndjson', body: SONGS }, { name: 'y.ndjson', body: SONGS }, { name: 'z.ndjson', body: SONGS }]));
    expect(await source.listKeys()).to.deep.equal(['a.zip!x.ndjson', 'a.zip!y.ndjson', 'a.zip!z.ndjson']);
    expect(await source.fetch('a.zip!x.ndjson', { known: x })).to.include({ notModified: true });
    expect(await bodyOf(await source.fetch('a.zip!y.ndjson', { known: y }))).to.equal(SONGS);
  });

  it('refuses members whose path escapes, that are too large, links or named twice; the others are read', async () => {
    let zip = await zipOf([
      { name: 'ok.ndjson', body: SONGS },
      { name: 'aa/evil.csv', body: 'x\n' },
      { name: 'Xetc/passwd', body: 'root\n' },
      { name: 'bomb.ndjson', body: Buffer.alloc(3 * MB, 0x20) },
      { name: 'link.csv', body: '/etc/passwd', mode: 0o120777 },
      { name: 'twice.csv', body: 'a\n' },
      { name: 'twice.csv', body: 'b\n' },
    ]);
    zip = renamed(renamed(zip, 'aa/evil.csv', '../evil.csv'), 'Xetc/passwd', '/etc/passwd');
    expect(zip.length).to.be.below(MB / 4); // 3 MB of spaces deflate to a few kB
    const { source } = await bucket({ 'a.zip': zip });
    expect(await source.listKeys()).to.deep.equal(['a.zip!ok.ndjson', 'a.zip!../evil.csv', 'a.zip!/etc/passwd', 'a.zip!bomb.ndjson', 'a.zip!link.csv', 'a.zip!twice.csv']);
    expect(await bodyOf(await source.fetch('a.zip!ok.ndjson'))).to.equal(SONGS);
    const reasons: Record<string, [string, RegExp]> = {
      'a.zip!../evil.csv': ['BI_ARCHIVE', /: its path escapes the archive \(invalid relative path: \.\.\/evil\.csv\); not extracted$/],
      'a.zip!/etc/passwd': ['BI_ARCHIVE', /: its path escapes the archive \(absolute path: \/etc\/passwd\); not extracted$/],
      'a.zip!bomb.ndjson': ['BI_BODY_TOO_LARGE', /: its uncompressed size, 3145728 bytes, is over MAX_FILE_MB \(1048576 bytes\); not extracted$/],
      'a.zip!link.csv': ['BI_ARCHIVE', /: it is a symbolic link; not extracted$/],
      'a.zip!twice.csv': ['BI_ARCHIVE', /: the archive holds more than one member of this name; not extracted$/],
    };
    for (const [key, [code, reason]] of Object.entries(reasons)) {
      const err = await failure(source.fetch(key));
      expect(err.code, key).to.equal(code);
      expect(err.message.startsWith(`${key}: `), err.message).to.equal(true);
      expect(err.message).to.match(reason);
    }
  });

  it('refuses a member whose data is longer than its declared size, or corrupt, as it is read', async () => {
    const body = 'x'.repeat(1000);
    let lying = await zipOf([{ name: 'a.csv', body, compress: false }]);
    // The declared sizes (local header offset 18/22, central entry 20/24) say 10 bytes; stored data says 1000.
    lying = Buffer.from(lying);
    lying.writeUInt32LE(10, 18);
    lying.writeUInt32LE(10, 22);
    const c = centralEntries(lying)[0] as number;
    lying.writeUInt32LE(10, c + 20);
    lying.writeUInt32LE(10, c + 24);
    const corrupt = Buffer.from(await zipOf([{ name: 'b.csv', body, compress: false }]));
    corrupt.write('y', corrupt.indexOf(body) + 500); // the CRC-32 no longer matches
    const { source } = await bucket({ 'lying.zip': lying, 'corrupt.zip': corrupt });
    await source.listKeys();
    const a = await failure(source.fetch('lying.zip!a.csv'));
    expect(a.code).to.equal('BI_ARCHIVE');
    expect(a.message).to.match(/^lying\.zip!a\.csv: /);
    const b = await failure(source.fetch('corrupt.zip!b.csv'));
    expect(b.code).to.equal('BI_ARCHIVE');
    expect(b.message).to.match(/^corrupt\.zip!b\.csv: .*CRC-32/);
  });

  it('lists a corrupt archive as its own key, whose fetch fails with BI_ARCHIVE; mended, its members are listed', async () => {
    const good = await zipOf([{ name: 'x.ndjson', body: SONGS }]);
    const { source } = await bucket({ 'a.zip': good.subarray(0, good.length - 10), 'b.json': '[]' });
    expect(await source.listKeys()).to.deep.equal(['a.zip', 'b.json']);
    const err = await failure(source.fetch('a.zip'));
    expect(err.code).to.equal('BI_ARCHIVE');
    expect(err.message).to.match(/^a\.zip: not a readable ZIP archive: /);
    expect(await source.listKeys()).to.deep.equal(['a.zip', 'b.json']);
    await put('a.zip', good);
    expect(await source.listKeys()).to.deep.equal(['a.zip!x.ndjson', 'b.json']);
  });

  it('streams a member larger than STREAM_ABOVE_MB', async () => {
    const big = `${SONGS.repeat(40_000)}`;
    const { source } = await bucket({ 'a.zip': await zipOf([{ name: 'big.ndjson', body: big }]) }, { streamAboveBytes: 64 * 1024, maxBytes: 8 * MB });
    await source.listKeys();
    const got = await source.fetch('a.zip!big.ndjson');
    expect(got).to.have.property('stream');
    expect(await bodyOf(got)).to.equal(big);
  });

  it('keeps copies within ARCHIVE_CACHE_MB, fetching a dropped one again when a member needs it, and removes them on close', async () => {
    const { source, inner } = await bucket({
      'a.zip': await zipOf([{ name: 'x.ndjson', body: SONGS }]),
      'b.zip': await zipOf([{ name: 'y.ndjson', body: SONGS }]),
    }, { cacheBytes: 0, concurrency: 1 });
    await source.listKeys();
    expect(await bodyOf(await source.fetch('a.zip!x.ndjson'))).to.equal(SONGS);
    expect(await bodyOf(await source.fetch('b.zip!y.ndjson'))).to.equal(SONGS);
    expect(inner.fetched.get('a.zip')).to.equal(2); // its copy was dropped for b's
    const ours = async (): Promise<string[]> => (await readdir(tmpdir())).filter((n) => n.startsWith('bucket-ingest-zip-'));
    const before = await ours();
    expect(before.length).to.be.greaterThan(0);
    await source.close();
    opened.length = 0;
    expect((await ours()).length).to.equal(before.length - 1);
  });

  it('reads a member whose archive this process never listed (a listing shared by another worker)', async () => {
    const { source } = await bucket({ 'a.zip': await zipOf([{ name: 'x.ndjson', body: SONGS }]) });
    expect(await bodyOf(await source.fetch('a.zip!x.ndjson'))).to.equal(SONGS);
    const missing = await failure(source.fetch('a.zip!nope.ndjson'));
    expect(missing.code).to.equal('BI_NOT_FOUND');
  });

  it('takes a key with `!` for a member only where what precedes the `!` names an archive', async () => {
    const { source } = await bucket({ 'wow!.json': '[1]', 'a.zip': await zipOf([{ name: 'x!y.ndjson', body: SONGS }]) });
    expect(await source.listKeys()).to.deep.equal(['wow!.json', 'a.zip!x!y.ndjson']);
    expect(await bodyOf(await source.fetch('wow!.json'))).to.equal('[1]');
    expect(await bodyOf(await source.fetch('a.zip!x!y.ndjson'))).to.equal(SONGS);
  });
});
