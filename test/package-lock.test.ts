import { readFileSync } from 'node:fs';
import { expect } from 'chai';

/**
 * `npm install` rewrites package-lock.json whenever the lock's copy of package.json's own fields differs from
 * package.json (a fresh clone then starts with a modified file). These are the fields npm copies there.
 */
describe('package-lock.json', () => {
  it("holds package.json's own fields as they are, so npm install leaves it untouched (regression: a stale bin entry)", () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as Record<string, unknown>;
    const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { name: string; version: string; packages: Record<string, Record<string, unknown>> };
    const root = lock.packages[''];
    expect(lock.name).to.equal(pkg.name);
    expect(lock.version).to.equal(pkg.version);
    for (const field of ['name', 'version', 'license', 'bin', 'engines', 'dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']) {
      expect(root?.[field], field).to.deep.equal(pkg[field]);
    }
  });
});
