import { cpSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { runCli, tempDir } from './helpers/cli.js';

/** README's paragraphs, each as one line. */
function paragraphs(): string[] {
  return readFileSync('README.md', 'utf8').split(/\n\s*\n/).map((p) => p.replace(/\s+/g, ' '));
}

describe('README on the operator commands and the registries', function () {
  this.timeout(60_000);

  it('says, as the code does, that status, explain, reprocess and run --dry-run work with both registries (regression: one paragraph said JSON only)', async () => {
    const about = paragraphs().filter((p) => /`status`/.test(p) && /`explain`/.test(p) && /`reprocess`/.test(p) && /registr/.test(p));
    expect(about.length).to.be.above(0);
    for (const p of about) {
      expect(p, p).to.not.match(/JSON registr(y|ies) only|only (the )?JSON registr/i);
      expect(p, p).to.not.match(/stop with one line saying so/);
    }
    expect(about.some((p) => /work (the same )?with both registries/.test(p))).to.equal(true);

    // What the README says, done: each command against a database registry (on SQLite, which needs no server).
    const { dir, cleanup } = await tempDir();
    try {
      cpSync(resolve('examples/sample-bucket'), join(dir, 'bucket'), { recursive: true });
      const env = { BUCKET_URL: join(dir, 'bucket'), REGISTRY: 'database' };
      expect((await runCli(['run', '--once'], { cwd: dir, env })).code).to.equal(0);
      const status = await runCli(['status'], { cwd: dir, env });
      expect(status.stdout, status.stderr).to.match(/files: 6 known, 6 done, 0 failed/);
      const key = (readFileSync(join(dir, 'bucket', 'files_list.data'), 'utf8').split('\n')[0] as string).trim();
      expect((await runCli(['explain', key], { cwd: dir, env })).stdout).to.contain('next cycle: up to date');
      expect((await runCli(['reprocess', key], { cwd: dir, env })).stdout).to.contain('marked 1 file(s) for reprocessing');
      const dry = await runCli(['run', '--dry-run'], { cwd: dir, env });
      expect(dry.stdout, dry.stderr).to.match(/6 listed, 1 to process \(5 up to date/);
    } finally {
      await cleanup();
    }
  });
});
