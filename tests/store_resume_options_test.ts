/**
 * What the README's "Resuming" says of a redeploy that changes the optimizer's options: a stored
 * checkpoint resumes with its own hyperparameters and training-loop options (groups, clipping),
 * those given now not compared, and only `loadOptions.lr` changes its constant lr.
 */
import assert from "node:assert/strict";
import { radam, readParams } from "../mod.ts";
import { memoryCheckpointStore, optimisticStep } from "../store.ts";

const init = () => ({ w: new Float32Array(2), b: new Float32Array(2) });
const ones = (state: { grads: Record<string, Float32Array> }) => {
  for (const g of Object.values(state.grads)) g.fill(1);
};

Deno.test("store resume: a redeploy's new groups and clipping are not used; loadOptions.lr is", async () => {
  const store = memoryCheckpointStore();
  const first = await optimisticStep(store, {
    optimizer: radam({ lr: 0.1 }),
    init,
    gradient: ones,
  });
  const before = await readParams(first.state);
  // The redeploy freezes b (lrScale 0) and clips: neither is the stored optimizer's.
  const changed = radam({ lr: 0.1, groups: [{ match: /^b$/, lrScale: 0 }], clipGradNorm: 1e-3 });
  const second = await optimisticStep(store, { optimizer: changed, init, gradient: ones });
  const after = await readParams(second.state);
  assert.equal(second.step, 2);
  assert.notDeepEqual(after.b, before.b, "b trained on: the new group is not used");
  assert.deepEqual(after.b, after.w, "b and w alike: no group, no clipping");
  assert.ok(Number.isNaN(second.state.lastGradNorm), "no clipping: no norm taken");
  // loadOptions.lr replaces the stored constant lr.
  const frozen = await optimisticStep(store, {
    optimizer: radam(),
    init,
    gradient: ones,
    loadOptions: { lr: 0 },
  });
  assert.deepEqual(await readParams(frozen.state), after);
});
