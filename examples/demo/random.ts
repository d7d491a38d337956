/**
 * A small seeded pseudo-random generator (mulberry32) so that every run of the demo, and every
 * seed of it, is reproducible.
 *
 * @module
 */

/** A generator of uniform numbers in [0, 1), from a 32-bit seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Shuffles `items` in place (Fisher–Yates) with `random`, and returns it. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(
  items: T,
  random: () => number,
): T {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const x = items[i];
    items[i] = items[j];
    items[j] = x;
  }
  return items;
}
