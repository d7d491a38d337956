/**
 * The requests of the data-parallel mode waiting in one process for the outcome of a
 * contribution the store holds (private to store/): each until its deadline (then answered
 * `"pending"`), or until the record of its id settles it.
 *
 * @module
 */
import { answerOf } from "./_answers.ts";
import type { SubmitResult } from "./parallel.ts";
import type { RequestRecord } from "./training.ts";
import { at } from "./_time.ts";

/** A request waiting for the outcome of a contribution the store holds. */
interface Watcher {
  resolve(result: SubmitResult): void;
  reject(error: unknown): void;
}

/** The requests waiting here, by contribution id. */
export class Watchers {
  readonly byId: Map<string, Watcher[]> = new Map();

  /**
   * Waits for the outcome of a contribution the store holds, until `deadline` (the monotonic
   * clock: see `deadlineIn` of store/_time.ts).
   */
  watch(id: string, deadline: number): Promise<SubmitResult> {
    return new Promise((resolve, reject) => {
      const list = this.byId.get(id) ?? [];
      this.byId.set(id, list);
      // Re-armed for a deadline past 2³¹ ms, which setTimeout takes as none (fired at once).
      const cancel = at(deadline, () => {
        list.splice(list.indexOf(watcher), 1);
        if (list.length === 0) this.byId.delete(id);
        resolve({ status: "pending", id });
      });
      const watcher: Watcher = {
        resolve: (r) => (cancel(), resolve(r)),
        reject: (e) => (cancel(), reject(e)),
      };
      list.push(watcher);
    });
  }

  /** Settles the requests watching `id` with its record. */
  settle(id: string, record: RequestRecord): void {
    const list = this.byId.get(id);
    const answer = answerOf(id, record);
    if (list === undefined || answer === null) return;
    this.byId.delete(id);
    for (const w of list) {
      if (answer instanceof Error) w.reject(answer);
      else w.resolve(answer);
    }
  }
}
