import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import pLimit from 'p-limit';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { describeError, IngestError } from '../errors.js';
import { isArchive, memberOf, MEMBER_SEPARATOR, type FormatRules } from '../formats/detect.js';
import { capBytes } from '../formats/gzip.js';
import type { FetchedObject, FetchOptions, ListedObject, ListOptions, NotModified, ObjectVersion, Source, StreamedObject } from './types.js';

export interface ArchiveOptions {
  /** Which keys are archives (FORMAT, FORMAT_OVERRIDES, `.zip`): see formats/detect.ts. */
  rules: FormatRules;
  /** MAX_FILE_MB in bytes: a member whose uncompressed size is larger is refused, not extracted (zip bombs). */
  maxBytes: number;
  /** STREAM_ABOVE_MB in bytes: a larger member is handed on as a stream, as a large file is. */
  streamAboveBytes: number;
  /** Archives read at once while the bucket is listed. */
  concurrency: number;
  /** ARCHIVE_CACHE_MB in bytes: local copies of archives kept for reading their members, least recently used dropped. */
  cacheBytes: number;
}

/** A file in an archive, as its central directory tells it. */
interface Member {
  entry: Entry;
  /** The member's version: its CRC-32 and uncompressed size, so an archive rebuilt around it does not reload it. */
  version: ObjectVersion;
  /** Why the member is not read (its path escapes, it is too large, encrypted, a link): its fetch fails with this. */
  refused: IngestError | null;
}

/** A local copy of an archive, open for reading its members. */
interface Copy {
  path: string;
  zip: ZipFile;
  bytes: number;
}

/** What is known of one archive of the bucket. */
interface Archive {
  version: ObjectVersion;
  /** Its members by name, in the order of its central directory; empty when the archive cannot be read. */
  members: Map<string, Member>;
  /** Why the archive cannot be read (corrupt, cut short, not a ZIP): the archive's own key is then listed, and fails. */
  error: IngestError | null;
  copy: Copy | null;
  usedAt: number;
}

/**
 * ZIP archives read as the files they hold. Wraps a bucket's source: its listing shows every member of an archive as a
 * key of its own, `archive.zip!dir/member.csv`, which the registry then loads, rejects, fails and reprocesses like any
 * file; every other key passes through as it was.
 *
 * - To list an archive's members, the archive is fetched once (into a temporary copy, so memory stays bounded by the
 *   stream, not the archive) and its central directory read; later listings ask the source whether it changed (a
 *   conditional GET, a `stat`) and list the members known. A member's version is its CRC-32 and size, so only the
 *   members that changed in a changed archive are loaded again.
 * - A member is refused, and recorded failed under its key with the reason, when its path escapes the archive (`../`,
 *   absolute), its uncompressed size passes MAX_FILE_MB (a zip bomb; the size read is also capped, as a declared size
 *   can lie), it is encrypted, a symbolic link, compressed by a method other than stored and deflate, or its name
 *   appears twice. A directory entry is no file and is not listed.
 * - An archive that cannot be read (corrupt, cut short) is listed as its own key, whose fetch fails with BI_ARCHIVE: the
 *   archive is recorded failed and retried as a file is; the daemon and the other files go on.
 * - Copies are kept up to ARCHIVE_CACHE_MB (the least recently used dropped, and fetched again when a member needs
 *   it), and removed when the archive changes, leaves the listing or the source closes.
 */
export class ArchiveSource implements Source {
  readonly description: string;
  private readonly archives = new Map<string, Archive>();
  /** Archives being fetched, so members asked for at once share one download. */
  private readonly reading = new Map<string, Promise<Archive>>();
  private dir: Promise<string> | null = null;
  private copies = 0;
  private clock = 0;

  /** Present where the bucket's source lists page by page (S3): each archive of a page as its members. */
  readonly listObjects?: (opts?: ListOptions) => AsyncIterable<ListedObject[]>;
  /**
   * Present where the bucket's source can delete (AFTER_LOAD). An archive's members are not files of the bucket, so
   * nothing is done for them; the archive stays.
   */
  readonly afterLoad?: (key: string, action: { kind: 'delete' } | { kind: 'move'; prefix: string }, signal?: AbortSignal) => Promise<void>;

  constructor(private readonly inner: Source, private readonly opts: ArchiveOptions) {
    this.description = inner.description;
    if (inner.listObjects) {
      const pages = inner.listObjects.bind(inner);
      this.listObjects = (o?: ListOptions) => this.expandPages(pages(o), o?.signal);
    }
    if (inner.afterLoad) {
      const act = inner.afterLoad.bind(inner);
      this.afterLoad = async (key, action, signal) => {
        if (memberOf(key, this.opts.rules) === null) await act(key, action, signal);
      };
    }
  }

  /**
   * A listing's pages with each archive in them as its members: the archive read when its listed ETag and size are
   * not those of the copy read before (so an unchanged archive costs no request), each member listed with its own
   * version and the archive's LastModified.
   */
  private async *expandPages(pages: AsyncIterable<ListedObject[]>, signal?: AbortSignal): AsyncGenerator<ListedObject[]> {
    for await (const page of pages) {
      if (!page.some((o) => isArchive(o.key, this.opts.rules))) {
        yield page;
        continue;
      }
      const out: ListedObject[] = [];
      for (const o of page) {
        if (!isArchive(o.key, this.opts.rules)) {
          out.push(o);
          continue;
        }
        const known = this.archives.get(o.key);
        const same = known !== undefined && o.etag !== null && known.version.etag === o.etag && known.version.size === o.size;
        const keys = same ? keysOf(o.key, known) : await this.membersOf(o.key, signal, true);
        const archive = this.archives.get(o.key);
        for (const key of keys) {
          const m = archive?.members.get(key.slice(o.key.length + 1));
          out.push(m && key !== o.key ? { key, etag: m.version.etag, size: m.version.size, lastModified: o.lastModified } : { ...o, key });
        }
      }
      yield out;
    }
  }

  async listKeys(signal?: AbortSignal): Promise<string[]> {
    const keys = await this.inner.listKeys(signal);
    const archives = keys.filter((k) => isArchive(k, this.opts.rules));
    if (archives.length === 0 && this.archives.size === 0) return keys;
    const limit = pLimit(this.opts.concurrency);
    const listed = new Map<string, string[]>();
    await Promise.all(archives.map((key) => limit(async () => listed.set(key, await this.membersOf(key, signal)))));
    const gone = [...this.archives.keys()].filter((k) => !listed.has(k));
    for (const key of gone) this.forget(key);
    return keys.flatMap((k) => listed.get(k) ?? [k]);
  }

  /** Each archive among `keys` as its members (read anew if it changed), the other keys as they are. */
  async expand(keys: readonly string[], signal?: AbortSignal): Promise<string[]> {
    const out: string[] = [];
    for (const key of keys) {
      if (isArchive(key, this.opts.rules)) out.push(...(await this.membersOf(key, signal)));
      else out.push(key);
    }
    return out;
  }

  keyOfObject(bucket: string | null, objectKey: string): string | null {
    return this.inner.keyOfObject ? this.inner.keyOfObject(bucket, objectKey) : objectKey;
  }

  fetch(key: string, opts: FetchOptions = {}): Promise<FetchedObject | StreamedObject | NotModified> {
    const member = memberOf(key, this.opts.rules);
    if (member !== null) return this.fetchMember(key, member.archive, member.name, opts);
    if (isArchive(key, this.opts.rules)) return this.fetchArchive(key, opts.signal);
    return this.inner.fetch(key, opts);
  }

  async close(): Promise<void> {
    for (const key of [...this.archives.keys()]) this.forget(key);
    const dir = this.dir;
    this.dir = null;
    if (dir) await rm(await dir, { recursive: true, force: true }).catch(() => undefined);
    await this.inner.close();
  }

  /**
   * The keys an archive is listed as: its members', or its own while it cannot be read. A failure to fetch it leaves
   * what was known (or its own key, whose fetch then fails and is recorded) for this cycle.
   */
  private async membersOf(key: string, signal?: AbortSignal, fresh = false): Promise<string[]> {
    const known = this.archives.get(key);
    let archive: Archive | 'unchanged';
    try {
      archive = await this.read(key, fresh ? undefined : known?.version, signal);
    } catch (err) {
      if (err instanceof IngestError && err.code === 'BI_SHUTDOWN') throw err;
      return known ? keysOf(key, known) : [key];
    }
    if (archive === 'unchanged') {
      // Its members were fetched (or failed) in the cycle that read it: the copy is dropped, and made again on demand.
      this.dropCopy(known as Archive);
      return keysOf(key, known as Archive);
    }
    return keysOf(key, archive);
  }

  /** The archive's own key is listed only while it cannot be read: fetching it tells why, or that it can be now. */
  private async fetchArchive(key: string, signal?: AbortSignal): Promise<never> {
    const archive = await this.read(key, undefined, signal);
    if (archive === 'unchanged') throw new Error('unreachable: read without a known version');
    if (archive.error) throw archive.error;
    throw new IngestError('BI_ARCHIVE', `${key}: the archive is readable now; its ${archive.members.size} member(s) are listed as files from the next cycle`, { retriable: true });
  }

  private async fetchMember(key: string, archiveKey: string, name: string, opts: FetchOptions): Promise<FetchedObject | StreamedObject | NotModified> {
    let archive = this.archives.get(archiveKey) ?? (await this.readFresh(archiveKey, opts.signal));
    let member = archive.members.get(name);
    // A member known, and its version unchanged: nothing to read (the listing asked whether the archive changed).
    if (member && member.refused === null && sameVersion(member.version, opts.known)) return { notModified: true, ...member.version };
    if (archive.copy === null) {
      archive = await this.readFresh(archiveKey, opts.signal);
      member = archive.members.get(name);
    }
    if (archive.error) throw new IngestError('BI_ARCHIVE', `${key}: ${archive.error.message}`, { cause: archive.error });
    if (!member) throw new IngestError('BI_NOT_FOUND', `${key}: no member ${JSON.stringify(name)} in the archive ${archiveKey}`);
    if (member.refused) throw member.refused;
    if (sameVersion(member.version, opts.known)) return { notModified: true, ...member.version };
    archive.usedAt = ++this.clock;
    const size = member.entry.uncompressedSize;
    const stream = await openMember(key, (archive.copy as Copy).zip, member.entry);
    // yauzl checks the size read against the declared one too; the cap makes sure of it before anything is kept.
    const over = (n: number): IngestError => new IngestError('BI_ARCHIVE', `${key}: more than the ${size} bytes its archive declares (${n} read); refused`);
    const expected = member.entry.crc32;
    async function* extracted(): AsyncGenerator<Buffer> {
      try {
        let crc = 0;
        for await (const chunk of capBytes(stream, size, over)) {
          crc = crc32(chunk, crc);
          yield chunk;
        }
        if (crc !== expected) throw new IngestError('BI_ARCHIVE', `${key}: corrupt (CRC-32 ${hex8(crc)} of the data read, ${hex8(expected)} declared)`);
      } catch (err) {
        stream.destroy();
        throw memberError(key, err);
      }
    }
    if (size > this.opts.streamAboveBytes) {
      return { ...member.version, stream: Object.assign(extracted(), { destroy: (error?: Error) => stream.destroy(error) }) };
    }
    const chunks: Buffer[] = [];
    for await (const chunk of extracted()) chunks.push(chunk);
    return { ...member.version, body: Buffer.concat(chunks) };
  }

  /** The archive fetched anew (its copy was dropped, or this process never listed it): one download for all who ask. */
  private async readFresh(key: string, signal?: AbortSignal): Promise<Archive> {
    let pending = this.reading.get(key);
    if (!pending) {
      pending = this.read(key, undefined, signal).then((a) => a as Archive);
      this.reading.set(key, pending);
      void pending.finally(() => this.reading.delete(key)).catch(() => undefined);
    }
    return pending;
  }

  /**
   * Fetches an archive unless `known` is still its version, copies it to a temporary file, reads its central
   * directory, and keeps what it found (replacing what was known).
   */
  private async read(key: string, known: ObjectVersion | undefined, signal?: AbortSignal): Promise<Archive | 'unchanged'> {
    const got = await this.inner.fetch(key, { known, signal });
    if ('notModified' in got) return 'unchanged';
    const path = join(await this.tempDir(), `${++this.copies}.zip`);
    let archive: Archive;
    try {
      if ('stream' in got) {
        try {
          await pipeline(got.stream as AsyncIterable<Buffer>, createWriteStream(path));
        } catch (err) {
          got.stream.destroy();
          throw err;
        }
      } else {
        await writeFile(path, got.body);
      }
      const version = { etag: got.etag, size: got.size };
      archive = await this.open(key, path, version);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    this.forget(key);
    this.archives.set(key, archive);
    this.evict(key);
    return archive;
  }

  /** Opens a copy and reads its central directory; an archive that cannot be read is kept with its error, no copy. */
  private async open(key: string, path: string, version: ObjectVersion): Promise<Archive> {
    let zip: ZipFile;
    try {
      zip = await openZip(path);
    } catch (err) {
      await rm(path, { force: true });
      return { version, members: new Map(), error: unreadable(key, err), copy: null, usedAt: ++this.clock };
    }
    try {
      const members = await readDirectory(key, zip, this.opts.maxBytes);
      return { version, members, error: null, copy: { path, zip, bytes: zip.fileSize }, usedAt: ++this.clock };
    } catch (err) {
      zip.close();
      await rm(path, { force: true });
      return { version, members: new Map(), error: unreadable(key, err), copy: null, usedAt: ++this.clock };
    }
  }

  /** Drops the least recently used copies (never `keep`'s) while the copies pass ARCHIVE_CACHE_MB. */
  private evict(keep: string): void {
    const held = [...this.archives.entries()].filter(([k, a]) => a.copy !== null && k !== keep).sort((a, b) => a[1].usedAt - b[1].usedAt);
    let bytes = [...this.archives.values()].reduce((n, a) => n + (a.copy?.bytes ?? 0), 0);
    for (const [, archive] of held) {
      if (bytes <= this.opts.cacheBytes) break;
      bytes -= archive.copy?.bytes ?? 0;
      this.dropCopy(archive);
    }
  }

  private forget(key: string): void {
    const archive = this.archives.get(key);
    if (!archive) return;
    this.dropCopy(archive);
    this.archives.delete(key);
  }

  /** Closes and removes a copy; members being read keep reading (the file stays open until they are done). */
  private dropCopy(archive: Archive): void {
    const copy = archive.copy;
    if (!copy) return;
    archive.copy = null;
    copy.zip.close();
    void rm(copy.path, { force: true }).catch(() => undefined);
  }

  private tempDir(): Promise<string> {
    this.dir ??= mkdtemp(join(tmpdir(), 'bucket-ingest-zip-'));
    return this.dir;
  }
}

function keysOf(key: string, archive: Archive): string[] {
  if (archive.error) return [key];
  return [...archive.members.keys()].map((name) => `${key}${MEMBER_SEPARATOR}${name}`);
}

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

const sameVersion = (v: ObjectVersion, known: ObjectVersion | undefined): boolean =>
  known !== undefined && v.etag !== null && known.etag === v.etag && known.size === v.size;

/** yauzl's name decoding (UTF-8 flag, Info-ZIP Unicode path, CP437; `\` read as `/`), which its types do not declare. */
const getFileName = (yauzl as unknown as { getFileNameLowLevel(flags: number, raw: Buffer, extra: Entry['extraFields'], strict: boolean): string }).getFileNameLowLevel;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g;

/**
 * The members of an archive by name, each with its version, or why it is refused. Names are decoded here rather than
 * by yauzl, which would fail the whole archive for one escaping path.
 */
function readDirectory(key: string, zip: ZipFile, maxBytes: number): Promise<Map<string, Member>> {
  return new Promise((resolve, reject) => {
    const members = new Map<string, Member>();
    zip.on('error', reject);
    zip.on('end', () => resolve(members));
    zip.on('entry', (entry: Entry) => {
      const raw = entry.fileName as unknown as Buffer;
      const decoded = getFileName(entry.generalPurposeBitFlag, raw, entry.extraFields, false);
      const name = decoded.replace(CONTROL, '\ufffd');
      if (name.endsWith('/') && entry.uncompressedSize === 0) {
        zip.readEntry(); // a directory
        return;
      }
      const memberKey = `${key}${MEMBER_SEPARATOR}${name}`;
      const version = { etag: `"zip-crc32-${hex8(entry.crc32)}"`, size: entry.uncompressedSize };
      const refuse = (why: string, code: 'BI_ARCHIVE' | 'BI_BODY_TOO_LARGE' = 'BI_ARCHIVE'): IngestError => new IngestError(code, `${memberKey}: ${why}; not extracted`);
      const seen = members.get(name);
      if (seen) {
        seen.refused = refuse('the archive holds more than one member of this name');
        zip.readEntry();
        return;
      }
      const escape = yauzl.validateFileName(name);
      const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
      const refused =
        escape !== null ? refuse(`its path escapes the archive (${escape})`)
        : name !== decoded ? refuse('its name holds a control character')
        : entry.isEncrypted() ? refuse('it is encrypted')
        : mode === 0o120000 ? refuse('it is a symbolic link')
        : entry.compressionMethod !== 0 && entry.compressionMethod !== 8 ? refuse(`compression method ${entry.compressionMethod} is not read (stored and deflate are)`)
        : entry.uncompressedSize > maxBytes ? refuse(`its uncompressed size, ${entry.uncompressedSize} bytes, is over MAX_FILE_MB (${maxBytes} bytes)`, 'BI_BODY_TOO_LARGE')
        : null;
      members.set(name, { entry, version, refused });
      zip.readEntry();
    });
    zip.readEntry();
  });
}

function openZip(path: string): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true }, (err, zip) => (err ? reject(err) : resolve(zip)));
  });
}

function openMember(key: string, zip: ZipFile, entry: Entry): Promise<Readable> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (err, stream) => (err ? reject(memberError(key, err)) : resolve(stream)));
  });
}

function unreadable(key: string, err: unknown): IngestError {
  return new IngestError('BI_ARCHIVE', `${key}: not a readable ZIP archive: ${describeError(err)}`);
}

/** yauzl's errors while a member is read (bad deflate data, a size that does not match) as the member's. */
function memberError(key: string, err: unknown): unknown {
  if (err instanceof IngestError) return err;
  return new IngestError('BI_ARCHIVE', `${key}: cannot be extracted: ${describeError(err)}`, { cause: err });
}
