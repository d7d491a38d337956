/**
 * WebGPU states over time (on Mesa's llvmpipe in CI): device loss, checkpoints between wasm and
 * the GPU, steps skipped on the device, the counts and norm the GPU reports, published values,
 * and dispose. Without an adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has
 * none.
 *
 * GPU tolerance: see gpu_device.ts.
 */
import assert from "node:assert/strict";
import {
  adam,
  dispose,
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
  SINGLE_TENSOR_NAME,
  step,
} from "../../mod.ts";
import { readAll } from "../cases.ts";
import { prng, randomTensor } from "../util.ts";
import { refGlobalNorm } from "../reference.ts";
import { TFA_ATOL, TFA_CASES, tfaError, tfaSample } from "../published_values.ts";
import { initWebGpuState } from "../../core/webgpu_state.ts";
import { stateInternals } from "../../core/state.ts";
import { adapter, device, ignore, noGpuErrors } from "./gpu_device.ts";

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
  name:
    "webgpu: a step right after device.destroy() is accepted (WebGPU tells a loss only through device.lost, later); the first step after it resolves throws, the state as it was",
  ignore,
  async fn() {
    const own = await adapter!.requestDevice();
    let state = await radam().init({ w: new Float32Array(8) }, { device: own });
    state = step(state, { w: new Float32Array(8).fill(1) });
    own.destroy();
    // No synchronous sign of the loss exists (GPUDevice has no state to read; error scopes and
    // device.lost settle later): this step is submitted to a device that drops it.
    state = step(state, { w: new Float32Array(8).fill(1) });
    await own.lost;
    const before = { step: state.step, skipped: state.skippedSteps, norm: state.lastGradNorm };
    assert.throws(() => step(state, { w: new Float32Array(8) }), /device .*was lost.*resume/is);
    // The same handle, unchanged: the failed step consumed nothing.
    const after = { step: state.step, skipped: state.skippedSteps, norm: state.lastGradNorm };
    assert.deepEqual(after, before);
    assert.throws(() => step(state, { w: new Float32Array(8) }), /device .*was lost/is);
    dispose(state);
  },
});

Deno.test({
  name:
    "webgpu: a read begun as the device is lost (its lost not yet resolved) says the device was lost",
  ignore,
  async fn() {
    for (
      const read of [readParams, readMoments, saveState] as ((s: unknown) => Promise<unknown>)[]
    ) {
      const own = await adapter!.requestDevice();
      let state = await radam().init({ w: new Float32Array(8) }, { device: own });
      state = step(state, { w: new Float32Array(8).fill(1) });
      await readParams(state); // (the step counts read back: the read maps its copies at once)
      own.destroy();
      // wgpu refuses the map of a buffer made on the destroyed device with a validation error
      // (an OperationError) before device.lost resolves: that was the read's error.
      await assert.rejects(() => read(state), /device of this optimizer state was lost.*resume/is);
    }
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

function gpuGrads(seed: number, lengths: Record<string, number>, count: number) {
  const rand = prng(seed);
  return Array.from({ length: count }, () => {
    const g: Record<string, Float32Array> = {};
    for (const [name, n] of Object.entries(lengths)) g[name] = randomTensor(rand, n);
    return g;
  });
}

function closeTo(a: Float32Array, b: Float32Array, what: string, rel = 1e-5) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.ok(
      Math.abs(a[i] - b[i]) <= rel * (1 + Math.abs(b[i])),
      `${what}[${i}]: ${a[i]} vs ${b[i]}`,
    );
  }
}

Deno.test({
  name:
    "webgpu: a NaN mid LookAhead period, stepped without awaiting, is skipped on the device: the run matches wasm's and one without that step",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const lengths = { "a.weight": 300, "a.bias": 5 };
      const params = {
        "a.weight": { data: randomTensor(prng(1), 300), shape: [3, 100] },
        "a.bias": randomTensor(prng(2), 5),
      };
      const gs = gpuGrads(3, lengths, 20);
      const bad = { "a.weight": gs[8]["a.weight"].slice(), "a.bias": gs[8]["a.bias"] };
      bad["a.weight"][211] = NaN;
      const schedule = (t: number) => 1e-2 * Math.min(1, t / 5);
      const opt = ranger({ lr: schedule, k: 6, clipGradNorm: 5 });
      const run = async (init: Promise<OptimizerState<unknown>>, withBad: boolean) => {
        let s = await init;
        for (let i = 0; i < gs.length; i++) {
          if (withBad && i === 8) s = step(s, bad); // t = 9: mid period 7..12
          s = step(s, gs[i]);
        }
        return s;
      };
      // No await between the steps: the host cannot know of the skip until the GPU reports it.
      const gpu = await run(opt.init(params, { device: device! }), true);
      const gpuClean = await run(opt.init(params, { device: device! }), false);
      const cpu = await run(opt.init(params), true);
      assert.equal(cpu.step, 20);
      assert.equal(cpu.skippedSteps, 1);
      const [a, b, c] = [await readAll(gpu), await readAll(gpuClean), await readAll(cpu)];
      assert.equal(gpu.step, 20);
      assert.equal(gpu.skippedSteps, 1);
      assert.equal(gpuClean.skippedSteps, 0);
      for (const name of Object.keys(lengths)) {
        for (const f of ["p", "m", "v", "s"] as const) {
          // The skipped step changed nothing: bit for bit the run without it.
          assert.deepEqual(a[name][f], b[name][f], `${f} of ${name}`);
          closeTo(Float32Array.from(a[name][f]!), Float32Array.from(c[name][f]!), `${f} ${name}`);
        }
      }
      assert.ok(Math.abs(gpu.lastGradNorm - cpu.lastGradNorm) <= 1e-5 * cpu.lastGradNorm);
    });
  },
});

Deno.test({
  name:
    'webgpu: nonFinite "throw" halts on the device; the next call throws a RangeError naming the tensor, and the state is as before the bad step',
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const lengths = { a: 70, b: 130 };
      const gs = gpuGrads(5, lengths, 6);
      const p0 = { a: new Float32Array(70).fill(0.5), b: new Float32Array(130).fill(-0.5) };
      const opt = radam({ lr: 1e-2, nonFinite: "throw" });
      let s = await opt.init(p0, { device: device! });
      s = step(s, gs[0]);
      s = step(s, gs[1]);
      const before = await readAll(s);
      const bad = { a: gs[2].a, b: gs[2].b.slice() };
      bad.b[77] = -Infinity;
      s = step(s, bad); // not known yet: step is synchronous
      s = step(s, gs[3]); // submitted before the GPU reported: not taken either
      await assert.rejects(() => readParams(s), (e: Error) => {
        assert.ok(e instanceof RangeError, String(e));
        assert.match(e.message, /"b" holds NaN or ±Infinity at index 77 \(step 3\)/);
        return true;
      });
      assert.equal(s.step, 2);
      assert.equal(s.skippedSteps, 0);
      assert.deepEqual(await readAll(s), before);
      s = step(s, gs[2]); // usable again: this is step 3
      const cpu = [gs[0], gs[1], gs[2]].reduce(
        (st, g) => st.then((x) => step(x, g)),
        radam({ lr: 1e-2 }).init(p0),
      );
      const [x, y] = [await readParams(s), await readParams(await cpu)];
      assert.equal(s.step, 3);
      closeTo(x.a, y.a, "a");
      closeTo(x.b, y.b, "b");
      // saveState reports a halt too (once: the state then goes on from where it stopped)
      s = step(s, bad);
      await assert.rejects(() => saveState(s), RangeError);
      assert.equal(s.step, 3);
      assert.ok((await saveState(s)).length > 0);
    });
  },
});

Deno.test({
  name: "webgpu: lastGradNorm and skippedSteps are reported by the GPU (exact after a readback)",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const g = gpuGrads(8, { a: 1000, b: 7 }, 1)[0];
      g.a[3] = 3e30; // squares overflow f32: the norm is computed overflow-safe
      const norm = refGlobalNorm(Object.values(g));
      let s = await radam({ lr: 1e-3 }).init(
        { a: new Float32Array(1000), b: new Float32Array(7) },
        {
          device: device!,
        },
      );
      assert.ok(Number.isNaN(s.lastGradNorm));
      s = step(s, g);
      await readParams(s);
      assert.ok(Math.abs(s.lastGradNorm - norm) <= 1e-5 * norm, `${s.lastGradNorm} vs ${norm}`);
      g.b[6] = NaN;
      s = step(s, g);
      await readParams(s);
      assert.equal(s.step, 1);
      assert.equal(s.skippedSteps, 1);
      assert.ok(!Number.isFinite(s.lastGradNorm));
      // across many workgroups and chunks of the norm passes (lowered binding limit), with
      // squares past f32's range in some of them
      const big = randomTensor(prng(9), 300_001);
      for (let i = 0; i < big.length; i += 40_000) big[i] = 2e30 * (1 + i / 1e6);
      const backendLimits = { maxStorageBufferBindingSize: 65536 * 4 };
      let b = await initWebGpuState(
        radam({ lr: 1e-3 }).settings,
        { big: new Float32Array(big.length) },
        { device: device! },
        backendLimits,
      );
      b = step(b, { big });
      await readParams(b);
      const bigNorm = refGlobalNorm([big]);
      assert.ok(
        Math.abs(b.lastGradNorm - bigNorm) <= 1e-5 * bigNorm,
        `${b.lastGradNorm} vs ${bigNorm}`,
      );
      big[123_457] = NaN;
      b = step(b, { big });
      await readParams(b);
      assert.equal(b.skippedSteps, 1);
      // "propagate" computes no norm (nor any check) unless clipping
      let p = await radam({ nonFinite: "propagate" }).init(new Float32Array(8), {
        device: device!,
      });
      p = step(p, new Float32Array(8).fill(1));
      await readParams(p);
      assert.ok(Number.isNaN(p.lastGradNorm));
      assert.equal(p.step, 1);
    });
  },
});

Deno.test({
  name:
    "webgpu: more than 1024 unreported skipped steps then a good one: a loud error, not a step with stale scalars",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      let s = await radam({ lr: 1e-2 }).init(new Float32Array(4).fill(1), { device: device! });
      const nan = new Float32Array(4).fill(NaN);
      for (let i = 0; i < 1100; i++) s = step(s, nan);
      s = step(s, new Float32Array(4).fill(1));
      await assert.rejects(() => readParams(s), /more than 1024 steps were submitted/);
      assert.equal(s.skippedSteps, 1100);
      assert.equal(s.step, 0);
      assert.deepEqual((await readParams(s))[SINGLE_TENSOR_NAME], new Float32Array(4).fill(1));
      s = step(s, new Float32Array(4).fill(1)); // then it goes on, at step 1
      await readParams(s);
      assert.equal(s.step, 1);
      assert.notDeepEqual((await readParams(s))[SINGLE_TENSOR_NAME], new Float32Array(4).fill(1));
    });
  },
});

Deno.test({
  name: `webgpu: TensorFlow Addons' published RAdam values (dense samples, atol ${TFA_ATOL})`,
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      for (const c of TFA_CASES) {
        const { params, grads } = tfaSample();
        let s = await c.make("webgpu").init(params, { device: device! });
        for (let i = 0; i < 100; i++) s = step(s, grads);
        const error = tfaError(await readParams(s), c.expected);
        assert.ok(error < TFA_ATOL, `${c.name}: off by ${error}`);
      }
    });
  },
});

Deno.test({
  name: "webgpu: dispose frees the state's GPU buffers and leaves the caller's alone",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const own = device!.createBuffer({
        size: 64,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      const destroyed: GPUBuffer[] = [];
      let s = await radam({ lr: 1e-2 }).init({ own, host: new Float32Array(8) }, {
        device: device!,
      });
      s = step(s, { own: new Float32Array(16).fill(1), host: new Float32Array(8).fill(1) });
      const arena = s.grads.host.buffer;
      const original = GPUBuffer.prototype.destroy;
      GPUBuffer.prototype.destroy = function (this: GPUBuffer) {
        destroyed.push(this);
        return original.call(this);
      };
      try {
        dispose(s);
        dispose(s); // idempotent
      } finally {
        GPUBuffer.prototype.destroy = original;
      }
      assert.ok(destroyed.includes(arena), "the arena's grads buffer was destroyed");
      assert.ok(!destroyed.includes(own), "the caller's buffer was left alone");
      assert.throws(() => step(s), TypeError);
      await assert.rejects(() => readParams(s), TypeError);
      own.destroy();
    });
  },
});

Deno.test({
  name:
    'webgpu: states "8bit" runs (settings say so); threads stay refused; a CPU 8-bit checkpoint loads in either format',
  ignore,
  async fn() {
    const state = await radam({ states: "8bit" }).init({ w: new Float32Array(8192) }, {
      device: device!,
    });
    assert.equal(state.backend, "webgpu");
    assert.equal(stateInternals(state).config.run.states, "8bit");
    assert.deepEqual(stateInternals(state).backend.layout.compact, [true]);
    dispose(state);
    await assert.rejects(
      radam({ threads: 2 }).init({ w: new Float32Array(8192) }, { device: device! }),
      (e: Error) => e instanceof TypeError && /does not take threads: 2/.test(e.message),
    );
    const cpu = await radam({ states: "8bit" }).init({ w: new Float32Array(8192) });
    const bytes = await saveState(cpu);
    const same = await loadState(bytes, { device: device! });
    assert.equal(stateInternals(same).config.run.states, "8bit");
    // converted to 32-bit on load, it runs there
    const gpu = await loadState(bytes, { device: device!, states: "32bit" });
    assert.equal(gpu.backend, "webgpu");
    assert.deepEqual(stateInternals(gpu).backend.layout.compact, [false]);
    dispose(gpu);
    dispose(same);
  },
});

Deno.test({
  name:
    "webgpu: a Map or a TensorFlow.js tensor as params or gradients is refused with a hint, the state unchanged",
  ignore,
  async fn() {
    // what a TensorFlow.js tensor looks like to the checks: an instance of a class
    const tensorLike = new (class Tensor {
      readonly shape = [8];
      dataSync = () => new Float32Array(8);
    })();
    const w = new Float32Array(8);
    const options = { device: device! };
    await assert.rejects(
      radam().init(new Map([["w", w]]) as unknown as Float32Array, options),
      (e: Error) =>
        e instanceof TypeError && /record of named Float32Arrays, got Map/.test(e.message),
    );
    await assert.rejects(
      radam().init(tensorLike as unknown as Float32Array, options),
      (e: Error) => e instanceof TypeError && /await tensor\.data\(\)/.test(e.message),
    );
    let state = await radam({ lr: 1e-2 }).init({ w, b: new Float32Array(2) }, options);
    const before = await readParams(state);
    const bad: [unknown, RegExp][] = [
      [new Map([["w", w]]), /record of them, got Map/],
      [tensorLike, /got Tensor \(a TensorFlow\.js tensor: pass its values/],
      [
        { w: tensorLike, b: new Float32Array(2) },
        /"w" to be .* got Tensor \(a TensorFlow\.js tensor/,
      ],
      [{ w: { data: w, shape: [8] }, b: new Float32Array(2) }, /without its shape: pass its data/],
    ];
    for (const [grads, message] of bad) {
      assert.throws(() => step(state, grads as Record<string, Float32Array>), message);
    }
    assert.deepEqual(await readParams(state), before);
    state = step(state, { w: new Float32Array(8).fill(1), b: new Float32Array(2) });
    assert.notDeepEqual((await readParams(state)).w, before.w);
    dispose(state);
  },
});

Deno.test({
  name:
    "webgpu: a schedule whose lr times a group's lrScale is past f32's range refuses its step, which the device never sees",
  ignore,
  async fn() {
    // The scalars of later steps are written ahead: the refused value is left out until its step.
    const groups = [{ match: /^w$/, lrScale: 1e10 }];
    const lr = (t: number) => (t === 3 ? 1e30 : 1e-3);
    const init = { w: new Float32Array([1, 2]), b: new Float32Array([3]) };
    const g = { w: new Float32Array([1, 1]), b: new Float32Array([1]) };
    let s = await adam({ lr, groups }).init(init, { device: device! });
    let twin = await adam({ lr: 1e-3, groups }).init(init, { device: device! });
    for (let k = 0; k < 2; k++) {
      s = step(s, g);
      twin = step(twin, g);
    }
    assert.throws(
      () => step(s, g),
      (e: Error) =>
        e instanceof RangeError &&
        e.message.startsWith(
          "The learning-rate schedule returned 1e+30 at step 3, which times groups[0].lrScale (10000000000) is 1e+40",
        ),
    );
    assert.deepEqual(await readAll(s), await readAll(twin));
    assert.equal(s.step, 2);
    dispose(s);
    dispose(twin);
  },
});

Deno.test({
  name:
    "webgpu: an async schedule is refused at its step, the state unchanged, none of its Promises' rejections unhandled",
  ignore,
  async fn() {
    // The scalars of the next 64 steps are asked for at once: each a rejected Promise, refused.
    const unhandled: unknown[] = [];
    const listen = (e: PromiseRejectionEvent) => {
      unhandled.push(e.reason);
      e.preventDefault();
    };
    globalThis.addEventListener("unhandledrejection", listen);
    try {
      const lr = (t: number) =>
        t === 1 ? 1e-3 : Promise.reject(new Error(`schedule failed at ${t}`)); // (an async schedule's)
      const init = { w: new Float32Array([1, 2]) };
      const g = { w: new Float32Array([1, 1]) };
      let s = await adam({ lr: lr as (t: number) => number }).init(init, { device: device! });
      s = step(s, g);
      const before = await readAll(s);
      assert.throws(
        () => step(s, g),
        (e: Error) =>
          e instanceof TypeError &&
          e.message.startsWith(
            "The learning-rate schedule returned a Promise at step 2; a schedule must return a finite number ≥ 0 synchronously",
          ),
      );
      assert.deepEqual(await readAll(s), before);
      assert.equal(s.step, 1);
      await new Promise((resolve) => setTimeout(resolve, 0));
      assert.deepEqual(unhandled, []);
      dispose(s);
    } finally {
      globalThis.removeEventListener("unhandledrejection", listen);
    }
  },
});

Deno.test({
  name: "webgpu: a schedule that uses its state mid-step is refused; the step completes",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const g = { w: new Float32Array([0.1, 0.2, -0.3]) };
      let live: OptimizerState<GpuTensor> | undefined;
      const errors: unknown[] = [];
      const lr = (t: number) => {
        const s = live;
        live = undefined; // once: the inner steps, were they taken, call it too
        if (s !== undefined) {
          for (const use of [() => step(s, g), () => dispose(s)]) {
            try {
              use();
              errors.push("not refused");
            } catch (error) {
              errors.push(error);
            }
          }
        }
        return 1e-2 * t;
      };
      const init = { w: new Float32Array([1, -2, 3]) };
      let state = await radam({ lr }).init(init, { device: device! });
      let twin = await radam({ lr: (t) => 1e-2 * t }).init(init, { device: device! });
      try {
        live = state;
        state = step(state, g);
        twin = step(twin, g);
        assert.equal(errors.length, 2);
        for (const error of errors) {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(error.message, /A step of this optimizer state is in progress/);
        }
        assert.deepEqual(await readParams(state), await readParams(twin));
        assert.equal(state.step, 1);
      } finally {
        dispose(state);
        dispose(twin);
      }
    });
  },
});
