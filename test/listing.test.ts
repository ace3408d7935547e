import { expect } from 'chai';
import { ListingCursor, listingFilter } from '../src/listing.js';
import { planKey } from '../src/plan.js';
import type { RegistryEntry } from '../src/registry/entry.js';
import type { ListedObject } from '../src/sources/types.js';

const obj = (key: string, lastModified: number | null = 0): ListedObject => ({ key, etag: '"e"', size: 1, lastModified });
const filterOf = (s: { INCLUDE?: string[]; EXCLUDE?: string[]; MIN_AGE_SECONDS?: number }, window = {}) =>
  listingFilter({ INCLUDE: s.INCLUDE ?? [], EXCLUDE: s.EXCLUDE ?? [], MIN_AGE_SECONDS: s.MIN_AGE_SECONDS ?? 0, AFTER_LOAD: { kind: 'keep' } }, window);

describe('listing: filters', () => {
  it('INCLUDE and EXCLUDE globs match the whole key', () => {
    const f = filterOf({ INCLUDE: ['logs/**/*.json', '*.data'], EXCLUDE: ['**/tmp/**'] });
    expect(['a.data', 'logs/2026/x.json', 'logs/tmp/x.json', 'logs/x.csv', 'd/a.data'].filter((k) => f(obj(k), 0)))
      .to.deep.equal(['a.data', 'logs/2026/x.json']);
  });

  it('MIN_AGE_SECONDS leaves objects younger than it; --since and --until bound LastModified', () => {
    const now = 1_000_000;
    const young = filterOf({ MIN_AGE_SECONDS: 60 });
    expect(young(obj('a', now - 59_000), now)).to.equal(false);
    expect(young(obj('a', now - 60_000), now)).to.equal(true);
    expect(young(obj('a', null), now)).to.equal(true);
    const window = filterOf({}, { since: 100, until: 200 });
    expect([99, 100, 199, 200].map((t) => window(obj('a', t), now))).to.deep.equal([false, true, true, false]);
    expect(window(obj('a', null), now)).to.equal(false); // no date: not in any window
  });
});

describe('listing: the ordered cursor', () => {
  const settings = { LISTING: 'ordered' as const, LOOKBACK_KEYS: 2, RECONCILE_SECONDS: 60 };

  it('lists everything first, then after the last key less LOOKBACK_KEYS, and everything again every RECONCILE_SECONDS', () => {
    const c = new ListingCursor(settings);
    expect(c.startAfter(0)).to.equal(undefined);
    const full = c.observer(undefined, 0);
    full.see(['a', 'b', 'c'], 0);
    full.see(['d', 'e'], 3);
    full.done();
    // d and e listed again; positions go on from c's.
    expect(c.startAfter(1000)).to.deep.equal({ key: 'c', position: 2 });
    const partial = c.observer({ key: 'c', position: 2 }, 1000);
    partial.see(['d', 'e', 'f'], 3);
    partial.done();
    expect(c.startAfter(2000)).to.deep.equal({ key: 'd', position: 3 });
    // Nothing new: the lookback's keys come again, and the cursor stays.
    const same = c.observer({ key: 'd', position: 3 }, 2000);
    same.see(['e', 'f'], 4);
    same.done();
    expect(c.startAfter(3000)).to.deep.equal({ key: 'd', position: 3 });
    expect(c.startAfter(60_000)).to.equal(undefined);
  });

  it('lists everything while the bucket holds no more keys than the lookback, and always with LISTING=full', () => {
    const c = new ListingCursor(settings);
    const o = c.observer(undefined, 0);
    o.see(['a', 'b'], 0);
    o.done();
    expect(c.startAfter(1)).to.equal(undefined);
    const full = new ListingCursor({ ...settings, LISTING: 'full' });
    const f = full.observer(undefined, 0);
    f.see(['a', 'b', 'c', 'd'], 0);
    f.done();
    expect(full.startAfter(1)).to.equal(undefined);
  });
});

describe('planning with listed versions', () => {
  const done: RegistryEntry = {
    status: 'done', etag: '"e1"', size: 10, attempts: 1, failures: 0, loaded: 1, rejected: 0, skipped: 0, error: null,
    firstSeenAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z', doneAt: '2026-01-01T00:00:00Z', checkedAt: '2026-01-01T00:00:00Z', nextAttemptAt: null,
  };
  const opts = { force: false, now: Date.parse('2027-01-01T00:00:00Z'), recheckDoneMs: 1000 };
  it('a done file listed with its ETag and size is up to date however old its check; another ETag or size is changed', () => {
    expect(planKey(done, opts)).to.equal('recheck');
    expect(planKey(done, opts, { etag: '"e1"', size: 10 })).to.equal('up-to-date');
    expect(planKey(done, opts, { etag: '"e2"', size: 10 })).to.equal('changed');
    expect(planKey(done, opts, { etag: '"e1"', size: 11 })).to.equal('changed');
    expect(planKey(done, opts, { etag: null, size: null })).to.equal('recheck');
    expect(planKey(done, { ...opts, force: true }, { etag: '"e1"', size: 10 })).to.equal('forced');
    expect(planKey({ ...done, reprocess: true }, opts, { etag: '"e1"', size: 10 })).to.equal('reprocess');
  });
});
