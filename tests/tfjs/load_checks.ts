/**
 * The check of the loads (`setWeights`, `loadState`) of a concurrent run of the TensorFlow.js
 * adapter, and the outcome of a call, which interleavings_test.ts and interleavings_model_test.ts
 * share: each load either
 * took effect (its replace logged after its call, no step between: a step taken meanwhile would
 * have had its moments replaced under its update) or was overtaken by a step (rejected with the
 * documented TypeError, nothing replaced).
 */
import assert from "node:assert/strict";

/** A call's result, or its error's class and message. */
export type Outcome = { value: unknown } | { error: string };

/** The outcome of a call that threw `e`. */
export function errorOf(e: unknown): Outcome {
  return { error: e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e) };
}

/** What a run logged, and its loads with their outcomes (in the same order). */
export interface LoadRun {
  readonly log: readonly { t: string; id?: number }[];
  readonly loads: readonly { id: number }[];
  readonly loadOutcomes: readonly Outcome[];
}

/**
 * Checks every load of `run`. A rejection starting with `disposed` (given where the optimizer
 * was disposed with calls under way) is allowed too.
 */
export function checkLoads(run: LoadRun, disposed?: string): void {
  run.loads.forEach((l, i) => {
    const o = run.loadOutcomes[i];
    const at = run.log.findIndex((e) => e.t === "load-call" && e.id === l.id);
    const end = run.log.findIndex((e) => e.t === "replace" && e.id === l.id);
    if ("value" in o) {
      assert.ok(end > at, `load ${l.id} resolved without taking effect`);
      assert.ok(!run.log.slice(at, end).some((e) => e.t === "step"), `load ${l.id} lost a step`);
      return;
    }
    assert.ok(end < 0, `load ${l.id} rejected but replaced the state`);
    if (disposed !== undefined && o.error.startsWith(`TypeError: ${disposed}`)) return;
    assert.match(o.error, /^TypeError: A step was taken while (setWeights|loadState)/, o.error);
    assert.ok(run.log.slice(at).some((e) => e.t === "step"), `load ${l.id} refused with no step`);
  });
}
