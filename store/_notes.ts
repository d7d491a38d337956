/**
 * Who waits for the lease, as a holder judges it on its own clock. A waiting note holds two
 * times written with its waiter's clock (`since`, when it began waiting; `at`, when it last
 * asked), which the holder's clock cannot be compared with: a waiter whose clock is behind
 * would look as if it had stopped asking. So the holder compares notes only with what it read
 * of them before: a note is still asked for while the holder saw its `at` change within the
 * last second (by the holder's clock), and the notes are ordered by when the holder first saw
 * each (`since` breaks the ties of notes first seen at one read). The holder's times are on its
 * monotonic clock: its wall clock set back (or forward) neither keeps a note that stopped asking
 * nor drops one that asks. Private to store/.
 *
 * @module
 */
import { monotonic } from "./_lease.ts";

/** A waiting note as stored: since when its process waits, and when it last asked. */
export interface WaitingNote {
  readonly since: number;
  readonly at: number;
}

/**
 * Whether a waiter's `note` was written within the last 250 ms by its clock (`now`, its
 * `Date.now()`), so that it need not be written again: at most four writes a second. Not where
 * its clock was set back past the note's `at` since: written again at once, else the note
 * stayed unchanged until the clock caught up (an hour set back: an hour), and the holder, that
 * takes a note unchanged for a second as no longer asked for, handed the lease on to no one.
 */
export function notedRecently(note: WaitingNote | undefined, now: number): boolean {
  return note !== undefined && now >= note.at && now - note.at < 250;
}

/** How long a note the holder saw unchanged is still taken as asked for, in ms. */
const ASKED_WITHIN_MS = 1000;

/** What the holder saw of a note: its times, and when (its own clock) it first saw each. */
interface Seen extends WaitingNote {
  /** When the holder first saw this note (this `since`). */
  readonly first: number;
  /** When the holder first saw this `at`. */
  readonly changed: number;
}

/**
 * The notes one store object has read, to judge their age on this process's clock (`now`,
 * default its monotonic clock, `performance.now()`).
 */
export class WaitingNotes {
  #seen = new Map<string, Seen>();

  constructor(readonly now: () => number = monotonic) {}

  /**
   * The token that has waited longest for the lease among `notes` (other than `holder`), of
   * those still asking; null when none. Forgets the notes not listed (removed).
   */
  longest(notes: Iterable<[string, WaitingNote]>, holder: string): string | null {
    const now = this.now();
    const seen = new Map<string, Seen>();
    let best: [string, Seen] | null = null;
    for (const [token, { since, at }] of notes) {
      const old = this.#seen.get(token);
      const same = old !== undefined && old.since === since;
      const first = same ? old.first : now;
      const changed = same && old.at === at ? old.changed : now;
      const note = { since, at, first, changed };
      seen.set(token, note);
      if (token === holder || now - changed > ASKED_WITHIN_MS) continue;
      if (best === null || earlier(token, note, best[0], best[1])) best = [token, note];
    }
    this.#seen = seen;
    return best && best[0];
  }
}

/** Whether note `a` (of token `s`) waited longer than note `b` (of token `t`). */
function earlier(s: string, a: Seen, t: string, b: Seen): boolean {
  if (a.first !== b.first) return a.first < b.first;
  if (a.since !== b.since) return a.since < b.since;
  return s < t;
}
