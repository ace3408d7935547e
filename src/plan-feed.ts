import type { PlanItem } from './plan.js';

/**
 * A cycle's planned files on their way from the planner, which plans the listing as it arrives, to the loader, which
 * takes them as its window has room. The planner waits (`room`) while `ahead` files (PLAN_AHEAD_FILES) are waiting,
 * so a listing of millions of keys to load is never held as one plan: it is listed as fast as it is loaded.
 */
export class PlanFeed {
  private items: Array<PlanItem | undefined> = [];
  private head = 0;
  private ended = false;
  private wakePlanner: (() => void) | null = null;
  private listener: () => void = () => undefined;

  constructor(private readonly ahead: number) {}

  /** Files planned and not taken yet. */
  get waiting(): number {
    return this.items.length - this.head;
  }

  /** Whether the loader gave up (its cycle failed): the planner stops planning. */
  abandoned = false;

  /** Whether the planner has planned its last file. */
  get closed(): boolean {
    return this.ended;
  }

  /** Called whenever files are added or the feed closes (the loader's wake-up). */
  listen(fn: () => void): void {
    this.listener = fn;
  }

  push(items: readonly PlanItem[]): void {
    if (items.length === 0 || this.abandoned) return;
    for (const item of items) this.items.push(item);
    this.listener();
  }

  /** The next file in plan order, or undefined when none waits. */
  take(): PlanItem | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    // Taken slots are dropped now and then, so the array holds only what waits.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.waiting < this.ahead) this.wakeUp();
    return item;
  }

  /** Resolves once fewer than `ahead` files wait (at once if so already). */
  room(): Promise<void> {
    if (this.waiting < this.ahead || this.ended || this.abandoned) return Promise.resolve();
    return new Promise((resolve) => {
      this.wakePlanner = resolve;
    });
  }

  /** The loader will take no more: the planner, waiting for room or not, stops at its next slice. */
  abandon(): void {
    this.abandoned = true;
    this.listener = () => undefined;
    this.wakeUp();
  }

  close(): void {
    this.ended = true;
    this.wakeUp();
    this.listener();
  }

  private wakeUp(): void {
    const w = this.wakePlanner;
    this.wakePlanner = null;
    w?.();
  }
}
