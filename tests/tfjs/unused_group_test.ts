/**
 * A parameter group that takes none of the variables of the adapter's steps (a frozen layer's)
 * is kept in its checkpoints, which the core `loadState` and `checkpointInfo` read as saved, as
 * docs/SPEC.md says, though `init` refuses such a group (there, only a mistyped `match` makes
 * one); the adapter resumes it and the group applies once the variables train again.
 */
import assert from "node:assert/strict";
import { adamw, checkpointInfo, loadState, saveState } from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { seededVars, stepWith, tf, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("unusedgroup");

Deno.test("tfjs: a checkpoint whose group took none of the variables stepped loads as saved (the core's and the adapter's loadState), though init refuses such a group", async () => {
  await useBackend("cpu");
  const options = { weightDecay: 0.5, groups: [{ match: /bias$/, weightDecay: 0 }] };
  const [kernel, bias] = seededVars(name, 3, 4);
  const source = tfOptimizer(adamw(options));
  stepWith(source, [kernel], 1); // (the bias frozen)
  const bytes = await saveState(source.state!);
  const info = checkpointInfo(bytes);
  assert.deepEqual(info.names, [kernel.name]);
  assert.equal(info.metadata.tensor_groups, "[0]");
  assert.deepEqual(info.settings.loop.groups.map((g) => g.weightDecay), [0]);
  await assert.rejects(
    () => adamw(options).init({ [kernel.name]: new Float32Array(12) }),
    /Option groups\[0\] \(match \/bias\$\/\) takes no tensor/,
  );
  const loaded = await loadState(bytes, { backend: "js" });
  assert.deepEqual(loaded.names, [kernel.name]);
  assert.deepEqual(await saveState(loaded), bytes); // the group kept
  // The adapter resumes it, and trains the bias again in its group: no weight decay.
  const before = bias.dataSync().slice();
  const target = tfOptimizer(adamw({ ...options, lr: 1e-3 }));
  await target.loadState(bytes);
  tf.tidy(() => target.applyGradients({ [bias.name]: tf.zerosLike(bias) }));
  assert.deepEqual(bias.dataSync(), before); // (decayed, it would have moved)
  assert.equal(target.iterations, 2); // (the checkpoint's step, then this one)
  tf.dispose([kernel, bias]);
  source.dispose();
  target.dispose();
});
