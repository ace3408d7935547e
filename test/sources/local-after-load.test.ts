import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { IngestError } from '../../src/errors.js';
import { LocalSource } from '../../src/sources/local.js';
import { tempDir } from '../helpers/cli.js';

/** What AFTER_LOAD asks of a local bucket: delete or move one file, idempotently, and never outside the directory. */
describe('local source: AFTER_LOAD', () => {
  let dir: string;
  let bucket: string;
  let cleanup: () => Promise<void>;
  let source: LocalSource;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    bucket = join(dir, 'bucket');
    mkdirSync(join(bucket, 'in', '2026'), { recursive: true });
    writeFileSync(join(bucket, 'in', '2026', 'a.json'), '[]');
    writeFileSync(join(bucket, 'files_list.data'), 'in/2026/a.json');
    source = new LocalSource(bucket, 'files_list.data', 1 << 20);
  });
  afterEach(() => cleanup());

  const refusal = async (p: Promise<unknown>): Promise<IngestError> => {
    try {
      await p;
    } catch (err) {
      expect(err).to.be.instanceOf(IngestError);
      return err as IngestError;
    }
    throw new Error('expected an IngestError');
  };

  it('delete removes the file, and deleting it again (already gone) is success', async () => {
    await source.afterLoad('in/2026/a.json', { kind: 'delete' });
    expect(existsSync(join(bucket, 'in', '2026', 'a.json'))).to.equal(false);
    await source.afterLoad('in/2026/a.json', { kind: 'delete' });
    await source.afterLoad('in/gone/x.json', { kind: 'delete' }); // its directory gone too
  });

  it('move renames the file to PREFIX + key, creating the directories; moving it again (gone, at its target) is success', async () => {
    await source.afterLoad('in/2026/a.json', { kind: 'move', prefix: 'archive/' });
    expect(existsSync(join(bucket, 'in', '2026', 'a.json'))).to.equal(false);
    expect(readFileSync(join(bucket, 'archive', 'in', '2026', 'a.json'), 'utf8')).to.equal('[]');
    await source.afterLoad('in/2026/a.json', { kind: 'move', prefix: 'archive/' });
    expect(readFileSync(join(bucket, 'archive', 'in', '2026', 'a.json'), 'utf8')).to.equal('[]');
  });

  it('a file neither at its key nor at its target is an error to retry, not success', async () => {
    const err = await refusal(source.afterLoad('in/2026/none.json', { kind: 'move', prefix: 'archive/' }));
    expect(err.code).to.equal('BI_AFTER_LOAD');
    expect(err.message).to.equal('in/2026/none.json: cannot move it to archive/in/2026/none.json: it is neither at its key nor at the target');
  });

  it('a target that cannot be made (a file where its directory should be) fails with what and where', async () => {
    writeFileSync(join(bucket, 'archive'), 'x');
    const err = await refusal(source.afterLoad('in/2026/a.json', { kind: 'move', prefix: 'archive/' }));
    expect(err.code).to.equal('BI_AFTER_LOAD');
    expect(err.message).to.match(/^in\/2026\/a\.json: cannot move it to archive\/in\/2026\/a\.json in .*bucket: /);
    expect(existsSync(join(bucket, 'in', '2026', 'a.json'))).to.equal(true);
  });

  it('never deletes or moves outside the bucket directory: a key or target leading out, or a directory linked out of it', async () => {
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'victim.json'), 'keep me');
    expect((await refusal(source.afterLoad('../outside/victim.json', { kind: 'delete' }))).code).to.equal('BI_BAD_KEY');
    symlinkSync(outside, join(bucket, 'linked'));
    expect((await refusal(source.afterLoad('linked/victim.json', { kind: 'delete' }))).code).to.equal('BI_BAD_KEY');
    expect(readFileSync(join(outside, 'victim.json'), 'utf8')).to.equal('keep me');
    // A prefix whose directory is a link out of the bucket: the file is not moved out through it.
    const err = await refusal(source.afterLoad('in/2026/a.json', { kind: 'move', prefix: 'linked/' }));
    expect(err.code).to.equal('BI_BAD_KEY');
    expect(existsSync(join(bucket, 'in', '2026', 'a.json'))).to.equal(true);
    expect(existsSync(join(outside, 'in'))).to.equal(false);
  });

  it('a symbolic link that stays inside is removed itself, never the file it points to', async () => {
    symlinkSync(join(bucket, 'in', '2026', 'a.json'), join(bucket, 'link.json'));
    await source.afterLoad('link.json', { kind: 'delete' });
    expect(existsSync(join(bucket, 'link.json'))).to.equal(false);
    expect(existsSync(join(bucket, 'in', '2026', 'a.json'))).to.equal(true);
  });
});
