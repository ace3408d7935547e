import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { redactText, redactUrl } from '../src/redact.js';

const REDACT = pathToFileURL(resolve('src/redact.ts')).href;

/**
 * Milliseconds `redactText` takes over each `[head, unit]`: head, then the unit repeated to `length` characters, measured in a child process
 * that is killed after `killMs`: a backtracking regression then fails this test instead of holding the whole run
 * (a quadratic pattern took minutes on one megabyte).
 */
function timeRedaction(inputs: Array<[string, string]>, length: number, killMs: number): Promise<number[]> {
  const code = `
    const { redactText } = await import(${JSON.stringify(REDACT)});
    const inputs = ${JSON.stringify(inputs)}.map(([head, u]) => (head + u.repeat(Math.ceil(${length} / u.length))).slice(0, ${length}));
    const times = inputs.map((s) => { const t = performance.now(); redactText(s); return performance.now() - t; });
    process.stdout.write(JSON.stringify(times));`;
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: killMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(err.killed ? `redaction did not finish within ${killMs} ms` : `${err.message}\n${stderr}`));
      else resolvePromise(JSON.parse(stdout) as number[]);
    });
  });
}

describe('redactText', () => {
  it('takes well under a second on a megabyte of URL characters, whatever their shape (regression: quadratic, minutes)', async function () {
    this.timeout(20_000);
    // 1 MB each: runs of scheme characters, of `://`, of user-info without an `@`, of colons, of query parameters.
    const inputs: Array<[string, string]> = [
      ['', 'a'],
      ['', 'a://'],
      ['', 'http://u:'],
      ['http://', 'u'],
      ['http://u:', 'p'],
      ['', ':'],
      ['', '@'],
      ['', 'x?password='],
      ['', 'postgres://user:pa'],
      ['', 'postgres://user:password@db/x '],
      ['', 'aws_session_token= '],
      ['', 'AWS_SECRET_ACCESS_KEY'],
    ];
    const times = await timeRedaction(inputs, 1 << 20, 10_000);
    for (const [i, ms] of times.entries()) expect(ms, `input ${JSON.stringify(inputs[i])}`).to.be.below(250);
  });

  it('still masks passwords and secret parameters in ordinary text', () => {
    expect(redactText('see postgres://app:tiger@db/x and http://u:p@h/b?token=x&y=1, ftp://nocreds/x'))
      .to.equal('see postgres://app:***@db/x and http://u:***@h/b?token=***&y=1, ftp://nocreds/x');
  });
});

describe('masking AWS secrets', () => {
  const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY+x=';
  const token = 'FwoGZXIvYXdzEFQaDEXAMPLE//TOKEN+/=';
  it('masks AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN as variables, credentials-file lines and headers', () => {
    const texts = [
      `AWS_SECRET_ACCESS_KEY=${secret} AWS_SESSION_TOKEN=${token}`,
      `[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = ${secret}\naws_session_token=${token}\n`,
      `{"aws_secret_access_key": "${secret}", "aws_session_token": "${token}"}`,
      `x-amz-security-token: ${token}`,
      `https://b.s3.amazonaws.com/k?X-Amz-Security-Token=${encodeURIComponent(token)}&X-Amz-Signature=abc`,
    ];
    for (const text of texts) {
      const out = redactText(text);
      for (const s of [secret, token, encodeURIComponent(token), 'abc']) expect(out, text).to.not.contain(s);
      expect(out).to.contain('***');
    }
    // The key id is no secret: it stays, so a person can tell which key was used.
    expect(redactText(texts[1] as string)).to.contain('aws_access_key_id = AKIAEXAMPLE');
  });
});

describe('masking passwords of every shape', () => {
  // `@ : / ? # %` and non-ASCII, raw and percent-encoded; every piece starts with QX, which nothing else holds.
  const passwords = ['QXp@ss:w/rd', 'QXa@QXb@QXc:QXd', 'QX?token=QXe&QXf', 'QX#QXg/QXh', 'QX50%QXoff%4', 'QX%40QX%3A', 'QXpässwörd-密码-🔑', 'QX@:/?#%ü'];
  for (const password of passwords) {
    for (const pw of [password, encodeURIComponent(password)]) {
      it(`masks ${JSON.stringify(pw)} up to the last @ of the authority, in text and as one URL`, () => {
        for (const [url, shown] of [
          [`postgres://ingest:${pw}@db:5432/x?schema=s`, 'postgres://ingest:***@db:5432/x?schema=s'],
          [`http://reader:${pw}@127.0.0.1:8080/bucket/`, 'http://reader:***@127.0.0.1:8080/bucket/'],
          [`mysql://root:${pw}@127.0.0.1:3306/test`, 'mysql://root:***@127.0.0.1:3306/test'],
        ] as const) {
          expect(redactText(`cannot open ${url}: ECONNREFUSED\n  at ${url}`)).to.equal(`cannot open ${shown}: ECONNREFUSED\n  at ${shown}`);
          expect(redactUrl(url)).to.contain(shown.slice(0, shown.indexOf('@') + 1));
          expect(redactUrl(url)).to.not.contain('QX');
        }
      });
    }
  }

  it('masks a password holding a space when the whole string is one URL', () => {
    expect(redactUrl('postgres://ingest:QX a@b@db/x')).to.equal('postgres://ingest:***@db/x');
  });

  it('masks a lone user-info (a token) except in database URLs, where it is the role', () => {
    expect(redactText('GET https://QXtoken@github.com/x failed')).to.equal('GET https://***@github.com/x failed');
    expect(redactText('postgres://postgres@127.0.0.1:5432/test and mysql://root@db/x')).to.equal('postgres://postgres@127.0.0.1:5432/test and mysql://root@db/x');
    expect(redactText('file:///srv/a@b/bucket')).to.equal('file:///srv/a@b/bucket'); // no authority at all
  });
});
