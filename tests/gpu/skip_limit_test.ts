/**
 * On WebGPU, where the device counts the steps it skips, a state that has skipped 2⁵³ − 1 steps
 * (a checkpoint's count) refuses the next skip as the CPU backends do: the step is not taken, its
 * error says the count is at its limit (reported at the first call after the GPU ran it, as a
 * halt under "throw"), and the count stays one a checkpoint holds; it saved past 2⁵³ − 1 a
 * checkpoint that `loadState` refused.
 */
import assert from "node:assert/strict";
import { adam, dispose, loadState, readParams, saveState, step } from "../../mod.ts";
import { restoreState } from "../../core/state.ts";
import { planGpuArena } from "../../gpu/arena_plan.ts";
import { CONTROL_WORD } from "../../gpu/control.ts";
import { createWebGpuBackend } from "../../gpu/webgpu_create.ts";
import { ADAM } from "../../rules/adam.ts";
import { edit } from "../checkpoint_files.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";

const LIMIT = /cannot skip another step: it has skipped 2⁵³ − 1/;

Deno.test({
  name:
    "webgpu: a state at 2^53 − 1 skipped steps refuses the next skip as the CPU does, and its checkpoint loads",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const opt = adam({ lr: 1e-2, nonFinite: "skip" });
      const bytes = await saveState(await opt.init({ w: new Float32Array([1, -2, 3]) }));
      const at = edit(bytes, (h) => (h.__metadata__.skipped_steps = String(2 ** 53 - 3)));
      const bad = { w: new Float32Array([1, NaN, 1]) }, good = { w: new Float32Array([1, 1, 1]) };
      let cpu = await loadState(at, { backend: "js" });
      let gpu = await loadState(at, { device: device! });
      for (let i = 0; i < 2; i++) [cpu, gpu] = [step(cpu, bad), step(gpu, bad)];
      const params = (await readParams(gpu)).w;
      assert.equal(gpu.skippedSteps, Number.MAX_SAFE_INTEGER);
      assert.equal(cpu.skippedSteps, Number.MAX_SAFE_INTEGER);
      assert.throws(() => step(cpu, bad), (e) => e instanceof RangeError && LIMIT.test(e.message));
      gpu = step(gpu, bad); // (the device decides: said at the next call)
      await assert.rejects(
        readParams(gpu),
        (e) => e instanceof RangeError && LIMIT.test(e.message),
      );
      assert.deepEqual((await readParams(gpu)).w, params);
      assert.equal(gpu.skippedSteps, Number.MAX_SAFE_INTEGER);
      assert.equal(gpu.step, 0);
      const again = await loadState(await saveState(gpu), { device: device! });
      assert.equal(again.skippedSteps, Number.MAX_SAFE_INTEGER);
      // Refused again after a load; a finite step is taken on each, the count kept.
      const refused = step(again, bad);
      await assert.rejects(readParams(refused), LIMIT);
      [cpu, gpu] = [step(cpu, good), step(gpu, good)];
      const [a, b] = [(await readParams(gpu)).w, (await readParams(cpu)).w];
      a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= 1e-6, `[${i}]: ${v} vs ${b[i]}`));
      assert.deepEqual([gpu.step, gpu.skippedSteps], [1, Number.MAX_SAFE_INTEGER]);
      for (const s of [cpu, gpu, refused]) dispose(s);
    });
  },
});

Deno.test({
  name:
    "webgpu: the skip limit's window: at 2^53 − 1 − 2^32 skipped (the device's word at 0xffffffff, outside it) and just inside it a skip is counted; at the limit the first is refused, under throw as throw refuses it",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const bad = { w: new Float32Array([1, NaN, 1]) };
      /** A state of `nonFinite` loaded at `skipped` steps skipped, on the CPU and on the GPU. */
      const at = async (skipped: number, nonFinite: "skip" | "throw" = "skip") => {
        const opt = adam({ lr: 1e-2, nonFinite });
        const bytes = await saveState(await opt.init({ w: new Float32Array([1, -2, 3]) }));
        const edited = edit(bytes, (h) => (h.__metadata__.skipped_steps = String(skipped)));
        return [await loadState(edited, { backend: "js" }), await loadState(edited, { device })];
      };
      for (
        const skipped of [Number.MAX_SAFE_INTEGER - 2 ** 32, Number.MAX_SAFE_INTEGER - 2 ** 32 + 1]
      ) {
        let [cpu, gpu] = await at(skipped);
        [cpu, gpu] = [step(cpu, bad), step(gpu, bad)];
        await readParams(gpu); // (not refused)
        assert.deepEqual([gpu.skippedSteps, cpu.skippedSteps], [skipped + 1, skipped + 1]);
        for (const s of [cpu, gpu]) dispose(s);
      }
      let [cpu, gpu] = await at(Number.MAX_SAFE_INTEGER);
      assert.throws(() => step(cpu, bad), LIMIT);
      gpu = step(gpu, bad);
      await assert.rejects(readParams(gpu), LIMIT);
      assert.equal(gpu.skippedSteps, Number.MAX_SAFE_INTEGER);
      for (const s of [cpu, gpu]) dispose(s);
      // Under "throw", the error of "throw" (the count is not what refused it).
      [cpu, gpu] = await at(Number.MAX_SAFE_INTEGER, "throw");
      const plain = (e: unknown) =>
        e instanceof RangeError && /holds NaN/.test(e.message) && !LIMIT.test(e.message);
      assert.throws(() => step(cpu, bad), plain);
      gpu = step(gpu, bad);
      await assert.rejects(readParams(gpu), plain);
      for (const s of [cpu, gpu]) dispose(s);
    });
  },
});

/** A WebGPU state of Adam under "skip" (and its backend) whose device starts at `skipped`. */
async function startedAt(skipped: number) {
  const opt = adam({ lr: 1e-2, backend: "webgpu" });
  const backend = await createWebGpuBackend(device!, planGpuArena(["w"], [3]), ADAM, {
    nonFinite: "skip",
  });
  backend.writeHostParams({ w: new Float32Array([1, -2, 3]) });
  const state = restoreState<unknown>(opt.settings, backend);
  backend.counter.start(0, skipped);
  return { state, backend };
}

/** Sets the device's low word of the count skipped, as after that many skips more. */
function skipsLater(backend: { counter: { control: GPUBuffer } }, low: number): void {
  device!.queue.writeBuffer(backend.counter.control, CONTROL_WORD.skipped * 4, Uint32Array.of(low));
}

Deno.test({
  name:
    "webgpu: a state that started more than 2^32 skips below 2^53 − 1 refuses the skip past it (the device was told of the limit only within 2^32 of it, at the start)",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const bad = { w: new Float32Array([1, NaN, 1]) };
      const from = Number.MAX_SAFE_INTEGER - 2 ** 32 - 1;
      let { state, backend } = await startedAt(from);
      for (let i = 0; i < 2; i++) state = step(state, bad); // (the low word wraps to 0)
      await readParams(state);
      assert.equal(state.skippedSteps, from + 2);
      skipsLater(backend, 0xfffffffd); // as after 2^32 − 3 skips more: 2^53 − 3
      for (let i = 0; i < 2; i++) state = step(state, bad);
      const params = (await readParams(state)).w;
      assert.equal(state.skippedSteps, Number.MAX_SAFE_INTEGER);
      state = step(state, bad);
      await assert.rejects(readParams(state), LIMIT);
      assert.equal(state.skippedSteps, Number.MAX_SAFE_INTEGER);
      assert.deepEqual((await readParams(state)).w, params);
      dispose(state);
    });
  },
});

Deno.test({
  name:
    "webgpu: a state that goes on with the count of one whose unreported skip crossed to within 2^32 of 2^53 − 1 refuses the skip past it",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const bad = { w: new Float32Array([1, NaN, 1]) };
      const before = await startedAt(Number.MAX_SAFE_INTEGER - 2 ** 32);
      const after = await startedAt(0);
      before.state = step(before.state, bad); // not reported yet
      after.backend.counter.continueFrom(before.backend.counter);
      skipsLater(after.backend, 0xfffffffe); // as after 2^32 − 2 skips more: 2^53 − 2
      let state = step(after.state, bad);
      await readParams(state);
      assert.equal(state.skippedSteps, Number.MAX_SAFE_INTEGER);
      state = step(state, bad);
      await assert.rejects(readParams(state), LIMIT);
      assert.equal(state.skippedSteps, Number.MAX_SAFE_INTEGER);
      for (const s of [before.state, state]) dispose(s);
    });
  },
});
