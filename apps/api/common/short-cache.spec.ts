import { ShortCache } from './short-cache';

describe('ShortCache', () => {
  it('shares one load between concurrent readers and reuses it within the TTL', async () => {
    let t = 0;
    let loads = 0;
    const cache = new ShortCache<number>(1000, 10, () => t);
    const load = async () => ++loads;
    const [a, b] = await Promise.all([cache.get('h', load), cache.get('h', load)]);
    expect([a, b, loads]).toEqual([1, 1, 1]);
    t = 999;
    expect(await cache.get('h', load)).toBe(1);
    t = 1000;
    expect(await cache.get('h', load)).toBe(2);
  });

  it('does not keep failures, forgets on invalidate, and stays bounded', async () => {
    const cache = new ShortCache<string>(60_000, 2);
    await expect(cache.get('x', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(await cache.get('x', async () => 'up')).toBe('up');
    cache.invalidate('x');
    expect(await cache.get('x', async () => 'fresh')).toBe('fresh');
    await cache.get('y', async () => 'y');
    await cache.get('z', async () => 'z');
    expect(await cache.get('x', async () => 'reloaded')).toBe('reloaded'); // x was the oldest: evicted
  });
});
