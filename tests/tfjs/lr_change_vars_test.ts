/**
 * A step over other variables than the state's, right after a learning rate was set
 * (`optimizer.learningRate = x`, `setLearningRate`), on tfjs's CPU backends, goes as it does
 * without the new rate: option `strict: true` refuses a change of the variables with the same
 * RangeError, nothing changed (the same state, moments, counts, rate set); the same variables in
 * another order are the state's, stepped where it is (in its order, on its backend).
 */
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { stateInternals } from "../../core/state.ts";
import {
  CPU_BACKENDS,
  optimizerSnapshot,
  rangeErrorMessage,
  seededVars,
  stepWith,
  tf,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

const name = uniqueNames("lr-change-vars");

/** What `opt` holds, its weights named but for the variables' prefix (twins compared). */
async function held(opt: TfOptimizer): Promise<unknown> {
  const { weights, ...counts } = await optimizerSnapshot(opt);
  return { ...counts, weights: weights.map(([n, v]) => [n.replace(/^[^/]*\//, ""), v]) };
}

/** The state's tensor order, named but for the variables' prefix. */
function orderOf(opt: TfOptimizer): string[] {
  return stateInternals(opt.state!).order.map((n) => n.replace(/^[^/]*\//, ""));
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs (${backend}): strict refuses a change of the variables after a new learning rate as before one, nothing changed`, async () => {
    await useBackend(backend);
    const vars = seededVars(name, 3, 4);
    const extra = tf.variable(tf.ones([2]), true, name("extra"));
    const opt = tfOptimizer(radam({ lr: 0.1 }), { strict: true });
    stepWith(opt, vars, 1);
    const changes = [[vars[0]], [...vars, extra], [vars[1], extra]];
    // The plain path's words, the rate as it was.
    const plain = changes.map((change) => rangeErrorMessage(() => stepWith(opt, change, 2)));
    opt.learningRate = 0.05;
    const state = opt.state, before = await optimizerSnapshot(opt);
    for (const [i, change] of changes.entries()) {
      assert.equal(rangeErrorMessage(() => stepWith(opt, change, 2)), plain[i]);
      assert.equal(opt.state, state, "the state was made again");
    }
    assert.deepEqual(await optimizerSnapshot(opt), before);
    assert.equal(opt.learningRate, 0.05);
    // The rate set still takes effect, on the state as it was.
    const twins = seededVars(name, 3, 4);
    const ref = tfOptimizer(radam({ lr: (t) => t === 1 ? 0.1 : 0.05 }));
    stepWith(ref, twins, 1);
    stepWith(opt, vars, 3);
    stepWith(ref, twins, 3);
    assert.deepEqual(await held(opt), await held(ref));
    opt.dispose();
    ref.dispose();
    tf.dispose([...vars, ...twins, extra]);
  });

  Deno.test(`tfjs (${backend}): the variables in another order after a new learning rate are the state's, stepped where it is`, async () => {
    await useBackend(backend);
    const vars = seededVars(name, 5, 4), twins = seededVars(name, 5, 4);
    const opt = tfOptimizer(radam({ lr: 0.1 }), { strict: true });
    const ref = tfOptimizer(radam({ lr: (t) => t === 1 ? 0.1 : 0.05 }));
    stepWith(opt, vars, 1);
    stepWith(ref, twins, 1);
    const order = orderOf(opt);
    const was = stateInternals(opt.state!).backend;
    opt.learningRate = 0.05;
    stepWith(opt, [vars[1], vars[0]], 2); // (strict: the same variables)
    stepWith(ref, [twins[1], twins[0]], 2);
    assert.deepEqual(orderOf(opt), order);
    assert.equal(stateInternals(opt.state!).backend, was, "the state made again");
    assert.deepEqual(orderOf(ref), order);
    assert.deepEqual(await held(opt), await held(ref));
    // Non-strict too: in the state's order.
    const loose = tfOptimizer(radam({ lr: 0.1 }));
    stepWith(loose, twins, 4);
    loose.learningRate = 0.05;
    stepWith(loose, [twins[1], twins[0]], 5);
    assert.deepEqual(orderOf(loose), order);
    for (const o of [opt, ref, loose] as TfOptimizer[]) o.dispose();
    tf.dispose([...vars, ...twins]);
  });
}
