import { setTimeout as sleep } from 'node:timers/promises';
import { describeError, isRetriable, IngestError } from '../errors.js';

export interface RetryPolicy {
  /** Total attempts, the first included. */
  maxAttempts: number;
  /** Base of the exponential backoff, in ms. */
  baseDelayMs: number;
  /** Cap of one wait, in ms (a longer `Retry-After` is capped too, so a server cannot park us for hours). */
  maxDelayMs: number;
}

/**
 * Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"): a uniform
 * random wait in [0, min(cap, base * 2^(attempt-1))]. A server's `Retry-After` is a floor.
 *
 * Hand-written because p-retry and cockatiel cannot take a per-attempt delay dictated by the server; the
 * timing rule itself is three lines.
 */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterMs?: number, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = Math.round(random() * ceiling);
  return Math.min(policy.maxDelayMs, Math.max(jittered, retryAfterMs ?? 0));
}

/** Parses `Retry-After` (delta-seconds or an HTTP date) into milliseconds from now. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Runs `attempt` until it succeeds, throws a non-retriable error, or `maxAttempts` are spent. The last
 * error is rethrown with the number of attempts in its message.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (n: number) => Promise<T>,
  onRetry: (info: { attempt: number; delayMs: number; reason: string }) => void,
  signal?: AbortSignal,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!isRetriable(err) || n >= policy.maxAttempts || signal?.aborted) {
        if (n > 1 && err instanceof IngestError) {
          throw new IngestError(err.code, `${err.message} (after ${n} attempts)`, { retriable: err.retriable, cause: err.cause });
        }
        throw err;
      }
      const retryAfter = err instanceof IngestError ? err.retryAfterMs : undefined;
      const delayMs = backoffDelay(policy, n, retryAfter);
      onRetry({ attempt: n, delayMs, reason: describeError(err) });
      await sleep(delayMs, undefined, signal ? { signal } : undefined).catch(() => undefined);
    }
  }
}
