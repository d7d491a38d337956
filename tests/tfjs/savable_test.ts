/**
 * A state whose checkpoint's header would pass the cap (variables of names too long, together, for
 * `saveState(optimizer.state)` ever to save) is refused by the step that would make it, with the
 * library's RangeError, as `init` refuses it, on every tfjs backend: before it trains, nothing
 * changed (the variables, the state of the last step, the counts), where the CPU backends trained
 * it and only `saveState` refused it, after. So is a variable of a name longer than a
 * checkpoint's tensor may have, which `loadState` would refuse.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { radam } from "../../mod.ts";
import { MAX_NAME_BYTES } from "../../base/tensors.ts";
import { setHeaderCap } from "../../base/_json_bounds.ts";
import { tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  optimizerSnapshot,
  stepAll,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const name = uniqueNames("savable");

/** The cap on a header's length in these tests (lowered: `setHeaderCap`). */
const CAP = 40_000;

/** Runs `fn` with the cap lowered to {@linkcode CAP}. */
async function capped(fn: () => Promise<void>): Promise<void> {
  setHeaderCap(CAP);
  try {
    await fn();
  } finally {
    setHeaderCap();
  }
}

/**
 * Variables whose names, each within the limit of a tensor's name, make a checkpoint header past
 * its cap ({@linkcode CAP}) together: a checkpoint names each of its tensors several times, so 50
 * names of 600 characters pass it (as 500 of 60,000 characters pass the cap of 100,000,000 bytes).
 */
function longNamed(): tf.Variable[] {
  const prefix = name("x");
  return Array.from(
    { length: 50 },
    (_, i) => tf.variable(tf.tensor1d([4, 5]), true, `${prefix}.${i}.${"x".repeat(600)}`),
  );
}

/** Checks the refusal on tfjs backend `backend`. */
async function refusesUnsavable(backend: string): Promise<void> {
  await useBackend(backend);
  const w = tf.variable(tf.tensor1d([1, 2, 3]), true, name("w"));
  const long = longNamed();
  const opt = tfOptimizer(radam({ lr: 1e-2 }));
  const refused = (e: Error) => {
    assert.ok(e instanceof RangeError, `${backend}: ${e}`);
    assert.match(e.message, /checkpoint of this state would have a header of \d+ bytes/);
    return true;
  };
  // At the first step: no state made, no variable changed.
  assert.throws(() => stepAll(opt, [w, ...long]), refused);
  assert.equal(opt.state, undefined, backend);
  assert.equal(opt.iterations, 0, backend);
  for (const v of long) assert.deepEqual(await v.data(), new Float32Array([4, 5]), backend);
  // Where the set of variables grows to one: the state of the last step stays as it was.
  stepAll(opt, [w]);
  const state = opt.state;
  const before = await optimizerSnapshot(opt);
  const values = (await w.data()).slice();
  assert.throws(() => stepAll(opt, [w, ...long]), refused);
  assert.equal(opt.state, state, backend);
  assert.deepEqual(await optimizerSnapshot(opt), before, backend);
  assert.deepEqual(await w.data(), values, backend);
  stepAll(opt, [w]); // and trains on
  assert.equal(opt.iterations, 2, backend);
  opt.dispose();
  tf.dispose([w, ...long]);
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: a state whose checkpoint could never be saved (its header past the cap) is refused before it trains, changing nothing`, async () => {
    await capped(() => refusesUnsavable(backend));
  });
}

const sanitize = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs webgpu: a state whose checkpoint could never be saved (its header past the cap) is refused before it trains",
  ...sanitize,
  ignore: sanitize.ignore,
  async fn() {
    await useBackend("webgpu");
    await capped(async () => {
      const long = longNamed();
      const opt = tfOptimizer(radam({ lr: 1e-2 }));
      assert.throws(() => stepAll(opt, long), /checkpoint of this state would have a header/);
      assert.equal(opt.state, undefined);
      for (const v of long) assert.deepEqual(await v.data(), new Float32Array([4, 5]));
      opt.dispose();
      tf.dispose(long);
    });
  },
});

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: a variable whose name is longer than a checkpoint's tensor may have is refused at the step, as init and the webgpu path refuse it, nothing changed`, async () => {
    await useBackend(backend);
    // (It trained, and saveState wrote a file that loadState and checkpointInfo refuse.)
    const w = tf.variable(tf.tensor1d([1, 2]), true, name("w") + "w".repeat(MAX_NAME_BYTES));
    const opt = tfOptimizer(radam({ lr: 1e-2 }));
    assert.throws(() => stepAll(opt, [w]), (e: Error) => {
      assert.ok(e instanceof RangeError, `${backend}: ${e}`);
      assert.match(e.message, /above the limit of 65536 bytes for a tensor's name/);
      return true;
    });
    assert.equal(opt.state, undefined);
    assert.equal(opt.iterations, 0);
    assert.deepEqual(await w.data(), new Float32Array([1, 2]));
    opt.dispose();
    w.dispose();
  });
}
