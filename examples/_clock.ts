/**
 * A moved clock for tests of leases: runs `fn` with an `advance` that moves `Date.now` and
 * `performance.now` (which the library's stores read, and the conformance kit's option `advance`
 * takes) forward at once, and puts both back after.
 *
 * @module
 */

/** Runs `fn` with `Date.now` and `performance.now` moved forward by what it advances. */
export async function withClock<T>(
  fn: (advance: (ms: number) => void) => Promise<T>,
): Promise<T> {
  let offset = 0;
  const realNow = Date.now;
  const realPerformance = performance.now.bind(performance);
  Date.now = () => realNow() + offset;
  Object.defineProperty(performance, "now", {
    value: () => realPerformance() + offset,
    configurable: true,
  });
  try {
    return await fn((ms) => void (offset += ms));
  } finally {
    Date.now = realNow;
    delete (performance as { now?: unknown }).now;
  }
}
