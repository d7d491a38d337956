/**
 * Lion (rules/lion.ts) on the CPU backends: every step against the float64 reference on random
 * cases (every training-loop feature, LookAhead included), wasm and js bit for bit, threads bit
 * for bit with one thread, checkpoints, its one moment and its 12-byte-a-parameter arena, and
 * known values.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adam,
  dispose,
  lion,
  loadState,
  lookahead,
  readMoments,
  readParams,
  saveState,
  step,
} from "../mod.ts";
import { stateInternals } from "../core/state.ts";
import {
  assertSameBits,
  caseData,
  checkAgainstReference,
  lionCaseArb,
  optimizerFor,
} from "./cases.ts";

for (const backend of ["wasm", "js"] as const) {
  Deno.test(`lion, ${backend}: every step matches the float64 reference on random cases`, async () => {
    await fc.assert(
      fc.asyncProperty(lionCaseArb(40), async (c) => {
        await checkAgainstReference(c, (params) => optimizerFor(c, backend).init(params));
      }),
      { numRuns: 80 },
    );
  });
}

Deno.test("lion: wasm, js and 2 threads give the same bits at every step", async () => {
  await fc.assert(
    fc.asyncProperty(lionCaseArb(30), async (c) => {
      const { params, grads } = caseData(c);
      let wasm = await optimizerFor(c, "wasm").init(params);
      let js = await optimizerFor(c, "js").init(params);
      let threaded = await optimizerFor(c, "wasm", { threads: 2, threadThreshold: 0 }).init(params);
      try {
        assert.equal(threaded.threads, 2);
        for (let t = 1; t <= c.steps; t++) {
          wasm = step(wasm, grads(t));
          js = step(js, grads(t));
          threaded = step(threaded, grads(t));
          await assertSameBits(wasm, js, `js, step ${t}`);
          await assertSameBits(wasm, threaded, `threads, step ${t}`);
        }
      } finally {
        dispose(threaded);
      }
    }),
    { numRuns: 25 },
  );
});

Deno.test("lion: sign(0) = 0, maximize, decoupled decay and the first step's exact values", async () => {
  for (const backend of ["wasm", "js"] as const) {
    const lr = 0.01, wd = 0.5;
    let state = await lion({ lr, weightDecay: wd, backend }).init({
      w: new Float32Array([1, -2, 3, 0.5, 7]),
    });
    state = step(state, { w: new Float32Array([0.25, 0.5, 0, -1, 0]) });
    const f = Math.fround;
    const pd = f(1 - lr * wd), ss = f(lr);
    const expected = [1, -2, 3, 0.5, 7].map((p, i) => f(f(p * pd) - ss * [1, 1, 0, -1, 0][i]));
    assert.deepEqual([...state.params.w], expected, backend);
    const { exp_avg } = await readMoments(state);
    const c2 = f(1 - 0.99);
    assert.deepEqual([...exp_avg.w], [0.25, 0.5, 0, -1, 0].map((g) => f(c2 * g)));
    // maximize climbs: the same step with the sign reversed
    let up = await lion({ lr, maximize: true, backend }).init({ w: new Float32Array([1]) });
    up = step(up, { w: new Float32Array([0.25]) });
    assert.equal(up.params.w[0], f(1 + ss));
  }
});

Deno.test("lion keeps one moment: readMoments, checkpoints and a 12-byte-a-parameter arena", async () => {
  const state = await lion().init({ a: new Float32Array(5), b: new Float32Array(3) });
  const moments = await readMoments(state);
  assert.deepEqual(Object.keys(moments), ["exp_avg"]);
  assert.equal(stateInternals(state).backend.layout.sectionCount, 3);
  // 12 bytes a parameter (and the gaps between sections, at most 5% of one), against 16.
  const n = 1 << 20;
  const big = stateInternals(await lion().init({ w: new Float32Array(n) })).backend.layout;
  assert.deepEqual(big.sectionOffsets.map((o) => o >= 0), [true, true, true]);
  assert.ok(big.byteLength <= 3 * 4 * n * 1.05, `${big.byteLength} bytes`);
  const adamLayout = stateInternals(await adam().init({ w: new Float32Array(n) })).backend.layout;
  assert.ok(adamLayout.byteLength >= 4 * 4 * n);
  const slow = await lookahead(lion()).init({ a: new Float32Array(5) });
  assert.equal(stateInternals(slow).backend.layout.sectionCount, 4);
  const bytes = await saveState(state);
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  assert.deepEqual(
    Object.keys(header).filter((k) => k !== "__metadata__").sort(),
    ["a", "a.exp_avg", "b", "b.exp_avg"],
  );
  assert.equal(header.__metadata__.optimizer, "lion");
  assert.deepEqual(JSON.parse(header.__metadata__.hyperparameters), {
    lr: 1e-4,
    betas: [0.9, 0.99],
    weightDecay: 0,
    maximize: false,
    gc: false,
  });
});

Deno.test("lion: N steps, save, load (any CPU backend, threads), M steps is N + M steps, bit for bit", async () => {
  await fc.assert(
    fc.asyncProperty(lionCaseArb(12), fc.integer({ min: 0, max: 11 }), async (c, n) => {
      const { params, grads } = caseData(c);
      let straight = await optimizerFor(c, "wasm").init(params);
      for (let t = 1; t <= n; t++) straight = step(straight, grads(t));
      const bytes = await saveState(straight);
      for (let t = n + 1; t <= c.steps; t++) straight = step(straight, grads(t));
      const lr = optimizerFor(c, "js").settings.hyperparameters.lr;
      for (const [backend, threads] of [["js", 1], ["wasm", 1], ["wasm", 2]] as const) {
        let resumed = await loadState(bytes, { backend, threads, threadThreshold: 0, lr });
        try {
          for (let t = n + 1; t <= c.steps; t++) resumed = step(resumed, grads(t));
          await assertSameBits(resumed, straight, `${backend} × ${threads}`);
        } finally {
          dispose(resumed);
        }
      }
    }),
    { numRuns: 20 },
  );
});

Deno.test("lion: lookahead(lion()) syncs every k steps", async () => {
  let state = await lookahead(lion({ lr: 0.1 }), { k: 2, alpha: 0.5 }).init({
    w: new Float32Array([1]),
  });
  state = step(state, { w: new Float32Array([1]) });
  assert.equal(state.params.w[0], Math.fround(1 - Math.fround(0.1)));
  state = step(state, { w: new Float32Array([1]) });
  const p2 = Math.fround(Math.fround(1 - Math.fround(0.1)) - Math.fround(0.1));
  assert.equal(state.params.w[0], Math.fround(1 + Math.fround(0.5 * Math.fround(p2 - 1))));
  assert.equal(state.optimizer, "lookahead(lion)");
  assert.deepEqual((await readParams(state)).w, state.params.w);
});

Deno.test("lion: bad options name the option; unknown ones are refused", () => {
  assert.throws(() => lion({ lr: -1 }), RangeError);
  assert.throws(() => lion({ betas: [1, 0.99] }), /betas\[0\]/);
  assert.throws(() => lion({ weightDecay: NaN }), /weightDecay/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => lion({ eps: 1e-8 } as any), /Unknown option eps for lion/);
});
