/**
 * A read-through cache for a short time: concurrent readers of one key share one load, and the result is reused
 * for `ttlMs`. Status endpoints that many clients poll then cost Temporal one describe per host per `ttlMs`,
 * however many people watch. Failures are not cached. Bounded: the oldest entries go first.
 */
export class ShortCache<V> {
  private readonly entries = new Map<string, { at: number; value: Promise<V> }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.value;
    const value = load();
    this.entries.delete(key);
    this.entries.set(key, { at: this.now(), value });
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return value;
  }

  /** After a write (credentials, approval): the next read must see its effect. */
  invalidate(key: string): void {
    this.entries.delete(key);
  }
}
