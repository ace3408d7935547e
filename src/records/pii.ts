import { createHmac } from 'node:crypto';

/**
 * Personal data (`x-pii: "hash"` in a schema): a value is stored as its keyed HMAC-SHA256, in lower-case hex, never
 * as itself. Keyed, so the hashes of a small value space (emails, phone numbers) cannot be looked up in a table made
 * without the key; deterministic, so the same value always gives the same hash and upserts and erasures still match.
 * The value is hashed exactly as sent (its UTF-8 bytes): `Maria@x.com` and `maria@x.com` are different values.
 */
export function hashPii(key: string, value: string): string {
  return createHmac('sha256', key).update(value, 'utf8').digest('hex');
}

/** Length of a stored hash (the column of a hashed property holds exactly this). */
export const PII_HASH_LENGTH = 64;
