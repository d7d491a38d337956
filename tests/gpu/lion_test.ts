/**
 * Lion on the WebGPU backend: every step against the float64 reference on random cases (every
 * training-loop feature: LookAhead, centralization, groups, clipping, skipped steps), its one
 * moment and arena, and checkpoints between the GPU and the CPU.
 *
 * GPU tolerance: see gpu_device.ts.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { lion, loadState, lookahead, readMoments, readParams, saveState, step } from "../../mod.ts";
import { stateInternals } from "../../core/state.ts";
import { caseData, checkAgainstReference, lionCaseArb, optimizerFor, readAll } from "../cases.ts";
import { device, ignore, K_GPU, noGpuErrors } from "./gpu_device.ts";

Deno.test({
  name: "webgpu lion: every step matches the float64 reference, every feature",
  ignore,
  async fn() {
    await noGpuErrors(() =>
      fc.assert(
        fc.asyncProperty(lionCaseArb(20), (c) =>
          checkAgainstReference(
            c,
            (params) => optimizerFor(c, "webgpu").init(params, { device: device! }),
            K_GPU,
          )),
        { numRuns: 10 },
      )
    );
  },
});

Deno.test({
  name: "webgpu lion: one moment (exp_avg), three sections, LookAhead's fourth",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      let state = await lion({ lr: 0.01 }).init({ w: new Float32Array([1, 1, 1]) }, {
        device: device!,
      });
      assert.equal(state.backend, "webgpu");
      assert.equal(stateInternals(state).backend.layout.sectionCount, 3);
      state = step(state, { w: new Float32Array([2, -3, 0]) });
      const lr = Math.fround(0.01);
      assert.deepEqual([...(await readParams(state)).w], [
        Math.fround(1 - lr),
        Math.fround(1 + lr),
        1,
      ]);
      const moments = await readMoments(state);
      assert.deepEqual(Object.keys(moments), ["exp_avg"]);
      const slow = await lookahead(lion()).init({ w: new Float32Array(5) }, { device: device! });
      assert.equal(stateInternals(slow).backend.layout.sectionCount, 4);
    });
  },
});

Deno.test({
  name: "webgpu lion: checkpoints move between the GPU and wasm",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const c = fc.sample(lionCaseArb(8, false), { numRuns: 1, seed: 7 })[0];
      const { params, grads } = caseData(c);
      let gpu = await optimizerFor(c, "webgpu").init(params, { device: device! });
      let cpu = await optimizerFor(c, "wasm").init(params);
      for (let t = 1; t <= 4; t++) {
        gpu = step(gpu, grads(t));
        cpu = step(cpu, grads(t));
      }
      const lr = optimizerFor(c, "js").settings.hyperparameters.lr;
      // GPU → wasm: the checkpoint holds the GPU's values exactly.
      const fromGpu = await loadState(await saveState(gpu), { backend: "wasm", lr });
      const [a, b] = [await readAll(gpu), await readAll(fromGpu)];
      for (const name of Object.keys(a)) assert.deepEqual(a[name], b[name], name);
      // wasm → GPU, then steps on both stay within the GPU tolerance of each other's start.
      let toGpu = await loadState(await saveState(cpu), { device: device!, lr });
      assert.equal(toGpu.backend, "webgpu");
      assert.equal(toGpu.step, 4);
      toGpu = step(toGpu, grads(5));
      cpu = step(cpu, grads(5));
      const [x, y] = [await readAll(toGpu), await readAll(cpu)];
      for (const name of Object.keys(x)) {
        x[name].m.forEach((m, i) =>
          assert.ok(Math.abs(m - y[name].m[i]) <= 1e-6 * (Math.abs(m) + 1e-30), name)
        );
      }
    });
  },
});
