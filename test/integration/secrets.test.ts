import { cpSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { events, runCli, startCli, tempDir, until } from '../helpers/cli.js';
import { startTestBucket, type TestBucket } from '../helpers/test-bucket.js';

const SAMPLE = resolve('examples/sample-bucket');

/**
 * Password shapes that break naive masking: every character a URL gives a meaning to (`@ : / ? # %`) and
 * characters outside ASCII. Each piece starts with `QX`, which nothing else prints, so a leaked fragment of a
 * password (`ss:w/rd`), raw or percent-encoded, is caught as surely as the whole.
 */
const PASSWORDS = [
  'QXp@ss:w/rd', // the issue's: printed as `ingest:***@ss:w/rd@…`
  'QXa@QXb@QXc:QXd',
  'QX?token=QXe&QXf',
  'QX#QXg/QXh',
  'QX50%QXoff%4',
  'QXpässwörd-密码-🔑',
  'QX@:/?#%ü QX', // everything at once, a space included
];

describe('passwords in URLs, of every shape, never printed (integration)', function () {
  this.timeout(120_000);
  let dir: string;
  let cleanup: () => Promise<void>;
  let bucket: TestBucket;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    bucket = await startTestBucket({ files: { 'a.data': '[]', 'broken.data': '[]' }, broken: ['broken.data'] });
  });
  afterEach(async () => {
    await bucket.close();
    await cleanup();
  });

  for (const password of PASSWORDS) {
    it(`masks ${JSON.stringify(password)} in logs, errors, status, /metrics and --dry-run`, async () => {
      const encoded = encodeURIComponent(password);
      const outputs: string[] = [];
      const cli = async (args: string[], env: Record<string, string>) => {
        const r = await runCli(args, { cwd: dir, env });
        outputs.push(`$ ${args.join(' ')}\n${r.stdout}${r.stderr}`);
        return r;
      };
      const bucketUrl = bucket.url.replace('http://', `http://reader:${encoded}@`);
      const pgUrl = `postgres://ingest:${encoded}@127.0.0.1:9/ingest`; // nothing listens on port 9

      // Logs and /metrics of a running daemon (one file fails, so FileError is logged too).
      const daemon = startCli(['run'], {
        cwd: dir, env: { BUCKET_URL: bucketUrl, HTTP_PORT: '0', POLL_INTERVAL_SECONDS: '0.2', MAX_ATTEMPTS: '1', RETRY_FAILED_SECONDS: '3600' },
      });
      const port = await until(() => events(daemon.output()).find((e) => e.event === 'HttpListening')?.port as number | undefined);
      await until(() => (events(daemon.output()).some((e) => e.event === 'CycleFinished') ? true : undefined));
      for (const path of ['/metrics', '/readyz', '/healthz', '/api/files?status=failed']) {
        outputs.push(`GET ${path}\n${await (await fetch(`http://127.0.0.1:${port}${path}`)).text()}`);
      }
      daemon.child.kill('SIGTERM');
      const stopped = await daemon.finished;
      outputs.push(`$ run\n${stopped.stdout}${stopped.stderr}`);
      expect(stopped.code, stopped.stderr).to.equal(0);
      expect(stopped.stdout).to.contain('reader:***@127.0.0.1').and.contain('"event":"FileError"');

      await cli(['status'], { BUCKET_URL: bucketUrl });
      await cli(['status', '--json'], { BUCKET_URL: bucketUrl });

      // --dry-run names the database it would write to, without opening it.
      const dry = await cli(['run', '--dry-run'], { BUCKET_URL: bucketUrl, DATABASE_URL: pgUrl, REGISTRY: 'json' });
      expect(dry.stdout).to.contain('database postgres://ingest:***@127.0.0.1:9/ingest');
      await cli(['run', '--dry-run', '--json'], { BUCKET_URL: bucketUrl, DATABASE_URL: pgUrl, REGISTRY: 'json' });

      // Errors: the password as typed (unencoded), in the bucket and in the database URL, with and without --verbose.
      const rawBucket = await cli(['run', '--once', '--verbose'], { BUCKET_URL: bucket.url.replace('http://', `http://reader:${password}@`) });
      expect(rawBucket.code).to.not.equal(0);
      cpSync(SAMPLE, join(dir, 'sample'), { recursive: true });
      for (const url of [pgUrl, pgUrl.replace(encoded, password)]) {
        const r = await cli(['run', '--once'], { BUCKET_URL: join(dir, 'sample'), DATABASE_URL: url });
        expect(r.code).to.equal(2);
        expect(r.stderr).to.match(/^bucket-ingest: BI_(DATABASE|CONFIG): .*postgres:\/\/ingest:\*\*\*@127\.0\.0\.1:9\/ingest/);
        await cli(['run', '--once', '--verbose'], { BUCKET_URL: join(dir, 'sample'), DATABASE_URL: url });
      }

      for (const out of outputs) expect(out).to.not.contain('QX');
    });
  }
});
