/**
 * On WebGPU (Mesa's llvmpipe in CI), a state whose step count is past what one u32 holds (a
 * checkpoint of a long run on the CPU) steps as the CPU does: at its own t (bias corrections,
 * RAdam's rectifier, a schedule, LookAhead's sync), counting taken and skipped steps from the
 * checkpoint's.
 *
 * GPU tolerance: see gpu_device.ts.
 */
import assert from "node:assert/strict";
import { loadState, ranger, readParams, readSlowWeights, saveState, step } from "../../mod.ts";
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
