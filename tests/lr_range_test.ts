/**
 * A learning rate past f32's range, alone or times a parameter group's `lrScale`: refused where
 * it is set (options, loadState's lr, setLearningRate in tests/tfjs/config_test.ts) or, from a
 * schedule, at the step it is for, changing nothing (WebGPU: tests/gpu/webgpu_state_test.ts).
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  lion,
  loadState,
  lookahead,
  radam,
  readMoments,
  readParams,
  saveState,
  sgd,
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

Deno.test("a weightDecay, eps or momentum past f32's range is refused with the option named", () => {
  // Accepted, the kernels read it as an f32 Infinity: a coupled decay or a momentum made
  // Infinity · 0 = NaN of every zero parameter or buffer (the float64 rule: a finite step), and
  // an eps took no step at all where the float64 rule takes lr · m̂ / eps.
  const big = "≤ 3.4028234663852886e+38 (the largest f32)";
  const cases: [() => unknown, string][] = [
    [() => adam({ weightDecay: 1e39 }), `Option weightDecay must be ${big}, got 1e+39`],
    [() => lion({ weightDecay: 1e300 }), "Option weightDecay must be"],
    [() => sgd({ weightDecay: 1e39 }), "Option weightDecay must be"],
    [() => radam({ eps: 1e39 }), `Option eps must be ${big}, got 1e+39`],
    [() => sgd({ momentum: 1e39 }), `Option momentum must be ${big}, got 1e+39`],
    [
      () => adamw({ groups: [{ match: /w/, weightDecay: 1e39 }] }),
      `Option groups[0].weightDecay must be ${big}, got 1e+39`,
    ],
  ];
  for (const [call, text] of cases) assert.throws(call, saying(RangeError, text));
  // The largest f32 itself is accepted.
  adam({ weightDecay: 3.4028234663852886e38, eps: 3.4028234663852886e38 });
  sgd({ momentum: 3.4028234663852886e38 });
});

for (const backend of ["wasm", "js"] as const) {
  Deno.test(`${backend}: a step whose f32 scalars would overflow is refused, changing nothing`, async () => {
    // 1 − lr · weightDecay (decoupled) and lr / (1 − β1^t) past f32's range were taken as
    // ±Infinity: a zero parameter became Infinity · 0 = NaN, where the float64 rule keeps it
    // finite (−lr at a zero gradient's neighbour; 0 · (1 − lr · wd) = 0).
    const cases = [
      adamw({ backend, lr: 10, weightDecay: 1e38 }),
      lion({ backend, lr: 10, weightDecay: 1e38 }),
      adam({ backend, lr: 3e38, betas: [1 - 2 ** -30, 0.999] }),
    ];
    for (const opt of cases) {
      const state = await opt.init({ w: new Float32Array([0, 1]) });
      const g = { w: new Float32Array([0, 1]) };
      assert.throws(() => step(state, g), saying(RangeError, "past the largest f32"));
      assert.equal(state.step, 0);
      assert.deepEqual(await readParams(state), { w: new Float32Array([0, 1]) });
      for (const m of Object.values(await readMoments(state))) {
        assert.deepEqual(m, { w: new Float32Array(2) });
      }
    }
  });
}
