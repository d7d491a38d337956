/**
 * A WebGPU state's load of a checkpoint of many tensors: it uploads the values of consecutive
 * tensors of each section together (a model of many small tensors took one `writeBuffer` per
 * tensor per section, as init did before), and every value read back is the one saved, bit for
 * bit, whatever the sizes (a tensor above a gathered upload's bytes is uploaded by itself).
 */
import assert from "node:assert/strict";
import {
  dispose,
  loadState,
  lookahead,
  radam,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "../../mod.ts";
import { bits, randoms } from "../util.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";
import { smallParams, uploads } from "./uploads.ts";
import { createWebGpuBackend } from "../../gpu/webgpu_create.ts";
import { planGpuArena } from "../../gpu/arena_plan.ts";
import { ADAM } from "../../rules/adam.ts";
import { EXP_AVG, PARAMS } from "../../base/arena.ts";

/** A checkpoint of a RAdam state of `params` after a step (moments not zero). */
async function fileOf(params: Record<string, Float32Array>): Promise<Uint8Array> {
  const grads = Object.fromEntries(
    Object.entries(params).map(([name, p], i) => [name, randoms(p.length, 1000 + i)]),
  );
  const state = step(await lookahead(radam({ lr: 1e-3 })).init(params), grads);
  return await saveState(state);
}

Deno.test({
  name: "WebGPU loadState uploads as many times for 1000 small tensors as for 50",
  ignore,
  fn: async () => {
    const counts = [];
    for (const n of [50, 1000]) {
      const bytes = await fileOf(smallParams(n));
      counts.push(await uploads(async () => dispose(await loadState(bytes, { device }))));
    }
    assert.equal(counts[1], counts[0], `writeBuffer calls at 50 and 1000 tensors`);
  },
});

Deno.test({
  name: "WebGPU loadState's values read back bit-exact, small tensors, one above an upload's bytes",
  ignore,
  fn: async () => {
    const params = smallParams(300);
    params["big.w"] = randoms(300_000, 7); // 1.2 MB: more than one gathered upload takes
    params["after.w"] = new Float32Array([-0, 1e-45, -3.4e38]);
    params["last.w"] = randoms(3, 8);
    const bytes = await fileOf(params);
    const host = await loadState(bytes);
    const state = await noGpuErrors(() => loadState(bytes, { device }));
    const [p, m, slow] = [
      await readParams(state),
      await readMoments(state),
      await readSlowWeights(state),
    ];
    const [hp, hm, hslow] = [
      await readParams(host),
      await readMoments(host),
      await readSlowWeights(host),
    ];
    for (const name of Object.keys(params)) {
      assert.deepEqual(bits(p[name]), bits(hp[name]), name);
      assert.deepEqual(bits(slow[name]), bits(hslow[name]), `${name}.slow`);
      for (const k of Object.keys(hm)) {
        assert.deepEqual(bits(m[k][name]), bits(hm[k][name]), `${name}.${k}`);
      }
    }
    dispose(state);
  },
});

Deno.test({
  name: "WebGPU writeSection of some tensors leaves the others' values, gathered or not",
  ignore,
  fn: async () => {
    const names = ["a", "b", "c", "d"];
    const backend = await createWebGpuBackend(device!, planGpuArena(names, [3, 5, 2, 4]), ADAM);
    const all = Object.fromEntries(names.map((name, i) => [name, randoms([3, 5, 2, 4][i], i)]));
    await noGpuErrors(async () => {
      for (const section of [PARAMS, EXP_AVG]) {
        backend.writeSection(section, all);
        // Only b and d: a and c, between and before them in the arena, keep what they held.
        const some = { b: randoms(5, 10), d: randoms(4, 11) };
        backend.writeSection(section, some);
        const back = await backend.readSection(section);
        assert.deepEqual(bits(back.a), bits(all.a), "a");
        assert.deepEqual(bits(back.c), bits(all.c), "c");
        assert.deepEqual(bits(back.b), bits(some.b), "b");
        assert.deepEqual(bits(back.d), bits(some.d), "d");
      }
    });
    backend.destroy();
  },
});
