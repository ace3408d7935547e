import { expect } from 'chai';
import { PlanFeed } from '../src/plan-feed.js';
import type { PlanItem } from '../src/plan.js';

const items = (from: number, n: number): PlanItem[] => Array.from({ length: n }, (_, i) => ({ key: `k${from + i}`, index: from + i, reason: 'new' as const }));

describe('plan feed', () => {
  it('gives files in plan order, and keeps the planner waiting while `ahead` of them wait', async () => {
    const feed = new PlanFeed(3);
    let told = 0;
    feed.listen(() => told++);
    feed.push(items(0, 5));
    expect(told).to.equal(1);
    let roomy = false;
    const room = feed.room().then(() => (roomy = true));
    await Promise.resolve();
    expect(roomy, '5 waiting, 3 allowed').to.equal(false);
    expect(feed.take()?.key).to.equal('k0');
    expect(feed.take()?.key).to.equal('k1');
    await Promise.resolve();
    expect(roomy, '3 still waiting').to.equal(false);
    expect(feed.take()?.key).to.equal('k2');
    await room;
    expect(roomy).to.equal(true);
    expect(feed.waiting).to.equal(2);
  });

  it('keeps the order across many pushes and takes (taken slots are dropped), and ends once closed and empty', async () => {
    const feed = new PlanFeed(10_000);
    const taken: number[] = [];
    for (let i = 0; i < 5000; i += 500) {
      feed.push(items(i, 500));
      for (let j = 0; j < 400; j++) taken.push((feed.take() as PlanItem).index);
    }
    expect(feed.closed).to.equal(false);
    let told = false;
    feed.listen(() => (told = true));
    feed.close();
    expect(told, 'the loader hears of the close').to.equal(true);
    for (let item = feed.take(); item; item = feed.take()) taken.push(item.index);
    expect(taken).to.deep.equal(Array.from({ length: 5000 }, (_, i) => i));
    expect(feed.waiting).to.equal(0);
    await feed.room(); // a closed feed never keeps anyone waiting
  });

  it('abandoned by its loader: the waiting planner is let go, and what it plans after is not taken in', async () => {
    const feed = new PlanFeed(1);
    let told = 0;
    feed.listen(() => told++);
    feed.push(items(0, 3));
    const waiting = feed.room();
    feed.abandon();
    await waiting;
    feed.push(items(3, 3));
    expect(told, 'the loader is not woken for files it will never take').to.equal(1);
    expect(feed.waiting).to.equal(3);
  });
});
