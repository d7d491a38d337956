/**
 * Records to forget when they expire, soonest first: a binary heap of (key, expiry), so that
 * forgetting those due visits only them, not every record remembered. Private to store/.
 *
 * @module
 */

/** One remembered record's key and when it expires (ms since the epoch). */
interface Due<K> {
  readonly key: K;
  readonly until: number;
}

/** See the module. */
export class ExpiryQueue<K> {
  readonly #heap: Due<K>[] = [];

  /** How many entries it holds (a record set again is in it once for each time). */
  get size(): number {
    return this.#heap.length;
  }

  /** Notes that the record of `key` set now expires at `until`. */
  push(key: K, until: number): void {
    const heap = this.#heap;
    heap.push({ key, until });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent].until <= heap[i].until) break;
      [heap[parent], heap[i]] = [heap[i], heap[parent]];
      i = parent;
    }
  }

  /**
   * Takes out every entry that expires at `now` or before, soonest first, and calls `due` with
   * each (its record may have been set again since, with a later expiry: `due` checks).
   */
  popDue(now: number, due: (key: K, until: number) => void): void {
    const heap = this.#heap;
    while (heap.length > 0 && heap[0].until <= now) {
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length > 0) {
        heap[0] = last;
        this.#down();
      }
      due(top.key, top.until);
    }
  }

  /** Moves the root down to its place. */
  #down(): void {
    const heap = this.#heap;
    for (let i = 0;;) {
      const l = 2 * i + 1, r = l + 1;
      let least = i;
      if (l < heap.length && heap[l].until < heap[least].until) least = l;
      if (r < heap.length && heap[r].until < heap[least].until) least = r;
      if (least === i) return;
      [heap[least], heap[i]] = [heap[i], heap[least]];
      i = least;
    }
  }
}
