/**
 * The WebGPU backend's kernels and dispatches against the float64 reference and the wasm backend
 * (on Mesa's llvmpipe in CI): the one-dispatch step of a small arena, split bindings and 2-D
 * grids, zero-copy slots, backend selection, section writes and bad input. Every rule's steps
 * against its reference are in rules_test.ts. Without an adapter these tests fail, unless
 * RADAM_NO_GPU=1 says the machine has none.
 *
 * GPU tolerance: see gpu_device.ts.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adam,
  dispose,
  radam,
  ranger,
  readMoments,
  readParams,
  saveState,
  sgd,
  step,
} from "../../mod.ts";
import { caseArb, caseData, checkAgainstReference, optimizerFor, readAll } from "../cases.ts";
import { ADAM_ROW } from "../rule_table.ts";
import { initWebGpuState } from "../../core/webgpu_state.ts";
import { planGpuArena } from "../../gpu/arena_plan.ts";
import { createWebGpuBackend } from "../../gpu/webgpu_create.ts";
import { ADAM } from "../../rules/adam.ts";
import { WORKGROUP_SIZE } from "../../gpu/wgsl_kernel.ts";
import { EXP_AVG, EXP_AVG_SQ, PARAMS } from "../../base/arena.ts";
import { adapter, device, ignore, K_GPU, noGpuErrors } from "./gpu_device.ts";

/**
 * Cases with the training-loop features: LookAhead, gradient centralization, parameter groups,
 * Nesterov, clipping and non-finite gradients (skipped on the device).
 */
const gpuFeatureCases = caseArb(ADAM_ROW, 20, true);

Deno.test({
  name:
    "webgpu: a small arena's one-dispatch step and the same step in several dispatches both match the reference",
  ignore,
  async fn() {
    const one = await createWebGpuBackend(device!, planGpuArena(["a", "b"], [1000, 3]), ADAM);
    const several = await createWebGpuBackend(device!, planGpuArena(["a", "b"], [1000, 3]), ADAM, {
      limits: { smallStepElements: 0 },
    });
    assert.equal(one.smallStep, true);
    assert.equal(several.smallStep, false);
    one.destroy();
    several.destroy();
    await noGpuErrors(() =>
      fc.assert(
        fc.asyncProperty(gpuFeatureCases, (c) =>
          checkAgainstReference(
            c,
            (params) =>
              initWebGpuState(optimizerFor(c, "webgpu").settings, params, { device: device! }, {
                smallStepElements: 0,
              }),
            K_GPU,
          )),
        { numRuns: 4 },
      )
    );
  },
});

Deno.test({
  name:
    "webgpu: clipping by a factor below 2⁻¹²⁶, or of a norm past f32's range, scales the gradients as wasm does",
  ignore,
  async fn() {
    // n = 10: the one-dispatch step; 5000: the norm passes; 8-bit: the compact kernel.
    const cases = [[10, "32bit"], [5000, "32bit"], [5000, "8bit"]] as const;
    // The norm √n · value: past f32's largest (3.4e38), or not; the factor below 2⁻¹²⁶ in each
    // (an f32 subnormal of a few significant bits), where it was once 0 or a few percent off.
    const clips = [[3e38, 1], [1e38, 1], [1e36, 1e-3], [3e38, 3.4e38], [1e-3, 1e-30]] as const;
    for (const [n, states] of cases) {
      for (const [value, clipGradNorm] of clips) {
        const g = new Float32Array(n).fill(value);
        g[1] = -value;
        const run = async (backend: "wasm" | "webgpu") => {
          const opt = sgd({ lr: 1, momentum: 0.5, clipGradNorm, backend, states });
          let state = await opt.init(
            { w: new Float32Array(n) },
            backend === "webgpu" ? { device: device! } : {},
          );
          state = step(state, { w: g });
          return (await readParams(state)).w;
        };
        const [cpu, gpu] = await noGpuErrors(() => Promise.all([run("wasm"), run("webgpu")]));
        for (let i = 0; i < n; i++) {
          assert.ok(
            Math.abs(gpu[i] - cpu[i]) <= 1e-6 * Math.abs(cpu[i]) && cpu[i] !== 0,
            `${states}, n ${n}, gradients ±${value}, clip ${clipGradNorm}: w[${i}] ${
              gpu[i]
            }, wasm ${cpu[i]}`,
          );
        }
      }
    }
  },
});

Deno.test({
  name: "webgpu: Ranger with Nesterov, gc, clipping and a group matches the reference",
  ignore,
  async fn() {
    const base = fc.sample(gpuFeatureCases, { numRuns: 1, seed: 11 })[0];
    const c = {
      ...base,
      optimizer: "radam",
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
      fc.asyncProperty(caseArb(ADAM_ROW, 50, false), async (c) => {
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
      ...fc.sample(caseArb(ADAM_ROW, 3, false), { numRuns: 1, seed: 7 })[0],
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
      ADAM,
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
    const backend = await createWebGpuBackend(device!, planGpuArena(["a", "b"], [3, 70]), ADAM);
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
  name:
    "webgpu, 8-bit states: a missing or misshapen gradient is named first in the order given; a checkpoint keeps that order",
  ignore,
  async fn() {
    // The 8-bit arena puts "b" (f32 moments) first: the check named "b" here, as it was the
    // first of state.names; the CPU backends name "w".
    const opt = radam({ states: "8bit" });
    const init = () => ({ w: new Float32Array(5000), b: new Float32Array(3) });
    const state = await opt.init(init(), { device: device! });
    try {
      assert.deepEqual(state.names, ["b", "w"]);
      assert.throws(() => step(state, {} as never), /Missing gradient for parameter "w"/);
      const short = { w: new Float32Array(4999), b: new Float32Array(2) };
      assert.throws(() => step(state, short), /gradient of parameter "w" to have length 5000/);
      const bytes = await saveState(state);
      const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
      const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
      assert.deepEqual(JSON.parse(header.__metadata__.tensor_order), ["w", "b"]);
      assert.equal(state.step, 0);
    } finally {
      dispose(state);
    }
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
    // A record's inherited members are not gradients: toString's was read as one ("a function").
    const named = await opt.init({ toString: new Float32Array(2) }, { device: device! });
    assert.throws(
      () => step(named, { tostring: new Float32Array(2) }),
      /Missing gradient for parameter "toString"; got an unexpected "tostring"/,
    );
    dispose(named);
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
  name:
    "webgpu: parameter groups whose scalar ring is past the device's binding limit are refused at init with a RangeError, where the first step failed with a GPU validation error",
  ignore,
  async fn() {
    // A device of the default limits (128 MiB a binding): 2000 groups take a ring of 139 MB.
    const limited = await adapter!.requestDevice();
    const n = 2000;
    const names = Array.from({ length: n }, (_, i) => `layer${i}`);
    const params = Object.fromEntries(names.map((name) => [name, new Float32Array(3).fill(1)]));
    const groups = names.map((name, i) => ({
      match: (x: string) => x === name,
      lrScale: 1 + i / n,
    }));
    await assert.rejects(
      () => radam({ groups }).init(params, { device: limited }),
      (e: Error) => {
        assert.ok(e instanceof RangeError, String(e));
        assert.match(e.message, /2000 parameter groups.*maxStorageBufferBindingSize/);
        return true;
      },
    );
    // Fewer groups fit, and step.
    let state = await radam({ groups: groups.slice(0, 100) }).init(params, { device: limited });
    state = step(state, Object.fromEntries(names.map((name) => [name, new Float32Array(3)])));
    assert.equal((await readParams(state)).layer0.length, 3);
    dispose(state);
    limited.destroy();
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
      // Params given as GPU buffers cannot fall back to the CPU: told to pass their device, not
      // to choose backend "auto" (whichever backend was asked for).
      const buffer = device!.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
      for (const backend of ["webgpu", "auto"] as const) {
        await assert.rejects(
          () => radam({ backend }).init({ w: buffer } as never),
          (e: Error) =>
            e instanceof TypeError && /pass the GPUDevice that made them/.test(e.message) &&
            !/"auto"|"wasm"/.test(e.message),
        );
      }
      buffer.destroy();
    } finally {
      if (saved) Object.defineProperty(navigator, "gpu", saved);
      else delete (navigator as { gpu?: unknown }).gpu;
    }
    assert.ok(navigator.gpu);
  },
});

Deno.test({
  name: "webgpu: centralization of a row whose f32 sum overflows is that of its mean",
  ignore,
  async fn() {
    // Finite gradients whose f32 row sum overflows: the mean was ±Infinity and every centralized
    // gradient of the row ±Infinity (the CPU backends take that row's mean in f64; here the sum
    // of the values scaled by a power of two, wherever the largest times the length could pass
    // 2¹²⁶).
    // Rows of a workgroup each (more than 64 elements), and of an invocation each.
    for (const cols of [3 * WORKGROUP_SIZE + 5, 40]) {
      const rows = [
        Array.from({ length: cols }, (_, i) => (i % 3 === 0 ? 3e38 : -1e37)),
        Array.from({ length: cols }, (_, i) => (i === 1 || i === cols - 1 ? 3e38 : i)),
        Array.from({ length: cols }, (_, i) => i - 100),
      ];
      const opt = radam({ lr: 0, betas: [0, 0.9], gc: true, backend: "webgpu" });
      const params = { w: { data: new Float32Array(3 * cols), shape: [3, cols] } };
      let state = await noGpuErrors(() => opt.init(params, { device: device! }));
      state = step(state, { w: Float32Array.from(rows.flat()) });
      // momentum-SGD first step with β1 = 0: exp_avg is the gradient the update used
      const used = (await readMoments(state)).exp_avg.w;
      rows.forEach((row, r) => {
        const mean = row.reduce((a, x) => a + Math.fround(x), 0) / cols;
        for (let i = 0; i < cols; i++) {
          const want = Math.fround(row[i]) - mean;
          const got = used[r * cols + i];
          assert.ok(
            Math.abs(got - want) <= 1e-5 * Math.abs(mean) + 1e-6 * Math.abs(want),
            `row ${r} [${i}]: ${got} vs ${want}`,
          );
        }
      });
    }
  },
});

Deno.test({
  name:
    "webgpu: a centralized tensor larger than a binding is centralized in windows of whole rows; one whose row fits none is refused at init",
  ignore,
  async fn() {
    // Each such tensor threw a RangeError at every step (centralizations of the tensors before
    // it left queued), where the state had started.
    const settings = ranger({ lr: 1e-2 }).settings;
    const tiny = { maxStorageBufferBindingSize: 4096 };
    for (const [rows, cols] of [[64, 40], [7, 333], [1, 1000]]) {
      const data = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i));
      const params = () => ({
        a: new Float32Array(5).fill(0.5),
        w: { data: data.slice(), shape: [rows, cols] },
        b: new Float32Array(7),
      });
      const grads = {
        a: new Float32Array(5).fill(1),
        w: data.map((x, i) => x / 2 + (i % 7) + Math.floor(i / cols)),
        b: new Float32Array(7).fill(1),
      };
      await noGpuErrors(async () => {
        let split = await initWebGpuState(settings, params(), { device: device! }, tiny);
        let whole = await initWebGpuState(settings, params(), { device: device! });
        for (let k = 0; k < 3; k++) {
          split = step(split, grads);
          whole = step(whole, grads);
        }
        assert.deepEqual(await readParams(split), await readParams(whole), `${rows} × ${cols}`);
        dispose(split);
        dispose(whole);
      });
    }
    // 1500 floats a row: 6000 bytes, past the 4096-byte binding; the tensor is named.
    const params = {
      b: new Float32Array(3),
      w: { data: new Float32Array(3000), shape: [2, 1500] },
    };
    await assert.rejects(
      initWebGpuState(settings, params, { device: device! }, tiny),
      (e) =>
        e instanceof RangeError &&
        e.message.startsWith('Gradient centralization of parameter "w" (2 × 1500) needs a binding'),
    );
  },
});

Deno.test({
  name:
    "webgpu: refusals of a model the device's limits cannot hold speak of the tensors given (the parameters counted without the layout's padding); rows past a dispatch's grid are centralized in more dispatches",
  ignore,
  async fn() {
    // 2 parameters, laid out 64 elements apart: 128-element (512-byte) sections. The message
    // counted the 65 elements of the layout.
    const two = { a: new Float32Array(1), b: new Float32Array(1) };
    await assert.rejects(
      initWebGpuState(adam().settings, two, { device: device! }, { maxBufferSize: 256 }),
      (e) =>
        e instanceof RangeError &&
        e.message.startsWith("The model's 2 parameters need 512-byte buffers") &&
        e.message.endsWith("this device allows 256 (maxBufferSize)"),
    );
    // 5 rows, a workgroup each, past 2² workgroups: the tensor was refused at init ("needs a
    // dispatch of 5 workgroups"); now its rows are centralized in two dispatches, with the bits
    // of one.
    const rows = { b: new Float32Array(3), w: { data: new Float32Array(20), shape: [5, 4] } };
    const grads = { b: new Float32Array(3), w: Float32Array.from({ length: 20 }, (_, i) => i * i) };
    const fits = step(
      await noGpuErrors(() =>
        initWebGpuState(ranger().settings, rows, { device: device! }, {
          maxComputeWorkgroupsPerDimension: 2,
        })
      ),
      grads,
    );
    const whole = step(await initWebGpuState(ranger().settings, rows, { device: device! }), grads);
    assert.deepEqual(await readParams(fits), await readParams(whole));
    dispose(whole);
    dispose(fits);
  },
});
