/**
 * 8-bit states (`states: "8bit"`) on the WebGPU backend beside the CPU's (docs/SPEC.md "Compact
 * states"): one step from the same state gives codes within one of the wasm backend's and scales
 * and params within the GPU tolerance, for every rule and LookAhead/Ranger; checkpoints move
 * between the CPU and the GPU with their codes and scales exact; a skipped step leaves every code
 * and scale; the 4096-element threshold; the padding of the last block; chunked dispatches.
 * (Every step against the float64 reference: tests/gpu/rules_test.ts.)
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  dispose,
  lion,
  loadState,
  lookahead,
  type Optimizer,
  type OptimizerState,
  radam,
  ranger,
  readMoments,
  readParams,
  saveState,
  sgd,
  step,
} from "../../mod.ts";
import type { CompactMoment } from "../../base/arena.ts";
import { holdsCodes } from "../../base/backend.ts";
import { stateInternals } from "../../core/state.ts";
import { initWebGpuState } from "../../core/webgpu_state.ts";
import { checkGpuParams, placeGpuParams } from "../../gpu/_gpu_params.ts";
import { split } from "../checkpoint_files.ts";
import { prng, randomTensor } from "../util.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";

/** Every rule in 8 bits, with LookAhead and Ranger (whose slow weights stay f32). */
const MAKERS: [string, () => Optimizer][] = [
  ["radam", () => radam({ lr: 1e-3, states: "8bit", weightDecay: 1e-2 })],
  ["adam", () => adam({ lr: 1e-3, states: "8bit" })],
  ["adamw", () => adamw({ lr: 1e-3, states: "8bit" })],
  ["lion", () => lion({ lr: 1e-4, states: "8bit", weightDecay: 0.1 })],
  ["sgd", () => sgd({ lr: 1e-2, momentum: 0.9, nesterov: true, states: "8bit" })],
  ["ranger", () => ranger({ lr: 1e-3, states: "8bit", k: 2 })],
  ["lookahead(lion)", () => lookahead(lion({ lr: 1e-4, states: "8bit" }), { k: 2 })],
];

/** Tensors: two compact (one of whole blocks, one whose last block is padded), one f32. */
const LENGTHS = { w: 4096 + 300, x: 8192, b: 100 };

function data(seed: number): Record<string, Float32Array> {
  const rand = prng(seed);
  const out: Record<string, Float32Array> = {};
  for (const [name, n] of Object.entries(LENGTHS)) out[name] = randomTensor(rand, n);
  return out;
}

/** Copies of the codes and scales of every moment of a state, by `<moment>:<tensor>`. */
async function codesOf(state: OptimizerState<unknown>): Promise<Record<string, CompactMoment>> {
  const backend = stateInternals(state).backend;
  const out: Record<string, CompactMoment> = {};
  for (let k = 0; k < backend.layout.unsignedCodes.length; k++) {
    const held = holdsCodes(backend)
      ? backend.viewCompact(k)
      : backend.kind === "device"
      ? await backend.readCompact(k)
      : {};
    for (const [name, c] of Object.entries(held)) {
      out[`${k}:${name}`] = { codes: c.codes.slice(), scales: c.scales.slice() };
    }
  }
  return out;
}

/** The agreement of two states' codes: the largest difference and the share that differ. */
function compareCodes(
  a: Record<string, CompactMoment>,
  b: Record<string, CompactMoment>,
): { maxCodeDiff: number; differing: number; maxScaleRel: number } {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  let maxCodeDiff = 0, differing = 0, count = 0, maxScaleRel = 0;
  for (const key of Object.keys(a)) {
    a[key].codes.forEach((c, i) => {
      const d = Math.abs(c - b[key].codes[i]);
      maxCodeDiff = Math.max(maxCodeDiff, d);
      if (d > 0) differing++;
      count++;
    });
    a[key].scales.forEach((s, i) => {
      const t = b[key].scales[i];
      maxScaleRel = Math.max(maxScaleRel, s === t ? 0 : Math.abs(s - t) / Math.abs(t));
    });
  }
  return { maxCodeDiff, differing: differing / count, maxScaleRel };
}

for (const [name, make] of MAKERS) {
  Deno.test({
    name: `webgpu 8-bit ${name}: a step from the CPU's state gives codes within one of the CPU's`,
    ignore,
    async fn() {
      await noGpuErrors(async () => {
        let cpu = await make().init(data(1));
        for (let t = 1; t <= 3; t++) cpu = step(cpu, data(10 + t));
        const bytes = await saveState(cpu);
        let gpu = await loadState(bytes, { device: device! });
        assert.equal(gpu.backend, "webgpu");
        // The checkpoint's codes and scales reach the GPU exactly.
        assert.deepEqual(await codesOf(gpu), await codesOf(cpu));
        // Two steps (a LookAhead sync at the second), each from the same state on both.
        for (let t = 4; t <= 5; t++) {
          const g = data(10 + t);
          gpu = step(gpu, g);
          cpu = step(cpu, g);
          const agreement = compareCodes(await codesOf(gpu), await codesOf(cpu));
          assert.ok(agreement.maxCodeDiff <= 1, `codes within one: ${JSON.stringify(agreement)}`);
          assert.ok(agreement.differing <= 0.01, `codes that differ: ${JSON.stringify(agreement)}`);
          assert.ok(agreement.maxScaleRel <= 1e-5, `scales: ${JSON.stringify(agreement)}`);
          const [p, q] = [await readParams(gpu), await readParams(cpu)];
          for (const tensor of Object.keys(p)) {
            p[tensor].forEach((x, i) => {
              const y = q[tensor][i];
              assert.ok(
                Math.abs(x - y) <= 1e-5 * Math.abs(y) + 1e-30,
                `${tensor}[${i}]: ${x}, ${y}`,
              );
            });
          }
          // Teacher-forced: the next step starts from the same codes on both.
          gpu = await loadState(await saveState(cpu), { device: device! });
        }
        dispose(gpu);
      });
    },
  });
}

for (const [name, make] of MAKERS) {
  Deno.test({
    name:
      `webgpu 8-bit ${name}: a gradient whose square overflows (3e19, FLT_MAX) leaves its block finite, as on the CPU`,
    ignore,
    async fn() {
      // v = g · g is +Infinity in f32: held as FLT_MAX (the block's scale, the top code), as the
      // wasm backend does, on the GPU's wide encoding (the reciprocal of FLT_MAX is a subnormal).
      await noGpuErrors(async () => {
        for (const big of [3e19, 3.4028234663852886e38]) {
          let cpu = await make().init(data(5));
          let gpu = await loadState(await saveState(cpu), { device: device! });
          for (let t = 1; t <= 3; t++) {
            const g = data(50 + t);
            if (t === 1) g.w[300] = big;
            gpu = step(gpu, g);
            cpu = step(cpu, g);
            const [onGpu, onCpu] = [await codesOf(gpu), await codesOf(cpu)];
            const agreement = compareCodes(onGpu, onCpu);
            const what = `${big}, step ${t}: ${JSON.stringify(agreement)}`;
            assert.ok(agreement.maxCodeDiff <= 1 && agreement.differing <= 0.01, what);
            assert.ok(agreement.maxScaleRel <= 1e-5, what);
            for (const c of Object.values(onGpu)) assert.ok(c.scales.every(Number.isFinite), what);
            const [p, q] = [(await readParams(gpu)).w, (await readParams(cpu)).w];
            p.forEach((x, i) => {
              const y = q[i];
              assert.ok(Object.is(x, y) || Math.abs(x - y) <= 1e-5 * Math.abs(y) + 1e-30, `${i}`);
              if (i !== 300) assert.ok(Number.isFinite(x), `${what}: w[${i}] ${x}`);
            });
            // (Nesterov SGD's step of FLT_MAX overflows the parameter too, as in 32 bits)
            if (!q.every(Number.isFinite)) break;
            const next = await loadState(await saveState(cpu), { device: device! });
            dispose(gpu);
            gpu = next;
          }
          dispose(gpu);
          dispose(cpu);
        }
      });
    },
  });
}

Deno.test({
  name: "webgpu 8-bit: checkpoints move between the CPU and the GPU with codes and scales exact",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      let gpu = await ranger({ lr: 1e-3, states: "8bit" }).init(data(2), { device: device! });
      for (let t = 1; t <= 4; t++) gpu = step(gpu, data(20 + t));
      const onGpu = await codesOf(gpu);
      const bytes = await saveState(gpu);
      const { header } = split(bytes);
      assert.equal(header.__metadata__.states, "8bit");
      assert.equal(header["w.exp_avg.codes"].dtype, "I8");
      assert.equal(header["w.exp_avg_sq.codes"].dtype, "U8");
      assert.deepEqual(header["w.exp_avg.scales"].shape, [Math.ceil(LENGTHS.w / 256)]);
      assert.equal(header["b.exp_avg"].dtype, "F32");
      const cpu = await loadState(bytes, { backend: "wasm" });
      assert.deepEqual(await codesOf(cpu), onGpu);
      assert.deepEqual(await readMoments(cpu), await readMoments(gpu));
      const back = await loadState(await saveState(cpu), { device: device! });
      assert.deepEqual(await codesOf(back), onGpu);
      assert.deepEqual(await readParams(back), await readParams(gpu));
      // A 32-bit checkpoint loaded into 8 bits on the GPU encodes as the CPU does.
      const wide = await saveState(await loadState(bytes, { backend: "wasm", states: "32bit" }));
      const [g8, c8] = [
        await loadState(wide, { device: device!, states: "8bit" }),
        await loadState(wide, { backend: "wasm", states: "8bit" }),
      ];
      assert.deepEqual(await codesOf(g8), await codesOf(c8));
      for (const s of [gpu, back, g8]) dispose(s);
    });
  },
});

Deno.test({
  name: 'webgpu 8-bit: a non-finite gradient under "skip" leaves every code and scale',
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      let gpu = await radam({ lr: 1e-3, states: "8bit" }).init(data(3), { device: device! });
      for (let t = 1; t <= 2; t++) gpu = step(gpu, data(30 + t));
      const before = await codesOf(gpu);
      const moments = await readMoments(gpu);
      const bad = data(33);
      bad.w[17] = NaN;
      gpu = step(gpu, bad);
      assert.deepEqual(await codesOf(gpu), before);
      assert.equal(gpu.skippedSteps, 1);
      assert.deepEqual(await readMoments(gpu), moments);
      // and the next good step changes them
      gpu = step(gpu, data(34));
      assert.notDeepEqual(await codesOf(gpu), before);
      dispose(gpu);
    });
  },
});

Deno.test({
  name: "webgpu 8-bit: tensors under 4096 elements keep f32 moments, from 4096 on codes",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const rand = prng(4);
      const params = { a: randomTensor(rand, 4095), c: randomTensor(rand, 4096) };
      let gpu = await adam({ states: "8bit" }).init(params, { device: device! });
      let cpu = await adam({ states: "8bit" }).init(params);
      const layout = stateInternals(gpu).backend.layout;
      assert.deepEqual(layout.names, ["a", "c"]);
      assert.deepEqual(layout.compact, [false, true]);
      const grads = { a: randomTensor(rand, 4095), c: randomTensor(rand, 4096) };
      gpu = step(gpu, grads);
      cpu = step(cpu, grads);
      assert.deepEqual(Object.keys(await codesOf(gpu)).sort(), ["0:c", "1:c"]);
      const { header } = split(await saveState(gpu));
      assert.ok(header["a.exp_avg"] && header["c.exp_avg.codes"] && !header["a.exp_avg.codes"]);
      // the f32 moments of `a` as the 32-bit GPU step gives them
      const [m, n] = [await readMoments(gpu), await readMoments(cpu)];
      m.exp_avg.a.forEach((x, i) => {
        const y = n.exp_avg.a[i];
        assert.ok(Math.abs(x - y) <= 1e-6 * Math.abs(y) + 1e-30, `a[${i}]`);
      });
      dispose(gpu);
    });
  },
});

Deno.test({
  name:
    "webgpu 8-bit: compact tensors in a caller's STORAGE buffers (whole blocks, and a padded last block) are stepped in place, chunked or not, bit for bit as in the arena",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      // x (8192: whole blocks) in place at byte 1024 of a buffer, w (4396: its last block of 300
      // padded) in one of exactly its bytes: neither can be copied (no COPY_DST: the state could
      // not copy them in and out), so both must be bound in place; b in the arena.
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC;
      const makers = [
        () => adam({ lr: 1e-2, states: "8bit" }),
        () => lookahead(radam({ lr: 1e-2, states: "8bit" }), { k: 2 }),
      ];
      const callerBuffer = (offset: number, values: Float32Array) => {
        const buffer = device!.createBuffer({
          size: offset + values.byteLength,
          usage,
          mappedAtCreation: true,
        });
        new Float32Array(buffer.getMappedRange(), offset).set(values);
        buffer.unmap();
        return { buffer, offset, length: values.length };
      };
      for (const make of makers) {
        for (const limits of [undefined, { maxStorageBufferBindingSize: 4096 }]) {
          const config = stateInternals(await make().init({ w: new Float32Array(1) })).config;
          const start = data(5);
          const x = callerBuffer(1024, start.x), w = callerBuffer(0, start.w);
          let gpu = await initWebGpuState(config, { ...start, x, w }, {
            device: device!,
          }, limits);
          let arena = await initWebGpuState(config, start, { device: device! }, limits);
          // Their slots are the caller's ranges.
          assert.equal(gpu.params.x.buffer, x.buffer);
          assert.equal(gpu.params.x.offset, 1024);
          assert.equal(gpu.params.w.buffer, w.buffer);
          for (let t = 1; t <= 3; t++) {
            gpu = step(gpu, data(70 + t));
            arena = step(arena, data(70 + t));
          }
          const expected = await readParams(arena);
          assert.notDeepEqual(expected.w, start.w);
          assert.deepEqual(await readParams(gpu), expected);
          assert.deepEqual(new Float32Array(await readRaw(x.buffer, 1024, 8192 * 4)), expected.x);
          assert.deepEqual(new Float32Array(await readRaw(w.buffer, 0, 4396 * 4)), expected.w);
          assert.deepEqual(await codesOf(gpu), await codesOf(arena));
          dispose(gpu);
          dispose(arena);
          x.buffer.destroy();
          w.buffer.destroy();
        }
      }
    });
  },
});

/** The bytes of `bytes` bytes of a GPU buffer from `offset`. */
async function readRaw(buffer: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
  const staging = device!.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device!.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, offset, staging, 0, bytes);
  device!.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0);
  staging.destroy();
  return out;
}

Deno.test({
  name: "webgpu 8-bit: the padding of a last block stays 0 (eps 0: its own step would be 0 / 0)",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      // The last block holds one element, 0 with gradients 0: its moments and scales are 0, so
      // the padding's step would be 0 / 0 (the element's own is, and reads NaN, as on the CPU).
      const rand = prng(5);
      const w = randomTensor(rand, 4097);
      w[4096] = 0;
      let gpu = await lookahead(adamw({ lr: 1e-2, eps: 0, states: "8bit" }), { k: 2 }).init({ w }, {
        device: device!,
      });
      for (let t = 1; t <= 4; t++) {
        const g = randomTensor(rand, 4097);
        g[4096] = 0;
        gpu = step(gpu, { w: g });
      }
      await readParams(gpu);
      const backend = stateInternals(gpu).backend as unknown as {
        params: Record<string, { buffer: GPUBuffer; offset: number }>;
      };
      const slot = backend.params.w;
      const block = new Float32Array(await readRaw(slot.buffer, slot.offset + 4096 * 4, 256 * 4));
      assert.ok(Number.isNaN(block[0]), "the element itself: 0 / 0");
      assert.deepEqual([...block.subarray(1)], new Array(255).fill(0), "the padding stays 0");
      // The block's codes decode to 0 beside the element's NaN step? Its moments stay 0.
      const codes = await codesOf(gpu);
      assert.equal(codes["0:w"].scales[16], 0);
      assert.ok(codes["0:w"].scales.subarray(0, 16).every((s) => s > 0 && Number.isFinite(s)));
      dispose(gpu);
    });
  },
});

Deno.test({
  name: "webgpu 8-bit: chunked dispatches (at 256-element boundaries) give the bits of one",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const config = stateInternals(await lion({ states: "8bit" }).init({ w: new Float32Array(1) }))
        .config;
      const small = { maxStorageBufferBindingSize: 4096, smallStepElements: 0 };
      let chunked = await initWebGpuState(config, data(6), { device: device! }, small);
      let whole = await initWebGpuState(config, data(6), { device: device! });
      for (let t = 1; t <= 3; t++) {
        chunked = step(chunked, data(60 + t));
        whole = step(whole, data(60 + t));
      }
      assert.deepEqual(await codesOf(chunked), await codesOf(whole));
      assert.deepEqual(await readParams(chunked), await readParams(whole));
      dispose(chunked);
      dispose(whole);
    });
  },
});

Deno.test({
  name:
    "webgpu 8-bit: a compact tensor's GPUBuffer params that cannot be bound in place are copied (or refused without COPY usage), as 32-bit ones",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      // At byte 4: not a multiple of minStorageBufferOffsetAlignment, so copied in and out.
      const n = 5000;
      const w = data(7).x.slice(0, n);
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
      const buffer = device!.createBuffer({ size: 4 + n * 4, usage });
      device!.queue.writeBuffer(buffer, 4, w);
      const g = data(8).x.slice(0, n);
      const params = { w: { buffer, offset: 4, length: n } };
      const placed = placeGpuParams(
        checkGpuParams(params),
        device!.limits.minStorageBufferOffsetAlignment,
      );
      assert.deepEqual([placed.copied.size, placed.inPlace.size], [1, 0]);
      let gpu = await adam({ lr: 1e-2, states: "8bit" }).init(params, { device: device! });
      let cpu = await adam({ lr: 1e-2, states: "8bit" }).init({ w: w.slice() });
      gpu = step(gpu, { w: g });
      cpu = step(cpu, { w: g });
      const expected = (await readParams(cpu)).w;
      assert.deepEqual((await readParams(gpu)).w, expected);
      // the caller's buffer holds the new params after the step
      assert.deepEqual(new Float32Array(await readRaw(buffer, 4, n * 4)), expected);
      dispose(gpu);
      const storageOnly = device!.createBuffer({ size: 4 + n * 4, usage: GPUBufferUsage.STORAGE });
      await assert.rejects(
        adam({ states: "8bit" }).init({ w: { buffer: storageOnly, offset: 4, length: n } }, {
          device: device!,
        }),
        (e: Error) => e instanceof RangeError && /minStorageBufferOffsetAlignment/.test(e.message),
      );
      buffer.destroy();
      storageOnly.destroy();
    });
  },
});
