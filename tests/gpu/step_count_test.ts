/**
 * On WebGPU (Mesa's llvmpipe in CI), a state whose step count is past what one u32 holds (a
 * checkpoint of a long run on the CPU) steps as the CPU does: at its own t (bias corrections,
 * RAdam's rectifier, a schedule, LookAhead's sync), counting taken and skipped steps from the
 * checkpoint's; and one whose device's u32 count of submissions wraps steps on.
 *
 * GPU tolerance: see gpu_device.ts.
 */
import assert from "node:assert/strict";
import {
  adam,
  dispose,
  loadState,
  type OptimizerState,
  ranger,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "../../mod.ts";
import { restoreState } from "../../core/state.ts";
import { planGpuArena } from "../../gpu/arena_plan.ts";
import { CONTROL_WORD } from "../../gpu/control.ts";
import { createWebGpuBackend } from "../../gpu/webgpu_create.ts";
import { ADAM } from "../../rules/adam.ts";
import { edit } from "../checkpoint_files.ts";
import { prng, randomTensor } from "../util.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";

Deno.test({
  name:
    "webgpu: a checkpoint past 2^32 steps (or crossing it) resumes there and steps at its own t, as on the CPU; skipped steps counted on",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const n = 150;
      const rand = prng(7);
      const grads = Array.from({ length: 20 }, () => ({ w: randomTensor(rand, n) }));
      const bad = { w: grads[4].w.slice() };
      bad.w[3] = NaN;
      // A schedule, k and a small β2 make each step's scalars depend on t itself.
      const lr = (t: number) => 1e-2 * (1 + (t % 7));
      const opt = ranger({ lr, k: 3, betas: [0.9, 0.5] });
      let first = await opt.init({ w: randomTensor(prng(8), n) });
      first = step(first, grads[0]);
      const bytes = await saveState(first);
      for (const from of [2 ** 32 - 3, 2 ** 32 + 5, 2 ** 40 + 1]) {
        const at = edit(bytes, (h) => {
          h.__metadata__.step = String(from);
          h.__metadata__.skipped_steps = String(2 ** 32 + 2);
        });
        let cpu = await loadState(at, { backend: "js", lr });
        let gpu = await loadState(at, { device: device!, lr });
        for (let i = 0; i < grads.length; i++) {
          const g = i === 9 ? bad : grads[i];
          cpu = step(cpu, g);
          gpu = step(gpu, g);
          if (i % 5 === 4) await readParams(gpu); // the device's counts read back
        }
        assert.equal(cpu.step, from + 19);
        assert.equal(gpu.step, from + 19, `${from}: step`);
        assert.equal(gpu.skippedSteps, 2 ** 32 + 3, `${from}: skipped steps`);
        const a = [(await readParams(gpu)).w, (await readSlowWeights(gpu)).w];
        const b = [(await readParams(cpu)).w, (await readSlowWeights(cpu)).w];
        a.forEach((x, k) =>
          x.forEach((v, i) =>
            assert.ok(
              Math.abs(v - b[k][i]) <= 1e-5 * (1 + Math.abs(b[k][i])),
              `${from}: ${k ? "slow" : "param"}[${i}]: ${v} vs ${b[k][i]}`,
            )
          )
        );
        const resumed = await loadState(await saveState(gpu), { backend: "js", lr });
        assert.equal(resumed.step, from + 19);
        assert.equal(resumed.skippedSteps, 2 ** 32 + 3);
      }
    });
  },
});

Deno.test({
  name:
    "webgpu: a state whose device has counted 2^32 submissions (its u32 count wrapped) steps, reads, skips and halts as before",
  ignore,
  async fn() {
    // The device counts submissions in a u32, the host did not unwrap it: past 2^32 submissions
    // the host found the device 2^32 behind, and each read threw that the GPU had refused 2^32
    // steps (under "throw", a halt there was never handed out: the state stayed halted).
    const w = Float32Array.from({ length: 8 }, (_, i) => i / 8);
    const grads = Array.from({ length: 8 }, (_, k) => ({
      w: Float32Array.from({ length: 8 }, (_, i) => Math.sin(i + k)),
    }));
    grads[5].w[2] = NaN; // the 6th submission, 2^32 + 3 with the device started at 2^32 − 3
    for (const nonFinite of ["skip", "throw"] as const) {
      const opt = adam({ lr: 1e-2, nonFinite, backend: "webgpu" });
      const run = async (state: OptimizerState<unknown>) => {
        for (let k = 0; k < 5; k++) state = step(state, grads[k]);
        await readParams(state);
        state = step(state, grads[5]);
        const error = await readParams(state).then(() => undefined, (e) => e);
        if (nonFinite === "throw") {
          assert.ok(error instanceof RangeError && /"w" holds NaN/.test(error.message), `${error}`);
        } else assert.equal(error, undefined);
        for (let k = 6; k < 8; k++) state = step(state, grads[k]);
        const params = await readParams(state);
        return { params, step: state.step, skipped: state.skippedSteps };
      };
      await noGpuErrors(async () => {
        const backend = await createWebGpuBackend(device!, planGpuArena(["w"], [8]), ADAM, {
          nonFinite,
        });
        backend.writeHostParams({ w });
        const wrapped = restoreState<unknown>(opt.settings, backend);
        backend.counter.start(0, 0, undefined, 2 ** 32 - 3);
        const got = await run(wrapped);
        const want = await run(await opt.init({ w }, { device: device! }));
        assert.deepEqual(got, want, nonFinite);
        assert.equal(got.step, 7);
      });
    }
  },
});

Deno.test({
  name:
    "webgpu: a state whose device has counted 2^32 skipped steps (its u32 count wrapped) counts them on, and saves and loads the count",
  ignore,
  async fn() {
    // The device counts skipped steps in a u32, which the host added to the count at the start:
    // past 2^32 skipped steps since then, state.skippedSteps fell back by 2^32.
    const w = Float32Array.from({ length: 8 }, (_, i) => i / 8);
    const good = { w: Float32Array.from({ length: 8 }, (_, i) => Math.sin(i)) };
    const bad = { w: good.w.slice() };
    bad.w[3] = NaN;
    const opt = adam({ lr: 1e-2, backend: "webgpu" });
    await noGpuErrors(async () => {
      const backend = await createWebGpuBackend(device!, planGpuArena(["w"], [8]), ADAM, {
        nonFinite: "skip",
      });
      backend.writeHostParams({ w });
      let state = restoreState<unknown>(opt.settings, backend);
      // As after 2^32 − 2 submissions since the start, every one skipped.
      backend.counter.start(0, 0, undefined, 2 ** 32 - 2);
      device!.queue.writeBuffer(
        backend.counter.control,
        CONTROL_WORD.skipped * 4,
        new Uint32Array([2 ** 32 - 2]),
      );
      state = step(state, bad);
      await readParams(state);
      assert.equal(state.skippedSteps, 2 ** 32 - 1);
      for (let k = 0; k < 2; k++) state = step(state, bad); // the device's word: 0, then 1
      state = step(state, good);
      const params = await readParams(state);
      assert.equal(state.skippedSteps, 2 ** 32 + 1);
      assert.equal(state.step, 1);
      let twin = await opt.init({ w }, { device: device! });
      twin = step(twin, good);
      assert.deepEqual(params, await readParams(twin));
      // Saved and loaded (its device's word then starts at the count mod 2^32), it counts on.
      let loaded = await loadState(await saveState(state), { device: device! });
      assert.equal(loaded.skippedSteps, 2 ** 32 + 1);
      loaded = step(loaded, bad);
      await readParams(loaded);
      assert.equal(loaded.skippedSteps, 2 ** 32 + 2);
      for (const s of [state, twin, loaded]) dispose(s);
    });
  },
});

Deno.test({
  name:
    "webgpu: a checkpoint within 64 steps of 2^53 − 1 steps on to it, counting each, and refuses the next, as on the CPU (its step hung: the scalars written ahead counted down from past 2^53, where k − 1 rounds back to k; and the count, taken + submitted − reported, rounded past 2^53)",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const n = 40;
      const rand = prng(11);
      const grads = Array.from({ length: 13 }, () => ({ w: randomTensor(rand, n) }));
      const lr = (t: number) => 1e-2 * (1 + (t % 5));
      const opt = ranger({ lr, k: 2, betas: [0.9, 0.5] });
      const bytes = await saveState(await opt.init({ w: randomTensor(prng(12), n) }));
      // Both parities: an odd count plus the steps submitted passes 2^53 at an odd sum.
      for (const from of [Number.MAX_SAFE_INTEGER - 11, Number.MAX_SAFE_INTEGER - 12]) {
        const at = edit(bytes, (h) => (h.__metadata__.step = String(from)));
        let cpu = await loadState(at, { backend: "js", lr });
        let gpu = await loadState(at, { device: device!, lr });
        for (let i = 0; i < Number.MAX_SAFE_INTEGER - from; i++) {
          cpu = step(cpu, grads[i]);
          gpu = step(gpu, grads[i]);
          await readParams(gpu);
          assert.equal(gpu.step, from + i + 1, `from ${from}, step ${i + 1}`);
        }
        assert.equal(cpu.step, Number.MAX_SAFE_INTEGER);
        const [a, b] = [(await readParams(gpu)).w, (await readParams(cpu)).w];
        a.forEach((v, i) =>
          assert.ok(Math.abs(v - b[i]) <= 1e-5 * (1 + Math.abs(b[i])), `[${i}]: ${v} vs ${b[i]}`)
        );
        // The next step is refused on both, nothing changed.
        for (const s of [cpu, gpu]) {
          assert.throws(() => step(s, grads[12]), (e: Error) => {
            assert.ok(e instanceof RangeError && e.message.includes(`step ${2 ** 53}`), e.message);
            return true;
          });
        }
        assert.deepEqual((await readParams(gpu)).w, a);
        assert.equal(gpu.step, Number.MAX_SAFE_INTEGER);
        assert.equal((await loadState(await saveState(gpu), { lr })).step, gpu.step);
        for (const s of [cpu, gpu]) dispose(s);
      }
    });
  },
});
