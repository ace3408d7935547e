import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { redactText } from '../src/redact.js';

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
    ];
    const times = await timeRedaction(inputs, 1 << 20, 10_000);
    for (const [i, ms] of times.entries()) expect(ms, `input ${JSON.stringify(inputs[i])}`).to.be.below(250);
  });

  it('still masks passwords and secret parameters in ordinary text', () => {
    expect(redactText('see postgres://app:tiger@db/x and http://u:p@h/b?token=x&y=1, ftp://nocreds/x'))
      .to.equal('see postgres://app:***@db/x and http://u:***@h/b?token=***&y=1, ftp://nocreds/x');
  });
});
