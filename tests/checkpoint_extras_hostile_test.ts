/**
 * A checkpoint's tensors named `<name>.accum` or `<name>.average` that are no tensor of its state
 * (the TensorFlow.js adapter's gradients accumulated and moving averages) were ignored by
 * `loadState` whatever they were: a damaged file that dropped a parameter itself named `x.accum`
 * from its `tensor_order` loaded without it. They are now checked as the adapter saves them (F32,
 * `.accum` with `accum_count`, as many elements as the parameter of their base name), else
 * refused with a CheckpointError (a RangeError) naming the tensor.
 */
import assert from "node:assert/strict";
import { CheckpointError, loadState, radam, saveState, sgd, step } from "../mod.ts";
import { addCheckpointExtras } from "../core/checkpoint_extras.ts";
import type { TensorOut } from "../base/safetensors.ts";
import { edit } from "./checkpoint_files.ts";

/** The CheckpointError, a RangeError, with exactly `message`. */
function refused(message: string): (e: Error) => true {
  return (e: Error) => {
    assert.ok(e instanceof CheckpointError && e instanceof RangeError, `${e.name}: ${e.message}`);
    assert.equal(e.message, message);
    return true;
  };
}

/** A checkpoint of a one-step RAdam state of `w` (4) and `b` (3), saved with `extra` beside. */
async function savedWith(
  extra: TensorOut[],
  metadata: Record<string, string> = {},
): Promise<Uint8Array> {
  const state = step(
    await radam({ lr: 0.1 }).init({ w: new Float32Array(4).fill(1), b: new Float32Array(3) }),
    { w: new Float32Array(4).fill(0.5), b: new Float32Array(3).fill(0.25) },
  );
  addCheckpointExtras(state, () => ({ metadata, tensors: Promise.resolve(extra) }));
  return saveState(state);
}

const f32 = (name: string, shape: number[]): TensorOut => ({
  name,
  shape,
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5),
});

Deno.test("a damaged file that dropped a parameter named x.accum from its tensor_order is refused, naming it", async () => {
  // SGD without momentum holds no moment: the parameter is its only tensor.
  const state = await sgd({ lr: 0.1 }).init({
    x: new Float32Array([1, 2]),
    "x.accum": new Float32Array([3, 4]),
  });
  const bytes = await saveState(state);
  const damaged = edit(bytes, (h) => {
    h.__metadata__.tensor_order = JSON.stringify(["x"]);
  });
  await assert.rejects(
    loadState(damaged),
    refused(
      'Checkpoint has an unexpected tensor "x.accum": not in its tensor_order, and no gradient ' +
        'accumulated (those come with their count, the metadata "accum_count")',
    ),
  );
  // So is one that dropped x.average, of another size than x.
  const other = await sgd({ lr: 0.1 }).init({
    x: new Float32Array([1, 2]),
    "x.average": new Float32Array([3, 4, 5]),
  });
  const dropped = edit(await saveState(other), (h) => {
    h.__metadata__.tensor_order = JSON.stringify(["x"]);
  });
  await assert.rejects(
    loadState(dropped),
    refused(
      'Tensor "x.average" (a moving average saved beside the state) has shape [3], 3 elements, ' +
        'unlike "x", 2',
    ),
  );
  // The file as saved loads.
  assert.deepEqual((await loadState(bytes)).names, ["x", "x.accum"]);
});

Deno.test("an extra tensor of another size than its parameter is refused, naming both", async () => {
  await assert.rejects(
    loadState(await savedWith([f32("w.average", [3])])),
    refused(
      'Tensor "w.average" (a moving average saved beside the state) has shape [3], 3 elements, ' +
        'unlike "w", 4',
    ),
  );
  await assert.rejects(
    loadState(await savedWith([f32("b.accum", [2, 2])], { accum_count: "1" })),
    refused(
      'Tensor "b.accum" (a gradient accumulated saved beside the state) has shape [2,2], 4 ' +
        'elements, unlike "b", 3',
    ),
  );
});

Deno.test("a count of gradients accumulated without them is refused, saying they are missing (the adapter's TypeError came after the load's checks)", async () => {
  for (const extra of [[], [f32("w.average", [4])]]) {
    await assert.rejects(
      loadState(await savedWith(extra, { accum_count: "2" })),
      refused(
        'Checkpoint lacks the gradients accumulated that its metadata "accum_count" counts ' +
          '("2"): no tensor <variable>.accum beside the state\'s',
      ),
    );
  }
});

Deno.test("an extra tensor not F32, or sums without their count, are refused, naming the tensor", async () => {
  const bytes = await savedWith([f32("w.average", [4])]);
  const bytesOf = edit(bytes, (h) => {
    h["w.average"].dtype = "U8";
    h["w.average"].shape = [16];
  });
  await assert.rejects(
    loadState(bytesOf),
    refused('Tensor "w.average" is U8; expected F32 (a moving average saved beside the state)'),
  );
  await assert.rejects(
    loadState(await savedWith([f32("w.accum", [4])])),
    refused(
      'Checkpoint has an unexpected tensor "w.accum": not in its tensor_order, and no gradient ' +
        'accumulated (those come with their count, the metadata "accum_count")',
    ),
  );
});

Deno.test("extras as the adapter saves them still load: another shape of as many elements, a frozen variable's, sums with their count", async () => {
  const plain = await savedWith([]);
  const bytes = await savedWith([
    f32("w.accum", [2, 2]), // (a kernel the state holds transposed, or [1] for a scalar: [])
    f32("b.accum", [3]),
    f32("w.average", [4, 1]),
    f32("frozen.average", [5]), // (a variable the last step did not train)
    f32("frozen.accum", [2]),
  ], { accum_count: "1" });
  const loaded = await loadState(bytes);
  assert.deepEqual(loaded.names, ["w", "b"]);
  assert.deepEqual(await saveState(loaded), plain); // left to the holder, not kept
});
