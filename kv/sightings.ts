/**
 * What one store object saw of unfinished writes, to judge them stale on its own clock (see
 * {@linkcode WriteSightings}). Private to kv/.
 *
 * @module
 */
import { monotonic, SKEW_MS } from "../store/_lease.ts";

/**
 * When an unfinished write (a save's version, a stored gradient, both written in chunks under a
 * record that stays unchanged, `writing`, until it is made current or stored) is stale, as one
 * store object judges it on its own clock: once it has seen the record unchanged (the same
 * versionstamp) for `staleAfterMs` since it first listed it, on a monotonic clock, as the lease
 * is judged (store/_lease.ts). The writer's `created` (its wall clock) is compared with this
 * process's only with the lease's wide margin: a record created more than `staleAfterMs` +
 * {@linkcode SKEW_MS} ago by this process's clock is stale at once, so that the garbage of a
 * crash long ago is removed by a process that lives less than `staleAfterMs` (only a clock
 * that far ahead of the writer's could remove a live write so). A write removed while in
 * progress is refused, never torn: its next chunk write, and the write that would make it
 * current, are checked against its record.
 */
export class WriteSightings {
  #seen = new Map<string, { stamp: string; first: number }>();

  constructor(readonly now: () => number = monotonic) {}

  /**
   * Whether the record of `id` (its `entry`, written at `created` on its writer's clock) is
   * stale after `ms`; `round` collects the ids listed by this sweep.
   */
  stale(
    id: string,
    entry: Deno.KvEntry<unknown>,
    created: number,
    ms: number,
    round: Set<string>,
  ): boolean {
    const now = this.now();
    round.add(id);
    let seen = this.#seen.get(id);
    if (seen?.stamp !== entry.versionstamp) {
      seen = { stamp: entry.versionstamp, first: now };
      this.#seen.set(id, seen);
    }
    return now - seen.first >= ms || Date.now() - created > ms + SKEW_MS;
  }

  /** Forgets the records a sweep did not list (`round`): removed, or made current. */
  forgetUnlisted(round: Set<string>): void {
    for (const id of this.#seen.keys()) if (!round.has(id)) this.#seen.delete(id);
  }
}
