import { expect } from 'chai';
import { join } from 'node:path';
import { runCli, tempDir } from '../helpers/cli.js';
import { dumpSqlite } from '../helpers/tables.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

/** A file the pipeline must fail with BI_DECODE, and the one line its error must be. */
interface BadFile {
  key: string;
  body: Buffer;
  error: string;
  /** Text of the body that must not appear in any output (what a careless message would quote). */
  secret?: string;
}

/** About 1.2 MB of valid song records, so the file is streamed with STREAM_ABOVE_MB=1 and spans several batches. */
function padding(): string[] {
  return Array.from({ length: 12_000 }, (_, i) => JSON.stringify({ type: 'song', data: { artist_name: 'Pad', title: `t${i}`, year: 1, release: 'é東' } }));
}

/** `[padding…, <bad>, more padding]`, and the byte offset at which `bad` starts. */
function withPadding(bad: Buffer): { body: Buffer; at: number } {
  const records = padding();
  const head = Buffer.from(`[\n${records.slice(0, 11_000).join(',\n')},\n`);
  const tail = Buffer.from(`,\n${records.slice(11_000).join(',\n')}\n]\n`);
  return { body: Buffer.concat([head, bad, tail]), at: head.length };
}

function badUtf8(): BadFile {
  const prefix = Buffer.from('{"type":"song","data":{"artist_name":"A","title":"caf');
  const { body, at } = withPadding(Buffer.concat([prefix, Buffer.from([0xe9]), Buffer.from('","year":1,"release":"R"}}')]));
  return { key: 'latin1.data', body, error: `BI_DECODE: latin1.data: not UTF-8 (invalid byte 0xe9 at byte ${at + prefix.length})` };
}

/** A syntax error next to text JSON.parse's own message would quote, newline included. */
function syntaxError(): BadFile {
  const prefix = Buffer.from('{"type":"song","data":{"artist_name":"s3cr3t artist",\n"title":"t","year":');
  const { body, at } = withPadding(Buffer.concat([prefix, Buffer.from('x,\n"release":"s3cr3t release"}}')]));
  return { key: 'syntax.data', body, error: `BI_DECODE: syntax.data: not JSON (unexpected character at byte ${at + prefix.length})`, secret: 's3cr3t' };
}

/** Two records without a comma between them (the streamed path took them as two records). */
function missingComma(): BadFile {
  const record = '{"type":"song","data":{"artist_name":"A","title":"no comma","year":1,"release":"R"}}';
  const { body, at } = withPadding(Buffer.from(`${record}\n ${record}`));
  return { key: 'comma.data', body, error: `BI_DECODE: comma.data: not JSON (unexpected character at byte ${at + record.length + 2})` };
}

/** A body that ends inside a record (whole, as the server sent it). */
function cutShort(): BadFile {
  const { body } = withPadding(Buffer.from('{"type":"song","data":{"artist_name":"A","title":"cut'));
  const cut = body.subarray(0, body.lastIndexOf('"title":"cut') + 12);
  return { key: 'cut.data', body: cut, error: `BI_DECODE: cut.data: not JSON (unexpected end of the text at byte ${cut.length})` };
}

const GOOD = JSON.stringify([{ type: 'song', data: { artist_name: 'Good', title: 'g', year: 1, release: 'r' } }]);

/** The ways a body reaches the decoder: whole, streamed by size, streamed for want of a length. */
const PATHS: Array<{ name: string; env: Record<string, string>; chunked: boolean }> = [
  { name: 'whole', env: {}, chunked: false },
  { name: 'streamed (over STREAM_ABOVE_MB)', env: { STREAM_ABOVE_MB: '1' }, chunked: false },
  { name: 'streamed (no Content-Length)', env: {}, chunked: true },
];

/**
 * Bodies that are not a JSON array of UTF-8 records fail their file with BI_DECODE, one line naming where, through the
 * real pipeline (HTTP bucket, CLI, registry), on the whole-body and the streamed paths alike; `status` and `--dry-run`
 * print that line as it is.
 */
describe('files that cannot be decoded (integration)', function () {
  this.timeout(180_000);
  const bad: BadFile[] = [badUtf8(), syntaxError(), missingComma(), cutShort()];
  let bucket: TestBucket;
  let chunkedBucket: TestBucket;

  before(async () => {
    const files = { 'good.data': GOOD, ...Object.fromEntries(bad.map((f) => [f.key, f.body])) };
    bucket = await startTestBucket({ files });
    chunkedBucket = await startTestBucket({ files, chunked: Object.keys(files) });
  });
  after(async () => {
    await bucket.close();
    await chunkedBucket.close();
  });

  for (const path of PATHS) {
    it(`${path.name}: each file is recorded failed with BI_DECODE and one line saying where, the others load`, async () => {
      const t = await tempDir();
      try {
        const env = { BUCKET_URL: (path.chunked ? chunkedBucket : bucket).url, DATABASE_URL: 'sqlite://db.sqlite3', REGISTRY_PATH: 'registry.json', RETRY_FAILED_SECONDS: '3600', ...path.env };
        const dry = await runCli(['run', '--dry-run'], { cwd: t.dir, env });
        expect(dry.code, dry.stderr).to.equal(1);
        const run = await runCli(['run', '--once'], { cwd: t.dir, env });
        expect(run.code, run.stderr).to.equal(1);
        const status = await runCli(['status', '--json'], { cwd: t.dir, env });
        const failed = (JSON.parse(status.stdout) as { failed: Array<{ key: string; error: string }> }).failed;
        const text = await runCli(['status'], { cwd: t.dir, env });
        for (const f of bad) {
          expect(failed.find((e) => e.key === f.key)?.error, f.key).to.equal(f.error);
          expect(dry.stdout.split('\n'), f.key).to.include(`fail       ${f.key}: ${f.error} (new)`);
          expect(text.stdout.split('\n').some((line) => line.startsWith(`  ${f.key}: ${f.error} (attempts 1,`)), text.stdout).to.equal(true);
          if (f.secret !== undefined) for (const out of [dry, run, status, text]) expect(out.stdout + out.stderr).to.not.include(f.secret);
        }
        expect(failed.map((e) => e.key).sort()).to.deep.equal(bad.map((f) => f.key).sort());
        const tables = await dumpSqlite(join(t.dir, 'db.sqlite3'));
        expect(tables.songs!.map((row) => row.source_key)).to.deep.equal(['good.data']);
        expect(tables.rejected_records).to.deep.equal([]);
      } finally {
        await t.cleanup();
      }
    });
  }
});

/**
 * A record nested deeper than JSON.stringify can recurse is valid JSON: it is a stored rejection like any other
 * (it failed its file, streamed with `BI_DATABASE: Maximum call stack size exceeded`), on every path.
 */
describe('records nested 100,000 levels deep (integration)', function () {
  this.timeout(180_000);
  const depth = 100_000;
  const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
  const { body } = withPadding(Buffer.from(deep));
  let bucket: TestBucket;
  let chunkedBucket: TestBucket;

  before(async () => {
    bucket = await startTestBucket({ files: { 'deep.data': body } });
    chunkedBucket = await startTestBucket({ files: { 'deep.data': body }, chunked: ['deep.data'] });
  });
  after(async () => {
    await bucket.close();
    await chunkedBucket.close();
  });

  for (const path of PATHS) {
    it(`${path.name}: are stored as rejections with their raw JSON, and the file is done`, async () => {
      const t = await tempDir();
      try {
        const env = { BUCKET_URL: (path.chunked ? chunkedBucket : bucket).url, DATABASE_URL: 'sqlite://db.sqlite3', REGISTRY_PATH: 'registry.json', ...path.env };
        const run = await runCli(['run', '--once'], { cwd: t.dir, env });
        expect(run.code, run.stdout.slice(-2000)).to.equal(0);
        const tables = await dumpSqlite(join(t.dir, 'db.sqlite3'));
        expect(tables.songs).to.have.length(12_000);
        expect(tables.rejected_records!.map((r) => [r.record_index, r.type, r.reason])).to.deep.equal([[11_000, null, `record is not an object, got ${'['.repeat(59)}…`]]);
        expect(tables.rejected_records![0]!.raw).to.equal(deep);
      } finally {
        await t.cleanup();
      }
    });
  }
});
