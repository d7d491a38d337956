/**
 * The TensorFlow.js adapter's checkpoints, as it writes them (gradients accumulation on and off,
 * saved mid-accumulation or between steps; moving averages; a variable frozen after the first
 * call; 8-bit moments with all-zero blocks, from gradients of −0), are read by `checkpointInfo`
 * and loaded by the core `loadState` alike: none is refused by either, and the scales of the
 * blocks of zeros are +0, never the −0 that both refuse.
 */
import assert from "node:assert/strict";
import { checkpointInfo, loadState, ranger, saveState, sgd } from "../../mod.ts";
import { parseSafetensors } from "../../base/safetensors.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { randoms, seededVars, tf, uniqueNames, useBackend } from "./helpers.ts";

const named = uniqueNames("adapterinfo");

/** The scales of a checkpoint's 8-bit moments, copied, by tensor name. */
function scalesOf(bytes: Uint8Array): Map<string, Float32Array> {
  const file = parseSafetensors(bytes);
  const out = new Map<string, Float32Array>();
  for (const [name, e] of file.tensors) {
    if (!name.endsWith(".scales")) continue;
    const raw = bytes.slice(file.dataStart + e.begin, file.dataStart + e.end);
    out.set(name, new Float32Array(raw.buffer));
  }
  return out;
}

const MAKERS: [string, () => TfOptimizer][] = [
  [
    "sgd, 8-bit momentum, N = 1",
    () => tfOptimizer(sgd({ lr: 0.1, momentum: 0.9, states: "8bit" })),
  ],
  [
    "sgd, 8-bit momentum, N = 3",
    () =>
      tfOptimizer(sgd({ lr: 0.1, momentum: 0.9, states: "8bit" }), {
        gradientAccumulationSteps: 3,
      }),
  ],
  [
    "ranger, 8-bit, groups, N = 2 and averages",
    () =>
      tfOptimizer(
        ranger({ k: 2, states: "8bit", groups: [{ match: /bias/, weightDecay: 0 }] }),
        { gradientAccumulationSteps: 2, ema: true },
      ),
  ],
];

Deno.test("tfjs: the adapter's checkpoints (accumulation, averages, a frozen variable, 8-bit zeros from −0 gradients) are read by checkpointInfo and loaded by the core loadState", async () => {
  await useBackend("cpu");
  for (const [what, make] of MAKERS) {
    for (const calls of [1, 2, 3, 4]) {
      const label = `${what}, ${calls} calls`;
      const [kernel, bias] = seededVars(named, 1, 1400); // 4200 elements: 8-bit moments
      const zeros = tf.variable(tf.zeros([4096]), true, named("zeros"));
      const opt = make();
      for (let t = 0; t < calls; t++) {
        const vars = t === 0 ? [kernel, bias, zeros] : [kernel, zeros]; // (the bias frozen)
        const grads = vars.map((v, i) =>
          v === zeros ? tf.fill(v.shape, -0) : tf.tensor(randoms(v.size, 7 * t + i), v.shape)
        );
        opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, grads[i]])));
        tf.dispose(grads);
      }
      const bytes = await saveState(opt.state!);
      const info = checkpointInfo(bytes);
      const pending = opt.accumulatedBatches > 0;
      assert.equal(info.metadata.accum_count, pending ? String(opt.accumulatedBatches) : undefined);
      assert.equal(Object.keys(info.extras.accumulated).length > 0, pending, label);
      const loaded = await loadState(bytes, { backend: "js" });
      // (An 8-bit state's names are in its arena's order, the compact tensors last.)
      assert.deepEqual([...loaded.names].sort(), [...info.names].sort(), label);
      assert.equal(loaded.step, info.step, label);
      for (const [name, scales] of scalesOf(bytes)) {
        if (!name.startsWith(zeros.name)) continue;
        assert.ok(scales.every((s) => Object.is(s, 0)), `${label}: ${name} holds ${scales}`);
      }
      // The adapter resumes it too.
      const again = make();
      await again.loadState(bytes);
      assert.equal(again.accumulatedBatches, opt.accumulatedBatches, label);
      tf.dispose([kernel, bias, zeros]);
      again.dispose();
      opt.dispose();
    }
  }
});
