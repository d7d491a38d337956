/**
 * The gradients accumulated and the moving averages in the checkpoints of `optimizer.state` on
 * tfjs's webgpu backend: one call per invocation (a new optimizer, `loadState`, one call,
 * `saveState`) goes on as one run, bit for bit.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  readValues,
  seededVars,
  stepWith,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const named = uniqueNames("ckextras_webgpu");

/** The optimizer's weights by name (the variables' prefix left out), values copied. */
async function weightsOf(opt: TfOptimizer): Promise<[string, number[]][]> {
  const weights = await opt.getWeights();
  return Promise.all(weights.map(async (w) =>
    [
      w.name.replace(/^ckextras_webgpu\d+\//, ""),
      [...await w.tensor.data()],
    ] as [string, number[]]
  ));
}

Deno.test({
  name:
    "tfjs webgpu: one call per invocation with saveState/loadState goes on as one run, sums and averages carried",
  ...sanitize,
  fn: async () => {
    await useBackend("webgpu");
    const make = () => tfOptimizer(adam({ lr: 1e-2 }), { gradientAccumulationSteps: 3, ema: true });
    const whole = seededVars(named, 5, 8), a = make();
    for (let t = 0; t < 8; t++) stepWith(a, whole, t);
    let vars = seededVars(named, 5, 8);
    let bytes: Uint8Array | undefined;
    for (let t = 0; t < 8; t++) {
      const opt = make();
      if (bytes !== undefined) await opt.loadState(bytes);
      stepWith(opt, vars, t);
      bytes = await saveState(opt.state!);
      opt.dispose();
      const values = await readValues(vars);
      const next = vars.map((v, i) => [v.name, v.shape, values[i]] as const);
      tf.dispose(vars);
      vars = next.map(([name, shape, data]) => tf.variable(tf.tensor(data, shape), true, name));
    }
    const last = make();
    await last.loadState(bytes!);
    assert.equal(last.iterations, a.iterations);
    assert.equal(last.accumulatedBatches, 2);
    assert.deepEqual(await readValues(vars), await readValues(whole));
    assert.deepEqual(await weightsOf(last), await weightsOf(a));
    tf.dispose([...whole, ...vars]);
    a.dispose();
    last.dispose();
  },
});
