import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from './cli.js';
import type { TestDatabase } from './databases.js';
import { startTestBucket, type TestBucket } from './test-bucket.js';

/** What a test of a suite on declared record types starts from: its directory, its database, the daemon's settings. */
export interface SchemaSetup {
  dir: string;
  db: TestDatabase;
  /** BUCKET_URL (the suite's bucket), DATABASE_URL, REGISTRY_PATH and SCHEMAS=types (the schema files, in `dir`). */
  env: Record<string, string>;
}

/**
 * Registers, in the calling `describe`, an HTTP bucket of `files` for the suite and the undoing of what each test
 * made; `setUp` gives a test a fresh directory holding `schemas` (file name → schema document) in `types/` and a fresh
 * database made by `made`, both removed after the test whatever happened.
 */
export function schemaSuite(files: Record<string, string>, schemas: Record<string, unknown>): {
  bucket(): TestBucket;
  setUp(made: (dir: string) => Promise<TestDatabase>): Promise<SchemaSetup>;
  defer(undo: () => Promise<void>): void;
} {
  let bucket: TestBucket | undefined;
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    bucket = await startTestBucket({ files });
  });
  after(async () => {
    await bucket?.close();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const current = (): TestBucket => {
    if (bucket === undefined) throw new Error('schemaSuite: the bucket starts in the suite\'s before hook');
    return bucket;
  };
  return {
    bucket: current,
    defer: (undo) => {
      cleanups.push(undo);
    },
    async setUp(made) {
      const t = await tempDir();
      cleanups.push(t.cleanup);
      const db = await made(t.dir);
      cleanups.push(() => db.drop());
      await mkdir(join(t.dir, 'types'));
      for (const [name, doc] of Object.entries(schemas)) await writeFile(join(t.dir, 'types', name), JSON.stringify(doc, null, 2));
      return { dir: t.dir, db, env: { BUCKET_URL: current().url, DATABASE_URL: db.url, REGISTRY_PATH: 'registry/t.json', SCHEMAS: 'types' } };
    },
  };
}
