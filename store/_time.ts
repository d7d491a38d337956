/**
 * Waiting, in the store: a pause, and a promise awaited until a deadline. Private to store/.
 *
 * @module
 */

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The value of `promise`, or `late` when the clock (`Date.now()`) reaches `deadline` first; the
 * timer is cleared either way. A rejection of `promise` before the deadline is thrown.
 */
export async function until<T, L>(promise: Promise<T>, deadline: number, late: L): Promise<T | L> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<L>((resolve) => {
    timer = setTimeout(() => resolve(late), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
