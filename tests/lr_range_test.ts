/**
 * A learning rate past f32's range, alone or times a parameter group's `lrScale`: refused where
 * it is set (options, loadState's lr, setLearningRate in tests/tfjs/config_test.ts) or, from a
 * schedule, at the step it is for, changing nothing (WebGPU: tests/gpu/webgpu_state_test.ts).
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  loadState,
  lookahead,
  readMoments,
  readParams,
  saveState,
  step,
} from "../mod.ts";
import { saying } from "./util.ts";

for (const backend of ["wasm", "js"] as const) {
  Deno.test(`${backend}: a schedule whose lr times a group's lrScale is past f32's range is refused at that step, changing nothing`, async () => {
    // It was taken: an f32 step size of Infinity, every parameter of the group ±Infinity (and
    // saveState refused the state from then on).
    const groups = [{ match: /^w$/, lrScale: 1e10 }];
    const lr = (t: number) => (t === 2 ? 1e30 : 1e-3);
    let state = await adam({ backend, lr, groups }).init({ w: new Float32Array([1, 2]) });
    let twin = await adam({ backend, lr: 1e-3, groups }).init({ w: new Float32Array([1, 2]) });
    const g = { w: new Float32Array([1, 1]) };
    state = step(state, g);
    twin = step(twin, g);
    assert.throws(
      () => step(state, g),
      saying(
        RangeError,
        "The learning-rate schedule returned 1e+30 at step 2, which times groups[0].lrScale (10000000000) is 1e+40, past the largest f32",
      ),
    );
    assert.equal(state.step, 1);
    assert.deepEqual(await readParams(state), await readParams(twin));
    assert.deepEqual(await readMoments(state), await readMoments(twin));
    // Alone (no group), past f32's range too; the refused step is taken by the next call.
    let calls = 0;
    const once = () => (++calls === 1 ? 1e39 : 1e-3);
    let alone = await adam({ backend, lr: once }).init(new Float32Array(2));
    const zero = new Float32Array(2);
    assert.throws(() => step(alone, zero), saying(RangeError, "returned 1e+39 at step 1, past"));
    alone = step(alone, zero);
    assert.equal(alone.step, 1);
    assert.deepEqual(await readParams(alone), { "": zero });
  });
}

Deno.test("a constant lr past f32's range, alone or times a group's lrScale, is refused with the option named", async () => {
  // Accepted, it drove every parameter it stepped to ±Infinity at the first step.
  const big = "(the largest f32)";
  assert.throws(
    () => adam({ lr: 1e39 }),
    saying(RangeError, `Option lr must be ≤ 3.4028234663852886e+38 ${big}, got 1e+39`),
  );
  assert.throws(
    () => adamw({ lr: 1e30, groups: [{ match: /b/ }, { match: /w/, lrScale: 1e10 }] }),
    saying(
      RangeError,
      `Option lr times groups[1].lrScale must be ≤ 3.4028234663852886e+38 ${big}, got 1e+30 × 10000000000 = 1e+40`,
    ),
  );
  assert.throws(
    () => lookahead(adam({ lr: 1, groups: [{ match: /w/, lrScale: 1e39 }] })),
    RangeError,
  );
  // The largest f32 itself is accepted, and so is a huge scale of a zero lr.
  adam({ lr: 3.4028234663852886e38 });
  adam({ lr: 0, groups: [{ match: /w/, lrScale: 1e300 }] });
  // loadState's lr, given for a checkpoint whose stored group scales it past f32's range: the
  // caller's option, not the file, is named.
  const groups = [{ match: /w/, lrScale: 1e10 }];
  const bytes = await saveState(
    await adam({ groups, backend: "js" }).init({ w: new Float32Array(2) }),
  );
  await assert.rejects(
    () => loadState(bytes, { lr: 1e30, backend: "js" }),
    (e: Error) =>
      e instanceof RangeError && e.name === "RangeError" &&
      /^Option lr times groups\[0\]\.lrScale/.test(e.message),
  );
  assert.equal((await loadState(bytes, { lr: 1e28, backend: "js" })).step, 0);
});
