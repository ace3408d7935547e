import { parquetMetadata } from 'hyparquet';
import { IngestError } from '../errors.js';
import type { FormatRules } from './detect.js';
import { gunzipWhole, isGzip } from './gzip.js';

/**
 * Whether a body small enough to be read whole (at most STREAM_ABOVE_MB) may also be decoded whole, which holds all
 * its records at once: a compressed body can hold far more than its bytes (gzip text; Parquet's encoded columns, a
 * million rows in a few MB), so memory would follow what the file holds, not the settings. Returns the body to decode
 * whole (gunzipped already if it was gzip, so that is not done twice), or null when what it holds passes `limit`
 * bytes: it is then streamed (decodeStream), in batches, as a large file is.
 *
 * A gzip body is decompressed up to `limit` bytes (beyond that, streaming decompresses it again: at most `limit` bytes
 * are done twice); a Parquet body is weighed from its footer (its rows and columns, see parquetBytes). A body
 * that is neither, or whose footer cannot be read (decoding then says why), is decoded whole as it is.
 */
export async function wholeBody(key: string, body: Buffer, rules: FormatRules, limit: number): Promise<Buffer | null> {
  let text = body;
  if (isGzip(body)) {
    try {
      text = await gunzipWhole(key, body, Math.min(limit, rules.maxBytes));
    } catch (err) {
      // Past `limit` but maybe not past MAX_FILE_MB: the streamed gunzip holds to that cap.
      if (err instanceof IngestError && err.code === 'BI_BODY_TOO_LARGE' && limit < rules.maxBytes) return null;
      throw err;
    }
    // gzip inside gzip: decoding takes one layer off, whole or streamed, and then fails on what it finds.
    if (isGzip(text)) return body;
  }
  return parquetBytes(text) > limit ? null : text;
}

/**
 * About what a JSON text spends on one value (`"year":1999,`): a Parquet body is weighed as this many bytes per value,
 * since its encoded columns (no names, binary numbers, dictionaries) hold several times more values per byte.
 */
const BYTES_PER_VALUE = 32;

/**
 * What a Parquet body weighs once decoded, in the bytes of JSON text that would hold as much: its values at
 * BYTES_PER_VALUE each, or its column data uncompressed if that is more (long strings). 0 if it is not Parquet, or
 * its footer is unreadable.
 */
function parquetBytes(body: Buffer): number {
  if (body.length < 12 || body.toString('latin1', 0, 4) !== 'PAR1' || body.toString('latin1', body.length - 4) !== 'PAR1') return 0;
  try {
    const metadata = parquetMetadata(body.buffer.slice(body.byteOffset, body.byteOffset + body.length) as ArrayBuffer);
    let bytes = 0;
    for (const g of metadata.row_groups) bytes += Math.max(Number(g.total_byte_size), Number(g.num_rows) * g.columns.length * BYTES_PER_VALUE);
    return bytes;
  } catch {
    return 0;
  }
}
