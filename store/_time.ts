/**
 * Waiting, in the store: a pause, a timer of any length, and a promise awaited until a
 * deadline. Deadlines are times on the monotonic clock (see {@linkcode deadlineIn}), so that a
 * wall clock set back (or forward) meanwhile neither stretches nor cuts a wait. Private to
 * store/.
 *
 * @module
 */
import { monotonic } from "./_lease.ts";

/** The longest delay `setTimeout` takes: a longer one (Infinity too) fires at once. */
const MAX_DELAY = 2 ** 31 - 1;

/** The deadline `ms` from now, on the monotonic clock (Infinity for Infinity). */
export const deadlineIn = (ms: number): number => monotonic() + ms;

/**
 * Calls `f` once the monotonic clock reaches `deadline` (see {@linkcode deadlineIn}; never for
 * Infinity), however far off; the function that cancels it.
 */
export function at(deadline: number, f: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    const left = Math.max(0, deadline - monotonic());
    timer = left > MAX_DELAY ? setTimeout(arm, MAX_DELAY) : setTimeout(f, left);
  };
  arm();
  return () => clearTimeout(timer);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => at(deadlineIn(ms), resolve));
}

/**
 * The value of `promise`, or `late` when the monotonic clock reaches `deadline` first (see
 * {@linkcode deadlineIn}); the timer is cleared either way. A rejection of `promise` before the
 * deadline is thrown.
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
