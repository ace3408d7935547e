import picomatch from 'picomatch';
import { IngestError } from '../errors.js';
import { hexByte } from '../utf8.js';
import type { Route } from './routes.js';
import type { FormatName } from './types.js';

/**
 * FORMAT, or a FORMAT_OVERRIDES value: a format for every file it covers, `zip` (an archive, read as its members: see
 * sources/archive.ts), or `auto` (by extension, else content).
 */
export type FormatSetting = 'auto' | FormatName | 'zip';

export const FORMAT_SETTINGS: readonly FormatSetting[] = ['auto', 'json', 'ndjson', 'csv', 'tsv', 'parquet', 'zip'];

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

const EXTENSIONS: Record<string, FormatName | 'zip'> = { json: 'json', ndjson: 'ndjson', jsonl: 'ndjson', csv: 'csv', tsv: 'tsv', parquet: 'parquet', zip: 'zip' };

/** What separates an archive's key from its member's name in a member's key: `archive.zip!dir/member.csv`. */
export const MEMBER_SEPARATOR = '!';

/**
 * A member's key split into its archive's key and its name in the archive: at the first `!` whose left side is an
 * archive (by FORMAT_OVERRIDES, FORMAT or a `.zip` extension); null for a key that is no member. So a plain key with
 * a `!` in it is a plain key, unless what precedes the `!` names a ZIP archive.
 *
 * @example memberOf('a/b.zip!c/d.csv', rules) // { archive: 'a/b.zip', name: 'c/d.csv' }
 */
export function memberOf(key: string, rules: FormatRules): { archive: string; name: string } | null {
  for (let at = key.indexOf(MEMBER_SEPARATOR); at > 0; at = key.indexOf(MEMBER_SEPARATOR, at + 1)) {
    const archive = key.slice(0, at);
    if (isArchive(archive, rules)) return { archive, name: key.slice(at + 1) };
  }
  return null;
}

/** Whether a listed key is a ZIP archive, to be read as its members: by FORMAT_OVERRIDES, FORMAT, or a `.zip` extension. */
export function isArchive(key: string, rules: FormatRules): boolean {
  return formatOfKey(key, rules) === 'zip' && memberOf(key, rules) === null;
}

/**
 * What the key and the settings say of a file's format: that of the first FORMAT_OVERRIDES glob that matches the key,
 * else FORMAT; where that is `auto`, the key's extension (`.json`; `.ndjson`, `.jsonl`; `.csv`; `.tsv`; `.parquet`; each also with `.gz`, which says
 * nothing more: gzip is told by its magic bytes), else `auto`: the content decides (see {@link formatOfContent}).
 * `zip` is an archive (read as its members, never decoded itself). An archive's member (`a.zip!m.csv`) is matched by
 * the overrides on its whole key, and by its own extension; FORMAT=zip is for the archives, not their members.
 *
 * @example formatOfKey('logs/a.jsonl.gz', rules) // 'ndjson'
 */
export function formatOfKey(key: string, rules: FormatRules): FormatSetting {
  const glob = rules.overrides.find((o) => matcher(o.glob)(key))?.format;
  if (glob !== undefined && glob !== 'auto') return glob;
  if (glob === undefined && rules.format !== 'auto' && !(rules.format === 'zip' && key.includes(MEMBER_SEPARATOR) && memberOf(key, rules) !== null)) return rules.format;
  const name = key.slice(Math.max(key.lastIndexOf('/'), key.lastIndexOf(MEMBER_SEPARATOR)) + 1).toLowerCase();
  const parts = name.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === 'gz') parts.pop();
  const ext = parts.length > 1 ? (parts[parts.length - 1] as string) : '';
  return Object.hasOwn(EXTENSIONS, ext) ? (EXTENSIONS[ext] as FormatName | 'zip') : 'auto';
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
 * fail the file with BI_FORMAT (see {@link notReadAsArchive}). Anything else is read as a JSON array, whose error then
 * says what the body starts with.
 */
export function formatOfContent(key: string, head: Uint8Array): FormatName {
  if (startsWith(head, PAR1)) return 'parquet';
  if (startsWith(head, ZIP)) throw notReadAsArchive(key, `by its first bytes ${[...ZIP].map(hexByte).join(' ')}`);
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

/**
 * A ZIP archive found where a file was to be decoded: an archive's members are listed as files of their own, which
 * only happens to keys named as archives (`.zip`, FORMAT, FORMAT_OVERRIDES) when the bucket is listed; archives inside
 * an archive are not opened.
 */
export function notReadAsArchive(key: string, how: string): IngestError {
  const why = key.includes(MEMBER_SEPARATOR)
    ? 'a ZIP archive inside an archive is not opened'
    : 'an archive is read as its members only when its key names it one (a .zip extension, or FORMAT / FORMAT_OVERRIDES glob=zip)';
  return new IngestError('BI_FORMAT', `${key}: ZIP archive detected (${how}); ${why}`);
}
