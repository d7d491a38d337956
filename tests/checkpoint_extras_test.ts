/**
 * Tensors a state's holder saves beside it (core/checkpoint_extras.ts): written after the state's
 * F32 tensors, with their metadata, as they were at the `saveState` call; left by `loadState`
 * (other unknown tensors are still refused); none given, the file is the same bytes.
 */
import assert from "node:assert/strict";
import { CheckpointError, loadState, radam, saveState, step } from "../mod.ts";
import { addCheckpointExtras } from "../core/checkpoint_extras.ts";
import { parseSafetensors } from "../base/safetensors.ts";
import { edit } from "./checkpoint_files.ts";

Deno.test("checkpoint extras: saved beside the state at the call, ignored by loadState", async () => {
  const make = async () =>
    step(
      await radam({ states: "8bit" }).init({
        w: new Float32Array(4096).fill(1),
        b: new Float32Array(3),
      }),
      {
        w: new Float32Array(4096).fill(0.5),
        b: new Float32Array(3).fill(0.25),
      },
    );
  const plain = await saveState(await make());
  let state = await make();
  let calls = 0;
  addCheckpointExtras(state, () => {
    calls++;
    return {
      metadata: { accum_count: "2" },
      tensors: Promise.resolve([{
        name: "w.accum",
        shape: [4096],
        data: new Float32Array(4096).fill(3),
      }]),
    };
  });
  const saving = saveState(state);
  state = step(state, { w: new Float32Array(4096).fill(9), b: new Float32Array(3).fill(9) });
  const bytes = await saving;
  assert.equal(calls, 1);
  const file = parseSafetensors(bytes);
  assert.equal(file.metadata.accum_count, "2");
  assert.equal(file.metadata.step, "1"); // the state at the call, not the step after it
  const names = [...file.tensors.keys()];
  assert.ok(names.indexOf("w.accum") < names.indexOf("w.exp_avg.codes"), names.join());
  const loaded = await loadState(bytes);
  assert.deepEqual(await saveState(loaded), plain); // ignored, and not kept
  // Other unknown tensors are still refused.
  const renamed = edit(bytes, (h) => {
    h["w.bogus"] = h["w.accum"];
    delete h["w.accum"];
  });
  await assert.rejects(loadState(renamed), CheckpointError);
  // Once the holder has nothing to save, the file is the state's alone.
  addCheckpointExtras(state, () => undefined);
  const again = parseSafetensors(await saveState(state));
  assert.equal(again.metadata.accum_count, undefined);
});
