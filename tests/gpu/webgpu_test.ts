/**
 * The WebGPU backend against the float64 reference and the wasm backend (on Mesa's llvmpipe in
 * CI). Without an adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 *
 * GPU tolerance: see gpu_device.ts.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adam,
  type GpuTensor,
  loadState,
  type Optimizer,
  type OptimizerState,
  type Params,
  radam,
  ranger,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "../../mod.ts";
import { caseArb, caseData, checkAgainstReference, optimizerFor, readAll } from "../cases.ts";
import { initWebGpuState } from "../../gpu/webgpu_state.ts";
import { createWebGpuBackend, planGpuArena } from "../../gpu/webgpu_backend.ts";
import { WORKGROUP_SIZE } from "../../gpu/wgsl_kernel.ts";
import { EXP_AVG, EXP_AVG_SQ, PARAMS } from "../../core/arena.ts";
import { adapter, device, ignore, K_GPU, noGpuErrors } from "./gpu_device.ts";

Deno.test({
  name: "webgpu: every step matches the float64 reference on random cases",
  ignore,
  async fn() {
    await noGpuErrors(() =>
      fc.assert(
        fc.asyncProperty(caseArb(50, false), (c) =>
          checkAgainstReference(
            c,
            (params) => optimizerFor(c, "webgpu").init(params, { device: device! }),
            K_GPU,
          )),
        { numRuns: 6 },
      )
    );
  },
});

/**
 * Cases with the training-loop features the GPU runs: LookAhead, gradient centralization,
 * parameter groups, Nesterov and clipping (no non-finite gradients: nothing is skipped).
 */
const gpuFeatureCases = caseArb(20, true).map((c) => ({
  ...c,
  extras: { ...c.extras, badCalls: [] },
}));

Deno.test({
  name: "webgpu: LookAhead, gc, groups, Nesterov, clipping match the float64 reference each step",
  ignore,
  async fn() {
    await noGpuErrors(() =>
      fc.assert(
        fc.asyncProperty(gpuFeatureCases, (c) =>
          checkAgainstReference(
            c,
            (params) => optimizerFor(c, "webgpu").init(params, { device: device! }),
            K_GPU,
          )),
        { numRuns: 8 },
      )
    );
  },
});

Deno.test({
  name: "webgpu: Ranger with Nesterov, gc, clipping and a group matches the reference",
  ignore,
  async fn() {
    const base = fc.sample(gpuFeatureCases, { numRuns: 1, seed: 11 })[0];
    const c = {
      ...base,
      kind: "radam" as const,
      options: {
        ...base.options,
        lr: 1e-2,
        betas: [0.9, 0.99] as [number, number],
        nesterov: true,
      },
      lengths: [4097, 33, 64, 1, 0, 257],
      steps: 24,
      extras: {
        ...base.extras,
        lookahead: { k: 3, alpha: 0.5 },
        clipGradNorm: 0.5,
        gc: true,
        group: { lrScale: 3, weightDecay: 0.05 },
      },
    };
    await noGpuErrors(() =>
      checkAgainstReference(
        c,
        (params) => optimizerFor(c, "webgpu").init(params, { device: device! }),
        K_GPU,
      )
    );
  },
});

Deno.test({
  name: "webgpu agrees with wasm within the GPU tolerance after 50 steps",
  ignore,
  async fn() {
    await fc.assert(
      fc.asyncProperty(caseArb(50, false), async (c) => {
        const { params, grads } = caseData(c);
        let gpu = await optimizerFor(c, "webgpu").init(params, { device: device! });
        let cpu = await optimizerFor(c, "wasm").init(params);
        assert.equal(gpu.backend, "webgpu");
        for (let t = 1; t <= c.steps; t++) {
          gpu = step(gpu, grads(t));
          cpu = step(cpu, grads(t));
        }
        const a = await readAll(gpu), b = await readAll(cpu);
        for (const name of Object.keys(b)) {
          for (const f of ["m", "v"] as const) {
            for (let i = 0; i < b[name][f].length; i++) {
              const x = a[name][f][i], y = b[name][f][i];
              if (Number.isNaN(y)) assert.ok(Number.isNaN(x));
              else assert.ok(Math.abs(x - y) <= 1e-4 * Math.abs(y) + 1e-30, `${f} ${name}[${i}]`);
            }
          }
        }
      }),
      { numRuns: 4 },
    );
  },
});

Deno.test({
  name: "webgpu: split bindings and a 2-D grid match the single-dispatch result",
  ignore,
  async fn() {
    const c = {
      ...fc.sample(caseArb(3, false), { numRuns: 1, seed: 7 })[0],
      lengths: [4097, 33, 1000],
    };
    const opt = optimizerFor(c, "webgpu");
    // 4 KiB bindings (1024 elements, 4 workgroups a chunk) and at most 2 workgroups per
    // dimension: 6 dispatches, each on a 2 × 2 grid (the last one 1 × 1).
    const tiny = { maxStorageBufferBindingSize: 4096, maxComputeWorkgroupsPerDimension: 2 };
    await checkAgainstReference(
      c,
      (params) => initWebGpuState(opt.settings, params, { device: device! }, tiny),
      K_GPU,
    );
    // The gradient norm over split bindings too (clipping on: its partial sums per chunk).
    const clipped = { ...c, extras: { ...c.extras, clipGradNorm: 0.25 } };
    const clipOpt = optimizerFor(clipped, "webgpu");
    await checkAgainstReference(
      clipped,
      (params) => initWebGpuState(clipOpt.settings, params, { device: device! }, tiny),
      K_GPU,
    );
    const backend = await createWebGpuBackend(
      device!,
      planGpuArena(["a", "b", "c"], c.lengths),
      { limits: tiny },
    );
    assert.equal(backend.dispatchCount, 6);
    assert.deepEqual(backend.grids, [[2, 2], [2, 2], [2, 2], [2, 2], [2, 2], [1, 1]]);
    backend.destroy();
  },
});

Deno.test({
  name: "webgpu: a tensor larger than 65535 × workgroup size elements, and 2-D dispatch",
  ignore,
  async fn() {
    const n = 65535 * WORKGROUP_SIZE + 4099;
    const p = new Float32Array(n).map((_, i) => (i % 97) - 48);
    const g = new Float32Array(n).map((_, i) => ((i * 7) % 13) - 6);
    const opt = adam({ lr: 1e-2 });
    const limits = { maxComputeWorkgroupsPerDimension: 4096 };
    let state = await noGpuErrors(() =>
      initWebGpuState(opt.settings, { w: p }, { device: device! }, limits)
    );
    let cpu = await adam({ lr: 1e-2, backend: "wasm" }).init({ w: p });
    state = step(state, { w: g });
    cpu = step(cpu, { w: g });
    const got = (await readParams(state)).w, want = (await readParams(cpu)).w;
    assert.equal(got.length, n);
    for (let i = 0; i < n; i++) {
      if (Math.abs(got[i] - want[i]) > 1e-5 * Math.abs(want[i]) + 1e-12) {
        assert.fail(`w[${i}] = ${got[i]}, wasm ${want[i]}`);
      }
    }
  },
});

Deno.test({
  name: "webgpu: zero-copy grad slots, GPUBuffer params and grads, readMoments",
  ignore,
  async fn() {
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const pBuf = device!.createBuffer({ size: 5 * 4, usage });
    device!.queue.writeBuffer(pBuf, 0, new Float32Array([1, 2, 3, 4, 5]));
    const gBuf = device!.createBuffer({ size: 5 * 4, usage });
    device!.queue.writeBuffer(gBuf, 0, new Float32Array([1, 1, 1, 1, 1]));
    const opt = radam({ lr: 0.1 });
    let state = await noGpuErrors(() =>
      opt.init({ w: pBuf, b: new Float32Array([0.5]) }, { device: device! })
    );
    assert.equal(state.backend, "webgpu");
    assert.equal(state.params.w.buffer, pBuf, "caller's buffer is the param slot");
    state = step(state, { w: gBuf, b: new Float32Array([2]) });
    // zero copy: write the arena's grad slot on the GPU, then step without grads
    device!.queue.writeBuffer(state.grads.w.buffer, state.grads.w.offset, new Float32Array(5));
    device!.queue.writeBuffer(state.grads.b.buffer, state.grads.b.offset, new Float32Array([2]));
    state = step(state);
    const { w, b } = await readParams(state);
    let cpu = await radam({ lr: 0.1, backend: "wasm" }).init({
      w: new Float32Array([1, 2, 3, 4, 5]),
      b: new Float32Array([0.5]),
    });
    cpu = step(cpu, { w: new Float32Array(5).fill(1), b: new Float32Array([2]) });
    cpu = step(cpu, { w: new Float32Array(5), b: new Float32Array([2]) });
    const want = await readParams(cpu);
    assert.deepEqual([...w].map((x) => x.toFixed(5)), [...want.w].map((x) => x.toFixed(5)));
    assert.equal(b[0].toFixed(5), want.b[0].toFixed(5));
    // the caller's buffer holds the updated params too
    const staging = device!.createBuffer({
      size: 20,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = device!.createCommandEncoder();
    enc.copyBufferToBuffer(pBuf, 0, staging, 0, 20);
    device!.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    assert.deepEqual(new Float32Array(staging.getMappedRange().slice(0)), w);
    staging.unmap();
    const moments = await readMoments(state);
    assert.equal(moments.exp_avg.w.length, 5);
    assert.throws(
      () => step(state, { w: new Float32Array(4), b: new Float32Array(1) }),
      RangeError,
    );
  },
});

Deno.test({
  name: "webgpu: after device loss, step and readParams throw and say how to resume",
  ignore,
  async fn() {
    const own = await adapter!.requestDevice();
    const state = await radam().init({ w: new Float32Array(8) }, { device: own });
    own.destroy();
    await own.lost;
    assert.throws(() => step(state, { w: new Float32Array(8) }), /device .*was lost.*resume/is);
    await assert.rejects(() => readParams(state), /lost/);
  },
});

Deno.test({
  name: "webgpu: backend selection",
  ignore,
  async fn() {
    const s = await radam().init({ w: new Float32Array(2) }, { device: device! });
    assert.equal(s.backend, "webgpu");
    const cpu = await radam().init({ w: new Float32Array(2) }, {});
    assert.equal(cpu.backend, "wasm");
    await assert.rejects(
      () => radam({ backend: "wasm" }).init({ w: new Float32Array(2) }, { device: device! }),
      TypeError,
    );
  },
});

Deno.test({
  name: "webgpu: writeSection restores moments and params (checkpoints)",
  ignore,
  async fn() {
    const backend = await createWebGpuBackend(device!, planGpuArena(["a", "b"], [3, 70]));
    const a = new Float32Array([1, 2, 3]), b = new Float32Array(70).map((_, i) => i / 7);
    await noGpuErrors(async () => {
      for (const section of [PARAMS, EXP_AVG, EXP_AVG_SQ]) {
        backend.writeSection(section, { a, b: b.map((x) => x + section) });
        const back = await backend.readSection(section);
        assert.deepEqual(back.a, a);
        assert.deepEqual(back.b, b.map((x) => x + section));
      }
    });
    backend.destroy();
  },
});

Deno.test({
  name: "webgpu: bad gradients throw naming the tensor and leave the state usable",
  ignore,
  async fn() {
    const opt = adam({ lr: 0.1 });
    let state = await opt.init({ w: new Float32Array([1, 2]) }, { device: device! });
    assert.throws(() => step(state, { w: new Float32Array(3) }), /"w".*length 2, got 3/);
    assert.throws(() => step(state, { v: new Float32Array(2) }), /Missing gradient .*"w"/);
    assert.throws(() => step(state, { w: "x" } as never), /"w".*Float32Array or a GPU tensor/);
    const small = device!.createBuffer({ size: 4, usage: GPUBufferUsage.COPY_SRC });
    assert.throws(() => step(state, { w: small }), /length 2, got 1/);
    assert.equal(state.step, 0);
    state = step(state, { w: new Float32Array([1, 1]) });
    assert.equal(state.step, 1);
    const { w } = await readParams(state);
    assert.ok(w[0] < 1 && w[1] < 2);
  },
});

Deno.test({
  name: "webgpu: an explicit request without WebGPU throws a clear error, no fallback",
  ignore,
  async fn() {
    const saved = Object.getOwnPropertyDescriptor(navigator, "gpu");
    Object.defineProperty(navigator, "gpu", { value: undefined, configurable: true });
    try {
      await assert.rejects(
        () => radam({ backend: "webgpu" }).init({ w: new Float32Array(2) }, {}),
        /webgpu backend was requested but this runtime has no WebGPU/,
      );
      const cpu = await radam().init({ w: new Float32Array(2) }, {});
      assert.equal(cpu.backend, "wasm");
    } finally {
      if (saved) Object.defineProperty(navigator, "gpu", saved);
      else delete (navigator as { gpu?: unknown }).gpu;
    }
    assert.ok(navigator.gpu);
  },
});

/**
 * `opt` through checkpoints: 10 steps on wasm, 10 on the GPU, 10 on wasm again; and the same 30
 * steps on wasm alone. `atLoad` runs on the GPU state just loaded (and the wasm one it came from).
 */
async function wasmGpuWasm(
  opt: Optimizer,
  params: Params,
  grad: (t: number) => Record<string, Float32Array>,
  atLoad?: (gpu: OptimizerState<GpuTensor>, cpu: OptimizerState) => Promise<void>,
) {
  let cpu = await opt.init(params);
  for (let t = 1; t <= 10; t++) cpu = step(cpu, grad(t));
  let gpu = await loadState(await saveState(cpu), { device: device! });
  assert.equal(gpu.backend, "webgpu");
  assert.equal(gpu.step, 10);
  await atLoad?.(gpu, cpu);
  for (let t = 11; t <= 20; t++) gpu = step(gpu, grad(t));
  let back = await loadState(await saveState(gpu), { backend: "wasm" });
  for (let t = 21; t <= 30; t++) back = step(back, grad(t));
  let whole = await opt.init(params);
  for (let t = 1; t <= 30; t++) whole = step(whole, grad(t));
  assert.equal(back.step, 30);
  return { cpu, gpu, back, whole };
}

Deno.test({
  name: "webgpu: checkpoints move between wasm and the GPU and resume where they stopped",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const params = { w: Float32Array.from({ length: 1027 }, (_, i) => Math.sin(i)) };
      const grad = (t: number) => ({ w: params.w.map((x, i) => Math.cos(i * t) * 0.1 + x * 0.01) });
      const { back, whole } = await wasmGpuWasm(radam({ lr: 1e-2 }), params, grad);
      const a = (await readParams(back)).w, b = (await readParams(whole)).w;
      for (let i = 0; i < a.length; i++) {
        assert.ok(
          Math.abs(a[i] - b[i]) <= 1e-5 * (1 + Math.abs(b[i])),
          `w[${i}]: ${a[i]} vs ${b[i]}`,
        );
      }
    });
  },
});

Deno.test({
  name: "webgpu: a clipped Ranger checkpoint with groups moves wasm → webgpu → wasm",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const params = {
        "fc.weight": {
          data: Float32Array.from({ length: 32 * 33 }, (_, i) => Math.sin(i)),
          shape: [32, 33],
        },
        "fc.bias": Float32Array.from({ length: 33 }, (_, i) => Math.cos(i)),
        "out.weight": {
          data: Float32Array.from({ length: 5 * 7 }, (_, i) => i / 35),
          shape: [5, 7],
        },
      };
      const data = (name: keyof typeof params) => {
        const p = params[name];
        return p instanceof Float32Array ? p : p.data;
      };
      const grad = (t: number) => {
        const g: Record<string, Float32Array> = {};
        for (const name of Object.keys(params) as (keyof typeof params)[]) {
          g[name] = data(name).map((x, i) => Math.cos(i * t) * 0.1 + x * 0.01);
        }
        return g;
      };
      const opt = ranger({
        lr: 1e-2,
        k: 4,
        nesterov: true,
        clipGradNorm: 1,
        groups: [{ match: /bias/, lrScale: 2, weightDecay: 0.1 }],
      });
      const { cpu, gpu, back, whole } = await wasmGpuWasm(opt, params, grad, async (gpu, cpu) => {
        assert.deepEqual(await readSlowWeights(gpu), await readSlowWeights(cpu));
      });
      const [a, b] = [await readParams(back), await readParams(whole)];
      const [sa, sb] = [await readSlowWeights(back), await readSlowWeights(whole)];
      for (const name of Object.keys(b)) {
        for (const [x, y, what] of [[a, b, "param"], [sa, sb, "slow"]] as const) {
          for (let i = 0; i < y[name].length; i++) {
            assert.ok(
              Math.abs(x[name][i] - y[name][i]) <= 1e-5 * (1 + Math.abs(y[name][i])),
              `${what} ${name}[${i}]: ${x[name][i]} vs ${y[name][i]}`,
            );
          }
        }
      }
      // The GPU's own steps moved the weights (not a pass-through of the checkpoint).
      const at10 = await readParams(cpu);
      assert.notDeepEqual((await readParams(gpu))["fc.bias"], at10["fc.bias"]);
    });
  },
});

Deno.test({
  name: "webgpu: a non-finite check is refused at init, naming the option",
  ignore,
  async fn() {
    const w = new Float32Array(4);
    await assert.rejects(
      () => radam({ nonFinite: "skip" }).init({ w }, { device: device! }),
      (e) => e instanceof TypeError && /nonFinite: "skip"/.test(e.message),
    );
    const s = await ranger({ groups: [{ match: /w/, lrScale: 2 }] }).init({ w }, {
      device: device!,
    });
    assert.equal(s.backend, "webgpu");
  },
});
