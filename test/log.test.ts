import { Writable } from 'node:stream';
import { expect } from 'chai';
import { createLogger, LOG_VALUE_MAX_CHARS, logValue } from '../src/log.js';
import { Telemetry } from '../src/telemetry.js';

/** A logger writing JSON lines into memory. */
function memoryLogger(): { telemetry: Telemetry; lines: () => string[] } {
  let text = '';
  const destination = new Writable({ write(chunk: Buffer, _enc, done) { text += chunk.toString(); done(); } });
  const telemetry = new Telemetry(createLogger({ level: 'info', format: 'json', destination }));
  return { telemetry, lines: () => text.split('\n').filter((l) => l !== '') };
}

describe('log lines', () => {
  it('carry at most LOG_VALUE_MAX_CHARS of a megabyte key, saying how much was left out (regression: the whole key, in every field)', () => {
    const { telemetry, lines } = memoryLogger();
    const key = `${'k'.repeat(1 << 20)}.data`;
    telemetry.fileFailed({ key, error: `BI_BAD_KEY: ${key}: not a key`, attempts: 1, nextAttemptAt: null });
    telemetry.claimFailed([key, 'other.data'], 'BI_DATABASE: gone');
    const [failed, claim] = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines().every((l) => l.length < 4 * LOG_VALUE_MAX_CHARS), 'line lengths').to.equal(true);
    const left = `…(${(1 << 20) + 5 - LOG_VALUE_MAX_CHARS} characters left out)…`;
    expect(failed?.key).to.equal(`${'k'.repeat(700)}${left}${'k'.repeat(295)}.data`);
    expect(failed?.error).to.match(/^BI_BAD_KEY: k+…\(\d+ characters left out\)…k+\.data: not a key$/);
    expect(failed?.msg).to.match(/^k+…\(\d+ characters left out\)…k+\.data: not a key\)$/);
    expect(claim?.keys).to.deep.equal([`${'k'.repeat(700)}${left}${'k'.repeat(295)}.data`, 'other.data']);
  });

  it('cut long values without splitting a character, and leave short ones alone', () => {
    expect(logValue('short http://u:p@h/x')).to.equal('short http://u:***@h/x');
    const emoji = '😀'.repeat(2000); // surrogate pairs: every cut point lands next to one
    const cut = logValue(emoji);
    expect(cut).to.not.match(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
    expect(cut).to.match(/^(😀)+…\(\d+ characters left out\)…(😀)+$/);
  });
});
