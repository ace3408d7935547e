import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { IngestError } from '../src/errors.js';
import type { RegistryEntry } from '../src/registry/entry.js';
import { JsonRegistry } from '../src/registry/json-registry.js';
import { tempDir } from './helpers/cli.js';
import { entry } from './helpers/registry.js';

describe('JSON registry', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let path: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    path = join(dir, 'reg', 'p.json');
  });
  afterEach(() => cleanup());

  it('starts empty, persists commits through the journal, and folds them into the snapshot on close', async () => {
    const reg = await JsonRegistry.open(path, { writable: true });
    expect(reg.size).to.equal(0);
    await reg.commit(new Map([['a', entry()], ['b', entry({ status: 'failed', error: 'x' })]]));
    // Durable before close: another reader sees the journal.
    const reader = await JsonRegistry.open(path, { writable: false });
    expect(reader.get('b')?.error).to.equal('x');
    await reg.close();
    expect(readFileSync(`${path}.journal`, 'utf8')).to.equal('');
    const snapshot = JSON.parse(readFileSync(path, 'utf8')) as { entries: Record<string, RegistryEntry> };
    expect(Object.keys(snapshot.entries)).to.deep.equal(['a', 'b']);
  });

  it('appends only the changed entries per commit (cost does not grow with the registry)', async () => {
    const reg = await JsonRegistry.open(path, { writable: true, compactEvery: 1_000_000 });
    await reg.commit(new Map(Array.from({ length: 2000 }, (_, i) => [`k${i}`, entry()] as [string, RegistryEntry])));
    const before = readFileSync(`${path}.journal`).length;
    await reg.commit(new Map([['k1', entry({ loaded: 9 })]]));
    const after = readFileSync(`${path}.journal`).length;
    expect(after - before).to.be.lessThan(400);
    await reg.close();
    const again = await JsonRegistry.open(path, { writable: false });
    expect(again.size).to.equal(2000);
    expect(again.get('k1')?.loaded).to.equal(9);
  });

  it('ignores a torn last journal line left by a crash mid-append', async () => {
    const reg = await JsonRegistry.open(path, { writable: true });
    await reg.commit(new Map([['a', entry()]]));
    await reg.close();
    writeFileSync(`${path}.journal`, `${JSON.stringify({ k: 'b', e: entry() })}\n{"k":"c","e":{"sta`);
    const again = await JsonRegistry.open(path, { writable: true });
    expect(again.get('a')).to.not.equal(undefined);
    expect(again.get('b')).to.not.equal(undefined);
    expect(again.get('c')).to.equal(undefined);
    await again.close();
  });

  it('refuses a corrupt snapshot with one line naming the file', async () => {
    const reg = await JsonRegistry.open(path, { writable: true });
    await reg.close();
    writeFileSync(path, '{"version":1,"entries":{"a":');
    const err = await JsonRegistry.open(path, { writable: false }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(IngestError);
    expect((err as IngestError).code).to.equal('BI_REGISTRY_CORRUPT');
    expect((err as IngestError).message).to.contain(path).and.not.contain('\n');
  });

  it('refuses a snapshot whose entries are not registry entries', async () => {
    const reg = await JsonRegistry.open(path, { writable: true });
    await reg.close();
    writeFileSync(path, JSON.stringify({ version: 1, entries: { a: { status: 'maybe' } } }));
    const err = (await JsonRegistry.open(path, { writable: false }).catch((e: unknown) => e)) as IngestError;
    expect(err.code).to.equal('BI_REGISTRY_CORRUPT');
    expect(err.message).to.contain('status');
  });

  it('refuses a corrupt line in the middle of the journal', async () => {
    const reg = await JsonRegistry.open(path, { writable: true });
    await reg.close();
    appendFileSync(`${path}.journal`, `garbage\n${JSON.stringify({ k: 'b', e: entry() })}\n`);
    const err = (await JsonRegistry.open(path, { writable: false }).catch((e: unknown) => e)) as IngestError;
    expect(err.code).to.equal('BI_REGISTRY_CORRUPT');
    expect(err.message).to.contain('p.json.journal').and.contain('line 1');
  });

  it('refuses a journal line whose entry is not a registry entry, naming the line', async () => {
    const reg = await JsonRegistry.open(path, { writable: true });
    await reg.close();
    appendFileSync(`${path}.journal`, `${JSON.stringify({ k: 'a', e: entry() })}\n${JSON.stringify({ k: 'b', e: { ...entry(), attempts: 'two' } })}\n`);
    const err = (await JsonRegistry.open(path, { writable: false }).catch((e: unknown) => e)) as IngestError;
    expect(err.code).to.equal('BI_REGISTRY_CORRUPT');
    expect(err.message).to.contain('p.json.journal').and.contain('line 2');
  });

  it('folds the journal only once it holds as many lines as the snapshot has entries (and compactEvery)', async () => {
    const reg = await JsonRegistry.open(path, { writable: true, compactEvery: 2 });
    const journalLines = (): number => readFileSync(`${path}.journal`, 'utf8').split('\n').filter(Boolean).length;
    await reg.commit(new Map([['a', entry()], ['b', entry()]]));
    expect(journalLines(), '2 lines, 2 entries: folded').to.equal(0);
    await reg.commit(new Map([['c', entry()]]));
    await reg.commit(new Map([['a', entry({ loaded: 5 })]]));
    expect(journalLines(), '2 lines, 3 entries: kept').to.equal(2);
    await reg.commit(new Map([['b', entry({ loaded: 6 })]]));
    expect(journalLines(), '3 lines, 3 entries: folded').to.equal(0);
    const snapshot = JSON.parse(readFileSync(path, 'utf8')) as { entries: Record<string, RegistryEntry> };
    expect(snapshot.entries.a?.loaded).to.equal(5);
    expect(snapshot.entries.b?.loaded).to.equal(6);
    await reg.close();
  });

  it('writes a large snapshot in pieces that make one JSON document, whatever the keys hold', async () => {
    const odd = ['"quoted"', 'back\\slash', 'новый файл.data', '__proto__', '123', 'tab\there', 'emoji 🎉.data'];
    // ~4,000 entries: ~1.4 MB, more than one of writeFileAtomic's 1 MB writes.
    const keys = [...odd, ...Array.from({ length: 4000 }, (_, i) => `k${i}.data`)];
    const reg = await JsonRegistry.open(path, { writable: true, compactEvery: 1_000_000 });
    await reg.commit(new Map(keys.map((k, i) => [k, entry({ loaded: i })] as [string, RegistryEntry])));
    await reg.close();
    const text = readFileSync(path, 'utf8');
    expect(text.length).to.be.greaterThan(1 << 20);
    const parsed = JSON.parse(text) as { version: number; entries: Record<string, RegistryEntry> };
    expect(parsed.version).to.equal(1);
    expect(Object.keys(parsed.entries)).to.have.members(keys);
    const again = await JsonRegistry.open(path, { writable: false });
    expect(again.size).to.equal(keys.length);
    for (const [i, k] of keys.entries()) expect(again.get(k)?.loaded, k).to.equal(i);
  });

  it('lets only one writer hold a registry, and takes over a lock whose process is gone', async () => {
    const first = await JsonRegistry.open(path, { writable: true });
    writeFileSync(`${path}.lock`, String(process.ppid)); // a live process that is not us
    const err = (await JsonRegistry.open(path, { writable: true }).catch((e: unknown) => e)) as IngestError;
    expect(err.code).to.equal('BI_REGISTRY_IO');
    expect(err.message).to.contain('in use by process');
    writeFileSync(`${path}.lock`, '999999999'); // no such process
    const second = await JsonRegistry.open(path, { writable: true });
    await second.close();
    await first.close();
  });
});
