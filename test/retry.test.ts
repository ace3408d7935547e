import { expect } from 'chai';
import { IngestError } from '../src/errors.js';
import { backoffDelay, parseRetryAfter, withRetries } from '../src/sources/retry.js';

const policy = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000 };

describe('retry timing', () => {
  it('uses full jitter under an exponential ceiling', () => {
    expect(backoffDelay(policy, 1, undefined, () => 1)).to.equal(100);
    expect(backoffDelay(policy, 3, undefined, () => 1)).to.equal(400);
    expect(backoffDelay(policy, 3, undefined, () => 0.5)).to.equal(200);
    expect(backoffDelay(policy, 10, undefined, () => 1)).to.equal(1000);
    expect(backoffDelay(policy, 2, undefined, () => 0)).to.equal(0);
  });

  it('treats Retry-After as a floor, still capped', () => {
    expect(backoffDelay(policy, 1, 700, () => 0)).to.equal(700);
    expect(backoffDelay(policy, 1, 60_000, () => 0)).to.equal(1000);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).to.equal(3000);
    expect(parseRetryAfter('0.5')).to.equal(500);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).to.equal(5000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).to.equal(0);
    expect(parseRetryAfter('soon')).to.equal(undefined);
    expect(parseRetryAfter(undefined)).to.equal(undefined);
  });

  it('retries retriable errors up to maxAttempts and reports each retry', async () => {
    const retries: number[] = [];
    let calls = 0;
    const err = await withRetries({ ...policy, baseDelayMs: 1 }, async () => {
      calls++;
      throw new IngestError('BI_NETWORK', 'boom', { retriable: true });
    }, (info) => retries.push(info.attempt)).catch((e: unknown) => e);
    expect(calls).to.equal(4);
    expect(retries).to.deep.equal([1, 2, 3]);
    expect((err as IngestError).message).to.equal('boom (after 4 attempts)');
  });

  it('does not retry a non-retriable error', async () => {
    let calls = 0;
    await withRetries(policy, async () => {
      calls++;
      throw new IngestError('BI_NOT_FOUND', 'gone');
    }, () => undefined).catch(() => undefined);
    expect(calls).to.equal(1);
  });

  it('returns the first success', async () => {
    let calls = 0;
    const value = await withRetries({ ...policy, baseDelayMs: 1 }, async () => {
      if (++calls < 3) throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
      return 'ok';
    }, () => undefined);
    expect(value).to.equal('ok');
    expect(calls).to.equal(3);
  });
});
