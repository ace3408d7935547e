import { isUtf8 } from 'node:buffer';

/**
 * Where `bytes` stop being well-formed UTF-8 (RFC 3629): the offset of the first byte of the first ill-formed
 * sequence (a stray continuation byte, an overlong form, a surrogate, a code point past U+10FFFF, a sequence cut
 * short), or -1 when every byte is well-formed. `toString('utf8')` would turn such bytes into U+FFFD without a word;
 * callers fail the file instead, naming the offset.
 *
 * `isUtf8` (simdutf, several GB/s) answers for the whole input; the byte-by-byte walk runs only when it said no.
 *
 * @example invalidUtf8At(Buffer.from([0x61, 0xc3, 0xa9, 0xff])) // 3
 */
export function invalidUtf8At(bytes: Uint8Array): number {
  if (bytes.length === 0 || isUtf8(bytes)) return -1;
  for (let i = 0; i < bytes.length;) {
    const n = sequenceLength(bytes, i);
    if (n === 0) return i;
    i += n;
  }
  return -1; // not reached: isUtf8 said some byte is ill-formed
}

/** Bytes of the well-formed sequence starting at `i`, or 0 if none starts there. */
function sequenceLength(b: Uint8Array, i: number): number {
  const lead = b[i] as number;
  if (lead < 0x80) return 1;
  // Lead byte → total length and the allowed range of the second byte (RFC 3629, section 4); later bytes 80..BF.
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) n = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3;
    if (lead === 0xe0) lo = 0xa0; // no overlong forms
    if (lead === 0xed) hi = 0x9f; // no surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4;
    if (lead === 0xf0) lo = 0x90; // no overlong forms
    if (lead === 0xf4) hi = 0x8f; // nothing past U+10FFFF
  } else return 0;
  if (i + n > b.length) return 0;
  const second = b[i + 1] as number;
  if (second < lo || second > hi) return 0;
  for (let k = 2; k < n; k++) {
    const c = b[i + k] as number;
    if (c < 0x80 || c > 0xbf) return 0;
  }
  return n;
}

/** A byte for a message: `0xff`. */
export function hexByte(b: number): string {
  return `0x${b.toString(16).padStart(2, '0')}`;
}
