/**
 * When another process's lease has ended, as a process judges it on its own clock. A lease
 * record holds its end in its writer's clock, which another process's clock cannot be compared
 * with: one running ahead would take a lease still held (or one just handed on to a third
 * process), one running behind would wait for a dead holder's lease past its end. So a process
 * judges a lease by what it observed itself: the record unchanged (the same version) for its
 * whole term since this process first read it, on a monotonic clock (`performance.now()`). A
 * process that waits for the lease reads it at each poll, so a dead holder's lease stops it at
 * most one poll longer than its term. One test of the writer's clock stays, with a wide margin:
 * a record whose end passed more than {@linkcode SKEW_MS} ago by this process's clock is over,
 * so that a process that first reads a lease long dead takes it at once instead of waiting a
 * whole term (only a clock that far ahead could take a live one so). Private to store/.
 *
 * @module
 */

/** How far apart the clocks of two processes may be for a lease to be judged as it should. */
export const SKEW_MS = 60_000;

/** A lease as stored: its end (the writer's clock) and its term in ms (absent: an old record). */
export interface LeaseTerm {
  readonly expires: number;
  readonly ms?: number;
}

/** A monotonic clock in ms: elapsed time, which no setting of the wall clock changes. */
export const monotonic = (): number => performance.now();

/**
 * Whether `lease`, first read by this process at `first` (on `now`'s clock), has ended as this
 * process observes it (`now`: the monotonic time; `wall`: this process's `Date.now()`).
 */
function leaseOver(lease: LeaseTerm, first: number, now: number, wall: number): boolean {
  // A record of an earlier version of this library has no term: its end, as it was judged.
  if (lease.ms === undefined) return lease.expires <= wall;
  return now - first >= lease.ms || wall - lease.expires > SKEW_MS;
}

/**
 * What one store object saw of the lease record, for each token that asked for it (a process,
 * or a trainer: each judges by its own sighting, as the in-process store does): the version it
 * read last, and when each token first read that version.
 */
export class LeaseSighting {
  #version: unknown = undefined;
  #first = new Map<string, number>();

  constructor(readonly now: () => number = monotonic) {}

  /** Whether `lease`, read by `token` as the record of `version`, has ended as it sees it. */
  over(version: unknown, lease: LeaseTerm, token: string): boolean {
    const now = this.now();
    if (version !== this.#version) {
      this.#version = version;
      this.#first.clear();
    }
    const first = this.#first.get(token) ?? now;
    this.#first.set(token, first);
    return leaseOver(lease, first, now, Date.now());
  }
}

/**
 * When a lease this process was granted for `ms` began, by its own clock: its end (`expires`,
 * stamped by the store as it granted it) less its term, where that falls within the call that
 * got it (`asked` to `answered`, this process's `Date.now()` before the call and after its
 * answer). Outside it, the end was stamped by another clock (a database's), which says nothing
 * of when by this one: the earliest it can have been, `asked` (not `answered`, which a clock
 * ahead would give, and a slow answer would then count as part of the term).
 */
function grantedAt(expires: number, ms: number, asked: number, answered: number): number {
  const stamped = expires - ms;
  return stamped >= asked && stamped <= answered ? stamped : asked;
}

/** A moment of this process on both its clocks: the wall clock (`Date.now()`) and the monotonic. */
export interface Instant {
  readonly wall: number;
  readonly mono: number;
}

/** Now, on both clocks of this process. */
export const instant = (): Instant => ({ wall: Date.now(), mono: monotonic() });

/**
 * When a lease this process was granted for `ms` began, on its monotonic clock, so that how
 * long it has been held is counted whatever the wall clock is set to meanwhile: the store's
 * stamp (`grantedAt`: the wall clock, which the stamp is compared with), placed within the call
 * (`asked` to `answered`) by how far it is from each of its ends on the wall clock, the earlier
 * of the two. Where the wall clock was set during the call, the one counted across that step is
 * off by it, and the other is right: the earlier is never after the grant (a lease counted as
 * held for less time than it was would let its holder work on past its term), at worst before
 * it by the step, and never before `asked`.
 */
export function grantedSince(
  expires: number,
  ms: number,
  asked: Instant,
  answered: Instant,
): number {
  const stamped = grantedAt(expires, ms, asked.wall, answered.wall);
  if (stamped === asked.wall) return asked.mono;
  const fromAsked = asked.mono + (stamped - asked.wall);
  const fromAnswered = answered.mono - (answered.wall - stamped);
  return Math.max(asked.mono, Math.min(fromAsked, fromAnswered));
}
