/**
 * Waiting, in the store: a pause, a timer of any length, and a promise awaited until a
 * deadline. Private to store/.
 *
 * @module
 */

/** The longest delay `setTimeout` takes: a longer one (Infinity too) fires at once. */
const MAX_DELAY = 2 ** 31 - 1;

/**
 * Calls `f` once the clock (`Date.now()`) reaches `deadline` (never for Infinity), however far
 * off; the function that cancels it.
 */
export function at(deadline: number, f: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    const left = Math.max(0, deadline - Date.now());
    timer = left > MAX_DELAY ? setTimeout(arm, MAX_DELAY) : setTimeout(f, left);
  };
  arm();
  return () => clearTimeout(timer);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => at(Date.now() + ms, resolve));
}

/**
 * The value of `promise`, or `late` when the clock (`Date.now()`) reaches `deadline` first; the
 * timer is cleared either way. A rejection of `promise` before the deadline is thrown.
 */
export async function until<T, L>(promise: Promise<T>, deadline: number, late: L): Promise<T | L> {
  let cancel = () => {};
  const timeout = new Promise<L>((resolve) => cancel = at(deadline, () => resolve(late)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    cancel();
  }
}
