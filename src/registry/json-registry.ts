import { mkdir, open, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, basename } from 'node:path';
import { IngestError } from '../errors.js';
import { formatErrors } from '../records/reasons.js';
import type { Knex } from 'knex';
import type { Source } from '../sources/types.js';
import type { PlanItem } from '../plan.js';
import { snapshotCodec, registryEntryCodec, type RegistryEntry } from './entry.js';
import { entryMatches, sumEntries, type EntryFilter, type Registry, type RegistryTotals, type Untrusted } from './types.js';
import { readIfExists, writeFileAtomic } from './files.js';
import { applyReprocessRequests } from './requests.js';
import { isAlive } from './pid.js';
import { bindingMismatch, type Binding } from './binding.js';

/**
 * The registry of processed files, kept outside the database as two files:
 *
 * - `<path>`: a snapshot `{"version":1,"binding":{"database":…,"bucket":…},"entries":{key: entry}}`, replaced
 *   atomically (temp file, fsync, rename, fsync of the directory). `binding` says which database and bucket the
 *   entries are about (`bind`); they count for no other.
 * - `<path>.journal`: one JSON line `{"k":key,"e":entry}` per change, appended and fsync'ed once per commit
 *   group. A commit therefore costs O(files in the group), not O(registry size), even at 100k entries.
 *
 * On open the journal is replayed over the snapshot (last line for a key wins); a torn last line from a
 * crash mid-append is ignored, since the group it belonged to was never acknowledged. The journal is folded
 * into a new snapshot on close, and when it holds `compactEvery` lines and at least as many as the snapshot
 * has entries: each fold rewrites the whole registry, so folding in proportion keeps its cost per change
 * constant as the registry grows (at 100,000 entries every 10,000 changes would rewrite ~35 MB ten times over).
 */
export class JsonRegistry implements Registry {
  readonly mode = 'json' as const;
  private journal: FileHandle | null = null;
  private journalLines = 0;
  private lockHeld = false;
  /** The last `commit` under way: the next one starts after it. */
  private writing: Promise<void> = Promise.resolve();
  private byKey: Map<string, RegistryEntry>;
  /** What the snapshot says it is bound to; after `bind`, what this run is bound to. */
  private binding: Binding | undefined;
  /** Set by `bind` when the entries read were not for this database and bucket: why, and how many there were. */
  untrusted: Untrusted | null = null;

  private constructor(
    readonly path: string,
    entries: Map<string, RegistryEntry>,
    binding: Binding | undefined,
    journalLines: number,
    private readonly compactEvery: number,
  ) {
    this.byKey = entries;
    this.binding = binding;
    this.journalLines = journalLines;
  }

  /**
   * Reads the registry (a missing one is empty). With `writable`, takes `<path>.lock` so two daemons never
   * write one registry, and opens the journal for appending.
   */
  static async open(path: string, opts: { writable: boolean; compactEvery?: number }): Promise<JsonRegistry> {
    const entries = new Map<string, RegistryEntry>();
    let binding: Binding | undefined;
    const snapshot = await readIfExists(path);
    if (snapshot !== null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(snapshot);
      } catch (err) {
        throw corrupt(path, (err as Error).message);
      }
      // The codec's type guard first: it checks the same rules without building io-ts's context and result for
      // every entry (100,000 entries: ~0.3 s and much of the garbage of a start). Only a registry that fails it is
      // decoded, for the errors' paths.
      let snapshotEntries: Record<string, RegistryEntry>;
      if (snapshotCodec.is(parsed)) {
        snapshotEntries = parsed.entries;
        binding = parsed.binding;
      } else {
        const decoded = snapshotCodec.decode(parsed);
        if (decoded._tag === 'Left') throw corrupt(path, formatErrors(decoded.left));
        snapshotEntries = decoded.right.entries;
        binding = decoded.right.binding;
      }
      for (const key in snapshotEntries) entries.set(key, snapshotEntries[key] as RegistryEntry);
    }
    const journalPath = `${path}.journal`;
    const journalText = await readIfExists(journalPath);
    let lines = 0;
    if (journalText !== null) {
      const parts = journalText.split('\n');
      const complete = parts.slice(0, -1); // the part after the last '\n' is empty or a torn write
      for (const [i, line] of complete.entries()) {
        if (line === '') continue;
        let record: { k?: unknown; e?: unknown };
        try {
          record = JSON.parse(line) as typeof record;
        } catch (err) {
          throw corrupt(journalPath, `line ${i + 1}: ${(err as Error).message}`);
        }
        if (typeof record.k !== 'string' || !registryEntryCodec.is(record.e)) throw corrupt(journalPath, `line ${i + 1}: not a registry entry`);
        entries.set(record.k, record.e);
        lines++;
      }
    }
    const registry = new JsonRegistry(path, entries, binding, lines, opts.compactEvery ?? 10_000);
    if (opts.writable) {
      await mkdir(dirname(path), { recursive: true }).catch((err: Error) => {
        throw new IngestError('BI_REGISTRY_IO', `cannot create registry directory ${dirname(path)}: ${err.message}`);
      });
      await registry.lock();
      if (journalText !== null && !journalText.endsWith('\n') && journalText !== '') await registry.compact();
      registry.journal = await open(journalPath, 'a');
    }
    return registry;
  }

  get description(): string {
    return this.path;
  }

  /**
   * Binds the registry to this run's database and bucket. Entries written for another database (or one that is gone)
   * or another bucket, or before registries were bound, are not trusted: they are set aside, so every listed file
   * is processed again (the upserts make that exact), and `untrusted` says why. A writable registry moves such files
   * to `<path>.untrusted` (and `.untrusted.journal`) and starts a new, bound snapshot at once, so a journal is never
   * without the snapshot that says what it is bound to.
   */
  async bind(actual: Binding): Promise<void> {
    const known = this.byKey.size > 0 || this.binding !== undefined;
    const reason = known ? bindingMismatch(this.binding, actual) : null;
    if (reason !== null) {
      let movedTo: string | null = null;
      if (this.journal) {
        movedTo = `${this.path}.untrusted`;
        await this.journal.close();
        this.journal = null;
        try {
          await rename(this.path, movedTo).catch(ignoreMissing);
          await rename(`${this.path}.journal`, `${movedTo}.journal`).catch(ignoreMissing);
        } catch (err) {
          throw new IngestError('BI_REGISTRY_IO', `cannot move the untrusted registry ${this.path} aside: ${(err as Error).message}`);
        }
        this.journal = await open(`${this.path}.journal`, 'a');
      }
      this.untrusted = { reason, entries: this.byKey.size, movedTo };
      this.byKey = new Map();
      this.journalLines = 0;
    }
    const changed = this.binding?.database !== actual.database || this.binding?.bucket !== actual.bucket;
    this.binding = actual;
    if (this.journal && changed) await this.compact();
  }

  /**
   * One daemon owns a JSON registry (the lock file), so nothing changes under it except through the reprocess
   * request file, which `reprocess` appends to without the lock: the start of a cycle takes those requests in.
   */
  async refresh(): Promise<void> {
    if (this.journal && this.binding) await applyReprocessRequests(this, this.binding);
  }

  listKeys(source: Source, signal: AbortSignal): Promise<string[]> {
    return source.listKeys(signal);
  }

  async claim(items: readonly PlanItem[]): Promise<Set<string>> {
    return new Set(items.map((item) => item.key));
  }

  async release(): Promise<void> {}

  async lockEntries(_trx: Knex.Transaction, keys: readonly string[]): Promise<Map<string, RegistryEntry | undefined>> {
    return new Map(keys.map((key) => [key, this.byKey.get(key)]));
  }

  // Written after the commit instead (`committed`): a file outside the database cannot join its transaction.
  async stage(): Promise<void> {}

  committed(changes: ReadonlyMap<string, RegistryEntry>): Promise<void> {
    return this.commit(changes);
  }

  async recordAfterLoad(changes: ReadonlyMap<string, RegistryEntry>): Promise<void> {
    const still = new Map<string, RegistryEntry>();
    for (const [key, entry] of changes) {
      const now = this.byKey.get(key);
      if (now?.status === 'done' && now.doneAt === entry.doneAt && now.afterLoad?.state === 'pending') still.set(key, entry);
    }
    await this.commit(still);
  }

  async markReprocess(keys: readonly string[]): Promise<number> {
    const changes = new Map<string, RegistryEntry>();
    for (const key of keys) {
      const entry = this.byKey.get(key);
      if (entry && !entry.reprocess) changes.set(key, { ...entry, reprocess: true });
    }
    await this.commit(changes);
    return changes.size;
  }

  /** Entries held (this registry holds them all in memory: README, S3 buckets at scale, says what that costs). */
  get size(): number {
    return this.byKey.size;
  }

  get(key: string): RegistryEntry | undefined {
    return this.byKey.get(key);
  }

  async lookup(keys: readonly string[]): Promise<Map<string, RegistryEntry>> {
    const found = new Map<string, RegistryEntry>();
    for (const key of keys) {
      const entry = this.byKey.get(key);
      if (entry !== undefined) found.set(key, entry);
    }
    return found;
  }

  async *entries(filter: EntryFilter = {}): AsyncIterableIterator<[string, RegistryEntry]> {
    const { after } = filter;
    if (!filter.ordered && after === undefined) {
      // A Map's iterator is well defined while the map changes between the caller's awaits (a key set again keeps its place).
      for (const pair of this.byKey) if (entryMatches(pair[1], filter)) yield pair;
      return;
    }
    const keys: string[] = [];
    for (const [key, entry] of this.byKey) if ((after === undefined || key > after) && entryMatches(entry, filter)) keys.push(key);
    keys.sort();
    for (const key of keys) {
      const entry = this.byKey.get(key);
      if (entry !== undefined && entryMatches(entry, filter)) yield [key, entry];
    }
  }

  async totals(): Promise<RegistryTotals> {
    return sumEntries(this.byKey.values());
  }

  async count(filter: EntryFilter = {}): Promise<number> {
    if (filter.status === undefined && !filter.afterLoadPending && !filter.reprocess && filter.after === undefined) return this.byKey.size;
    let n = 0;
    for (const [key, entry] of this.byKey) if ((filter.after === undefined || key > filter.after) && entryMatches(entry, filter)) n++;
    return n;
  }

  /**
   * Records changes durably: appended to the journal and fsync'ed before this resolves. Calls are taken one at a
   * time (AFTER_LOAD's results are recorded while the loader commits other groups): appends and a fold never interleave.
   */
  commit(changes: ReadonlyMap<string, RegistryEntry>): Promise<void> {
    const run = this.writing.then(() => this.commitNow(changes));
    this.writing = run.catch(() => undefined);
    return run;
  }

  private async commitNow(changes: ReadonlyMap<string, RegistryEntry>): Promise<void> {
    if (changes.size === 0) return;
    if (!this.journal) throw new IngestError('BI_REGISTRY_IO', `registry ${this.path} was opened read-only`);
    let text = '';
    for (const [k, e] of changes) text += `${JSON.stringify({ k, e })}\n`;
    try {
      await this.journal.appendFile(text);
      await this.journal.datasync();
    } catch (err) {
      throw new IngestError('BI_REGISTRY_IO', `cannot write registry journal ${this.path}.journal: ${(err as Error).message}`);
    }
    for (const [k, e] of changes) this.byKey.set(k, e);
    this.journalLines += changes.size;
    if (this.journalLines >= Math.max(this.compactEvery, this.byKey.size)) await this.compact();
  }

  /** Writes the whole registry as a new snapshot and empties the journal. */
  async compact(): Promise<void> {
    // A copy of the pairs (entries are replaced, never changed in place), so the snapshot is one moment's even
    // though it is written across awaits.
    await writeFileAtomic(this.path, snapshotText(this.binding, Array.from(this.byKey)));
    try {
      // Only now may the journal go: the snapshot holds everything it said.
      await writeFile(`${this.path}.journal`, '');
      if (this.journal) {
        await this.journal.close();
        this.journal = await open(`${this.path}.journal`, 'a');
      }
      this.journalLines = 0;
    } catch (err) {
      throw new IngestError('BI_REGISTRY_IO', `cannot empty registry journal ${this.path}.journal: ${(err as Error).message}`);
    }
  }

  /** Folds the journal into the snapshot if it has anything, then releases the lock. */
  async close(): Promise<void> {
    await this.writing;
    if (this.journal && this.journalLines > 0) await this.compact();
    await this.journal?.close();
    this.journal = null;
    if (this.lockHeld) await unlink(`${this.path}.lock`).catch(() => undefined);
    this.lockHeld = false;
  }

  private async lock(): Promise<void> {
    const lockPath = `${this.path}.lock`;
    for (let tries = 0; tries < 2; tries++) {
      try {
        await writeFile(lockPath, String(process.pid), { flag: 'wx' });
        this.lockHeld = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new IngestError('BI_REGISTRY_IO', `cannot create lock ${lockPath}: ${(err as Error).message}`);
        }
        const pid = Number((await readIfExists(lockPath)) ?? NaN);
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
          throw new IngestError('BI_REGISTRY_IO', `registry ${this.path} is in use by process ${pid} (lock ${basename(lockPath)}); one daemon per JSON registry`);
        }
        await unlink(lockPath).catch(() => undefined); // stale: its process is gone
      }
    }
    throw new IngestError('BI_REGISTRY_IO', `cannot take lock ${lockPath}`);
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

function corrupt(path: string, why: string): IngestError {
  return new IngestError('BI_REGISTRY_CORRUPT', `registry ${path} is corrupt (${why}); fix it, or move it away to reprocess every file`);
}

/**
 * The snapshot `{"version":1,"entries":{…}}` one entry at a time (writeFileAtomic gathers them into writes), so the
 * whole text (~35 MB at 100,000 entries) is never one string: writing it that way doubled the peak memory of a
 * 100,000-file run.
 */
function* snapshotText(binding: Binding | undefined, entries: Iterable<readonly [string, RegistryEntry]>): Generator<string> {
  yield `{"version":1,${binding === undefined ? '' : `"binding":${JSON.stringify(binding)},`}"entries":{`;
  let first = true;
  for (const [key, entry] of entries) {
    yield `${first ? '' : ','}${JSON.stringify(key)}:${JSON.stringify(entry)}`;
    first = false;
  }
  yield '}}';
}
