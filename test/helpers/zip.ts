import yazl from 'yazl';

export interface ZipMember {
  name: string;
  body: Buffer | string;
  /** Unix mode (a symbolic link: 0o120777). */
  mode?: number;
  compress?: boolean;
}

/** A ZIP archive of the members, made by yazl (which refuses escaping names: see {@link renamed}). */
export async function zipOf(members: readonly ZipMember[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const m of members) {
    if (m.name.endsWith('/')) {
      zip.addEmptyDirectory(m.name, { mtime: new Date('2026-01-01T00:00:00Z') });
      continue;
    }
    zip.addBuffer(Buffer.isBuffer(m.body) ? m.body : Buffer.from(m.body), m.name, {
      compress: m.compress ?? true,
      ...(m.mode === undefined ? {} : { mode: m.mode }),
      mtime: new Date('2026-01-01T00:00:00Z'),
    });
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * The archive with every occurrence of a member's name (local header and central directory) replaced by another
 * of the same length: how archives with names yazl refuses to write (`../x`, `/x`) are made.
 */
export function renamed(zip: Buffer, from: string, to: string): Buffer {
  if (Buffer.byteLength(from) !== Buffer.byteLength(to)) throw new Error('renamed: names must have the same length');
  const out = Buffer.from(zip);
  const a = Buffer.from(from);
  let found = 0;
  for (let at = out.indexOf(a); at >= 0; at = out.indexOf(a, at + a.length)) {
    out.write(to, at);
    found++;
  }
  if (found === 0) throw new Error(`renamed: ${from} not in the archive`);
  return out;
}

/** Offsets of the central directory entries (signature PK\1\2) of an archive. */
export function centralEntries(zip: Buffer): number[] {
  const sig = Buffer.from([0x50, 0x4b, 0x01, 0x02]);
  const at: number[] = [];
  for (let i = zip.indexOf(sig); i >= 0; i = zip.indexOf(sig, i + 4)) at.push(i);
  return at;
}
