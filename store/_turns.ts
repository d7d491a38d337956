/**
 * Turns: the optimistic attempts of one process on one store, one at a time (they would
 * conflict with each other anyway). Private to store/.
 *
 * @module
 */
import { until } from "./_time.ts";

const queues = new WeakMap<object, Promise<void>>();

/**
 * Waits for this process's earlier attempts on `store` to end, at most until `deadline` (the
 * monotonic clock: see `deadlineIn` of store/_time.ts); then the function that ends this turn
 * (call it in all cases), or null when the deadline came first (the turn is then given up).
 */
export async function takeTurn(store: object, deadline: number): Promise<(() => void) | null> {
  const previous = queues.get(store) ?? Promise.resolve();
  let end!: () => void;
  const mine = new Promise<void>((resolve) => end = resolve);
  const chain = previous.then(() => mine);
  queues.set(store, chain);
  chain.then(() => {
    if (queues.get(store) === chain) queues.delete(store);
  });
  const ready = await until(previous.then(() => true), deadline, false);
  if (!ready) {
    end();
    return null;
  }
  return end;
}
