import picomatch from 'picomatch';
import { IngestError } from '../errors.js';
import { hexByte } from '../utf8.js';
import type { Route } from './routes.js';
import type { FormatName } from './types.js';

/** FORMAT, or a FORMAT_OVERRIDES value: a format for every file it covers, or `auto` (by extension, else content). */
export type FormatSetting = 'auto' | FormatName;

export const FORMAT_SETTINGS: readonly FormatSetting[] = ['auto', 'json', 'ndjson', 'csv', 'tsv', 'parquet'];

/** FORMAT_OVERRIDES: glob=format pairs, the first glob that matches a key deciding its format. */
export interface FormatOverride {
  glob: string;
  format: FormatSetting;
}

/** What decoding needs of the settings: plain data, so it crosses to decoding threads. */
export interface FormatRules {
  format: FormatSetting;
  overrides: readonly FormatOverride[];
  /** MAX_FILE_MB in bytes: the cap on a body once decompressed, and on one line. */
  maxBytes: number;
  /** ROUTES: the record type of files without an envelope (CSV, TSV). */
  routes: readonly Route[];
  /** CSV_DELIMITER (TSV: always a tab). */
  csvDelimiter: string;
}

/** Formats the daemon recognises but does not read yet: such a file is recorded failed with BI_FORMAT, never skipped. */
const UNSUPPORTED: Record<string, string> = { zip: 'ZIP' };

const EXTENSIONS: Record<string, FormatName> = { json: 'json', ndjson: 'ndjson', jsonl: 'ndjson', csv: 'csv', tsv: 'tsv', parquet: 'parquet' };

/**
 * What the key and the settings say of a file's format: that of the first FORMAT_OVERRIDES glob that matches the key,
 * else FORMAT; where that is `auto`, the key's extension (`.json`; `.ndjson`, `.jsonl`; `.csv`; `.tsv`; `.parquet`; each also with `.gz`, which says
 * nothing more: gzip is told by its magic bytes), else `auto`: the content decides (see {@link formatOfContent}).
 * A known extension of a format not read yet (`.zip`) fails the file with BI_FORMAT.
 *
 * @example formatOfKey('logs/a.jsonl.gz', rules) // 'ndjson'
 */
export function formatOfKey(key: string, rules: FormatRules): FormatSetting {
  const told = rules.overrides.find((o) => matcher(o.glob)(key))?.format ?? rules.format;
  if (told !== 'auto') return told;
  const name = key.slice(key.lastIndexOf('/') + 1).toLowerCase();
  const parts = name.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === 'gz') parts.pop();
  const ext = parts.length > 1 ? (parts[parts.length - 1] as string) : '';
  if (Object.hasOwn(EXTENSIONS, ext)) return EXTENSIONS[ext] as FormatName;
  if (Object.hasOwn(UNSUPPORTED, ext)) throw unsupported(key, UNSUPPORTED[ext] as string, `by its extension .${ext}`);
  return 'auto';
}

const matchers = new Map<string, (key: string) => boolean>();

/** picomatch, as `reprocess` uses it (`dot: true`; `*` stops at `/`, `**` does not), compiled once per glob. */
export function matcher(glob: string): (key: string) => boolean {
  let m = matchers.get(glob);
  if (!m) matchers.set(glob, (m = picomatch(glob, { dot: true })));
  return m;
}

/**
 * The format of a (decompressed) body that neither key nor settings named, from its first bytes: after a byte order
 * mark and white space, `[` is a JSON array and `{` an NDJSON line; Parquet's magic bytes `PAR1` are Parquet; ZIP's
 * fail the file with BI_FORMAT. Anything else is read as a JSON array, whose error then says what the body starts with.
 */
export function formatOfContent(key: string, head: Uint8Array): FormatName {
  if (startsWith(head, PAR1)) return 'parquet';
  if (startsWith(head, ZIP)) throw unsupported(key, 'ZIP', `by its first bytes ${[...ZIP].map(hexByte).join(' ')}`);
  let i = startsWith(head, BOM) ? BOM.length : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x0a || head[i] === 0x0d || head[i] === 0x09)) i++;
  return head[i] === 0x7b ? 'ndjson' : 'json';
}

/**
 * Bytes of a stream's start that content detection looks at: white space before the first value is allowed to run
 * this long (a body of blank lines longer than this is read as a JSON array, and fails as one).
 */
export const HEAD_BYTES = 64 << 10;

const PAR1 = Buffer.from('PAR1');
const ZIP = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

function startsWith(head: Uint8Array, magic: Uint8Array): boolean {
  if (head.length < magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (head[i] !== magic[i]) return false;
  return true;
}

function unsupported(key: string, what: string, how: string): IngestError {
  return new IngestError('BI_FORMAT', `${key}: ${what} detected (${how}); ${what} files are not supported yet`);
}
