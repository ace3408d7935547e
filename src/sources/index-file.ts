import { IngestError } from '../errors.js';
import { invalidUtf8At } from '../utf8.js';

/**
 * The text of an index object: its bytes must be UTF-8 (keys are never altered, so no U+FFFD stands in for a byte
 * that is not) without NUL, else the listing fails with one BI_DECODE line naming the byte offset.
 */
export function indexText(bytes: Buffer, indexKey: string): string {
  const at = invalidUtf8At(bytes);
  if (at >= 0) {
    throw new IngestError('BI_DECODE', `index ${indexKey} is not UTF-8 (invalid byte 0x${(bytes[at] as number).toString(16).padStart(2, '0')} at byte ${at})`);
  }
  // No key can hold U+0000 (no text column of PostgreSQL can store it, and no object store names a key with it): an
  // index holding one is damaged, and is said to be rather than listed with a key no registry could record.
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new IngestError('BI_DECODE', `index ${indexKey} holds a NUL byte (U+0000) at byte ${nul}; no key can hold one`);
  return bytes.toString('utf8');
}

/**
 * Cleans the text of a bucket index into keys: one key per line, with `\r`, surrounding spaces and blank
 * lines dropped and duplicates removed, first occurrence kept so the bucket's order is the load order.
 *
 * @example cleanIndex(' a.data\r\n\r\nb.data\na.data') // ['a.data', 'b.data']
 */
export function cleanIndex(text: string): string[] {
  const seen = new Set<string>();
  const keys: string[] = [];
  for (const line of text.replace(/^\uFEFF/, '').split('\n')) {
    const key = line.trim();
    if (key === '' || seen.has(key)) continue;
    seen.add(key);
    keys.push(key);
  }
  return keys;
}
