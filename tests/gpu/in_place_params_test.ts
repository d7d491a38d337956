/**
 * Caller-owned GPU params updated in place (zero copy): the step kernel binds the caller's
 * buffer range, so a buffer with STORAGE usage alone (no COPY_SRC/COPY_DST: nothing can copy
 * into or out of it) is updated; params that cannot be bound (a misaligned offset) fall back to
 * copies; readParams, restores and LookAhead's start read and write the caller's buffers.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type GpuParams,
  loadState,
  type OptimizerState,
  radam,
  ranger,
  readParams,
  saveState,
  type ShapedTensor,
  step,
} from "../../mod.ts";
import { caseArb, checkAgainstReference, optimizerFor, readAll } from "../cases.ts";
import { ADAM_ROW } from "../rule_table.ts";
import { initWebGpuState } from "../../core/webgpu_state.ts";
import { planGpuArena } from "../../gpu/arena_plan.ts";
import { createWebGpuBackend } from "../../gpu/webgpu_create.ts";
import { ADAM } from "../../rules/adam.ts";
import { checkGpuParams, placeGpuParams } from "../../gpu/_gpu_params.ts";
import type { GpuTensorInput } from "../../gpu/gpu_tensors.ts";
import { PARAMS } from "../../base/arena.ts";
import { device, ignore, K_GPU, noGpuErrors } from "./gpu_device.ts";

/** What the caller's buffers hold around their tensors; it must never change. */
const SENTINEL = 7.5;

/** How a test passes one param. */
type Placement =
  /** A Float32Array (uploaded into the arena). */
  | "host"
  /** STORAGE usage only, at byte 256: updated in place, and unreadable but through the state. */
  | "storage"
  /** STORAGE | COPY_SRC (no COPY_DST, so it cannot be copied to), at byte 256: in place. */
  | "readable"
  /** STORAGE | COPY_SRC | COPY_DST at byte 256: in place (copyable, but no need to). */
  | "writable"
  /** STORAGE | COPY_SRC | COPY_DST at byte 4 (misaligned): copied in and out. */
  | "copied";

/** A caller-owned buffer holding one tensor, with what surrounds it. */
interface CallerBuffer {
  name: string;
  buffer: GPUBuffer;
  offset: number;
  length: number;
  placement: Placement;
}

const USAGE: Record<Exclude<Placement, "host">, number> = {
  storage: 0x80, // STORAGE
  readable: 0x80 | 0x04, // STORAGE | COPY_SRC
  writable: 0x80 | 0x04 | 0x08,
  copied: 0x80 | 0x04 | 0x08, // STORAGE | COPY_SRC | COPY_DST
};

/**
 * A caller's buffer: `data` at byte `offset`, SENTINEL everywhere else (up to 16 bytes past the
 * next 16-byte boundary), written while mapped at creation, so no COPY_DST usage is needed.
 */
function callerBuffer(name: string, data: Float32Array, placement: Exclude<Placement, "host">) {
  const offset = placement === "copied" ? 4 : 256;
  const size = offset + Math.ceil(data.length / 4) * 16 + 16;
  const buffer = device!.createBuffer({
    label: `caller ${name}`,
    size,
    usage: USAGE[placement],
    mappedAtCreation: true,
  });
  const all = new Float32Array(buffer.getMappedRange());
  all.fill(SENTINEL);
  all.set(data, offset / 4);
  buffer.unmap();
  return { name, buffer, offset, length: data.length, placement };
}

/**
 * The params with each rank-1 tensor `i` placed as `placements[i % placements.length]` says
 * (rank > 1 tensors, which only host params can be, stay Float32Arrays), and the buffers made.
 */
function withCallerBuffers(
  params: Record<string, Float32Array | ShapedTensor>,
  placements: readonly Placement[],
): { params: GpuParams; buffers: CallerBuffer[] } {
  const out: Record<string, Float32Array | ShapedTensor | GpuTensorInput> = {};
  const buffers: CallerBuffer[] = [];
  Object.entries(params).forEach(([name, value], i) => {
    const placement = placements[i % placements.length];
    if (!(value instanceof Float32Array) || placement === "host") {
      out[name] = value;
      return;
    }
    const b = callerBuffer(name, value, placement);
    buffers.push(b);
    out[name] = { buffer: b.buffer, offset: b.offset, length: b.length };
  });
  return { params: out as GpuParams, buffers };
}

/** The whole of a buffer with COPY_SRC usage, read back. */
async function readBuffer(buffer: GPUBuffer): Promise<Float32Array> {
  const staging = device!.createBuffer({
    size: buffer.size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device!.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, buffer.size);
  device!.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return out;
}

/**
 * Checks a readable caller buffer: its tensor equals `expected` bit for bit (the state's
 * current params), and everything around it is still SENTINEL.
 */
async function checkCallerBuffer(b: CallerBuffer, expected: Float32Array | undefined) {
  const all = await readBuffer(b.buffer);
  const at = b.offset / 4;
  for (let i = 0; i < all.length; i++) {
    if (i >= at && i < at + b.length) {
      if (expected && !Object.is(all[i], expected[i - at])) {
        assert.fail(
          `${b.name}[${i - at}] in the caller's buffer: ${all[i]}, state ${expected[i - at]}`,
        );
      }
    } else if (all[i] !== SENTINEL) {
      assert.fail(`${b.name}: the caller's float ${i}, outside the tensor, became ${all[i]}`);
    }
  }
}

/**
 * Random cases with LookAhead, groups and clipping on, ≥ 50 steps, at least 4 tensors (the first,
 * placed in a STORAGE-only buffer, of 4097 elements), and a
 * learning rate of at least 1e-2 and a non-zero clipping norm (so that the params move by more
 * than the tolerance: a param left where it was would show).
 */
const inPlaceCases = caseArb(ADAM_ROW, 50, true).map((c) => ({
  ...c,
  options: { ...c.options, lr: Math.max(c.options.lr as number, 1e-2) },
  lengths: [4097, ...c.lengths, 5, 33, 0].slice(0, Math.max(4, c.lengths.length + 1)),
  extras: {
    ...c.extras,
    lookahead: c.extras.lookahead ?? { k: 3, alpha: 0.5 },
    group: c.extras.group ?? { lrScale: 2, weightDecay: 0.05 },
    clipGradNorm: c.extras.clipGradNorm || 1,
    gc: false, // GPU tensors are rank 1: centralization is covered with host tensors below
    badCalls: [],
  },
}));

Deno.test({
  name:
    "webgpu in place: caller buffers, arena and copied params mixed, with LookAhead, groups and clipping, match the reference each step",
  ignore,
  async fn() {
    await noGpuErrors(() =>
      fc.assert(
        fc.asyncProperty(inPlaceCases, async (c) => {
          let buffers: CallerBuffer[] = [];
          await checkAgainstReference(
            c,
            (params) => {
              const made = withCallerBuffers(
                params as Record<string, Float32Array | ShapedTensor>,
                ["storage", "host", "readable", "copied"],
              );
              buffers = made.buffers;
              return optimizerFor(c, "webgpu").init(made.params, { device: device! });
            },
            K_GPU,
          );
          assert.ok(buffers.some((b) => b.placement === "storage" && b.length > 0));
          for (const b of buffers) {
            if (b.placement !== "storage") await checkCallerBuffer(b, undefined);
            b.buffer.destroy();
          }
        }),
        { numRuns: 3 },
      )
    );
  },
});

/** Params for the bit-for-bit tests: odd sizes, a rank-2 tensor (centralized by Ranger). */
function mixedParams(): Record<string, Float32Array | ShapedTensor> {
  const f = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s));
  return {
    "a.weight": { data: f(12 * 7, 0.3), shape: [12, 7] },
    "a.bias": f(7, 0.7),
    "b.weight": f(1029, 1.1),
    "b.bias": f(3, 1.9),
    "c.weight": f(64, 2.3),
  };
}

function gradsAt(t: number, params: Record<string, Float32Array | ShapedTensor>) {
  const g: Record<string, Float32Array> = {};
  for (const [name, p] of Object.entries(params)) {
    const data = p instanceof Float32Array ? p : p.data;
    g[name] = data.map((x, i) => Math.cos(i * t + name.length) * 0.1 + x * 0.01);
  }
  return g;
}

/** Every params, moments and slow weights of two states, equal bit for bit. */
async function assertSameBits(a: OptimizerState<unknown>, b: OptimizerState<unknown>) {
  const [x, y] = [await readAll(a), await readAll(b)];
  assert.deepEqual(Object.keys(x), Object.keys(y));
  for (const name of Object.keys(y)) {
    for (const field of ["p", "m", "v", "s"] as const) {
      const u = x[name][field], w = y[name][field];
      assert.equal(u?.length, w?.length, `${field} of ${name}`);
      for (let i = 0; i < (w?.length ?? 0); i++) {
        if (!Object.is(u![i], w![i])) {
          assert.fail(`${field} of ${name}[${i}]: ${u![i]} vs ${w![i]}`);
        }
      }
    }
  }
}

Deno.test({
  name:
    "webgpu in place: a STORAGE-only caller buffer is updated in place, bit for bit as in the arena",
  ignore,
  async fn() {
    const params = mixedParams();
    const opt = ranger({
      lr: 1e-2,
      k: 4,
      clipGradNorm: 0.5,
      groups: [{ match: /bias/, lrScale: 3 }],
    });
    await noGpuErrors(async () => {
      // b.weight: STORAGE only, c.weight: STORAGE | COPY_SRC (nothing can copy into either:
      // they lack COPY_DST), b.bias: copyable; all three bound in place. The rest in the arena.
      const { params: gpuParams, buffers } = withCallerBuffers(params, [
        "host",
        "host",
        "storage",
        "writable",
        "readable",
      ]);
      assert.deepEqual(buffers.map((b) => b.placement), ["storage", "writable", "readable"]);
      const placed = placeGpuParams(
        checkGpuParams(gpuParams),
        device!.limits.minStorageBufferOffsetAlignment,
      );
      assert.deepEqual([...placed.inPlace.keys()], [2, 3, 4]);
      assert.equal(placed.copied.size, 0);
      let inPlace = await opt.init(gpuParams, { device: device! });
      let arena = await opt.init(params, { device: device! });
      assert.equal(inPlace.params["b.weight"].buffer, buffers[0].buffer);
      assert.equal(inPlace.params["b.weight"].offset, 256);
      for (let t = 1; t <= 12; t++) {
        inPlace = step(inPlace, gradsAt(t, params));
        arena = step(arena, gradsAt(t, params));
      }
      await assertSameBits(inPlace, arena);
      const now = await readParams(inPlace);
      assert.notDeepEqual(now["b.weight"], params["b.weight"]);
      await checkCallerBuffer(buffers[1], now["b.bias"]);
      await checkCallerBuffer(buffers[2], now["c.weight"]);
      // The caller's buffer is the master copy: what the caller writes into it between steps is
      // what the next step updates (on the arena state: a write into its params slot).
      const edited = now["b.bias"].map((x) => x * 2 + 1);
      for (const state of [inPlace, arena]) {
        const slot = state.params["b.bias"];
        device!.queue.writeBuffer(slot.buffer, slot.offset, edited);
      }
      for (let t = 13; t <= 14; t++) {
        inPlace = step(inPlace, gradsAt(t, params));
        arena = step(arena, gradsAt(t, params));
      }
      await assertSameBits(inPlace, arena);
      assert.notDeepEqual((await readParams(inPlace))["b.bias"], now["b.bias"]);
      await checkCallerBuffer(buffers[1], (await readParams(inPlace))["b.bias"]);
      for (const b of buffers) b.buffer.destroy();
    });
  },
});

Deno.test({
  name:
    "webgpu in place: a misaligned param falls back to copies; one that allows neither throws before allocating",
  ignore,
  async fn() {
    const w = Float32Array.from({ length: 37 }, (_, i) => i / 10 - 1);
    const grad = (t: number) => ({ w: w.map((x, i) => Math.cos(i + t) + x * 0.1) });
    await noGpuErrors(async () => {
      // Byte 4: not a multiple of minStorageBufferOffsetAlignment, but copyable.
      const copied = callerBuffer("w", w, "copied");
      const gpuParams = { w: { buffer: copied.buffer, offset: 4, length: w.length } };
      const placed = placeGpuParams(checkGpuParams(gpuParams), 256);
      assert.equal(placed.inPlace.size, 0);
      assert.equal(placed.copied.get(0)?.offset, 4);
      let state = await radam({ lr: 1e-2 }).init(gpuParams, { device: device! });
      let arena = await radam({ lr: 1e-2 }).init({ w }, { device: device! });
      for (let t = 1; t <= 8; t++) {
        state = step(state, grad(t));
        arena = step(arena, grad(t));
      }
      await assertSameBits(state, arena);
      await checkCallerBuffer(copied, (await readParams(arena)).w); // copied back each step
      copied.buffer.destroy();
    });
    // Neither path: STORAGE alone at byte 4, or a 5-float STORAGE buffer (the kernel binds two
    // whole vec4s, 32 bytes). The RangeError names the tensor; no GPU buffer was created.
    const misaligned = device!.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE });
    const short = device!.createBuffer({ size: 20, usage: GPUBufferUsage.STORAGE });
    const noUsage = device!.createBuffer({ size: 16, usage: GPUBufferUsage.VERTEX });
    const createBuffer = device!.createBuffer;
    let created = 0;
    device!.createBuffer = (d: GPUBufferDescriptor) => {
      created++;
      return createBuffer.call(device!, d);
    };
    try {
      await assert.rejects(
        () =>
          radam().init(
            { b: new Float32Array(3), w: { buffer: misaligned, offset: 4, length: 8 } },
            {
              device: device!,
            },
          ),
        (e) =>
          e instanceof RangeError && /parameter "w"/.test(e.message) &&
          /offset 4 .*minStorageBufferOffsetAlignment.*lacks COPY_SRC \| COPY_DST/.test(e.message),
      );
      await assert.rejects(
        () => radam().init({ w: short }, { device: device! }),
        (e) => e instanceof RangeError && /parameter "w".*32 bytes/.test(e.message),
      );
      await assert.rejects(
        () => radam().init({ v: noUsage }, { device: device! }),
        (e) => e instanceof TypeError && /parameter "v".*usage STORAGE .*COPY_SRC/.test(e.message),
      );
    } finally {
      device!.createBuffer = createBuffer;
    }
    assert.equal(created, 0);
    for (const b of [misaligned, short, noUsage]) b.destroy();
  },
});

Deno.test({
  name: "webgpu in place: a param split across bindings (lowered limits), with clipping",
  ignore,
  async fn() {
    const c = {
      ...fc.sample(caseArb(ADAM_ROW, 3, false), { numRuns: 1, seed: 5 })[0],
      lengths: [4097, 33, 1000],
      extras: { gc: false, badCalls: [], clipGradNorm: 0.25 },
    };
    const opt = optimizerFor(c, "webgpu");
    // 4 KiB bindings (1024 elements) and at most 2 workgroups per dimension.
    const tiny = { maxStorageBufferBindingSize: 4096, maxComputeWorkgroupsPerDimension: 2 };
    let buffers: CallerBuffer[] = [];
    await noGpuErrors(() =>
      checkAgainstReference(
        c,
        (params) => {
          const made = withCallerBuffers(
            params as Record<string, Float32Array>,
            ["storage", "host", "readable"],
          );
          buffers = made.buffers;
          return initWebGpuState(opt.settings, made.params, { device: device! }, tiny);
        },
        K_GPU,
      )
    );
    await checkCallerBuffer(buffers[1], undefined);
    // The dispatches: the 4097-element param in place, 5 binding-sized chunks of its buffer
    // (at bytes 256, 4352, …); the arena's run of b and c (elements 4160 … 5224): 2.
    const big = buffers[0];
    const backend = await createWebGpuBackend(
      device!,
      planGpuArena(["a", "b", "c"], c.lengths),
      ADAM,
      {
        limits: tiny,
        inPlaceParams: new Map([[0, {
          buffer: big.buffer,
          offset: big.offset,
          size: big.length * 4,
          length: big.length,
        }]]),
      },
    );
    assert.equal(backend.dispatchCount, 7);
    assert.deepEqual(backend.grids, [[2, 2], [2, 2], [2, 2], [2, 2], [1, 1], [2, 2], [1, 1]]);
    backend.destroy();
    for (const b of buffers) b.buffer.destroy();
  },
});

Deno.test({
  name: "webgpu in place: readParams, checkpoints and restores read and write the caller's buffers",
  ignore,
  async fn() {
    const params = mixedParams();
    const opt = ranger({ lr: 1e-2, k: 3 });
    await noGpuErrors(async () => {
      const { params: gpuParams, buffers } = withCallerBuffers(params, ["host", "readable"]);
      let gpu = await opt.init(gpuParams, { device: device! });
      let whole = await ranger({ lr: 1e-2, k: 3, backend: "wasm" }).init(params);
      for (let t = 1; t <= 7; t++) {
        gpu = step(gpu, gradsAt(t, params));
        whole = step(whole, gradsAt(t, params));
      }
      // A checkpoint of the in-place state resumes on wasm where it stopped.
      let back = await loadState(await saveState(gpu), { backend: "wasm" });
      for (let t = 8; t <= 12; t++) {
        back = step(back, gradsAt(t, params));
        whole = step(whole, gradsAt(t, params));
      }
      const [a, b] = [await readAll(back), await readAll(whole)];
      for (const name of Object.keys(b)) {
        for (const f of ["p", "m", "v", "s"] as const) {
          for (let i = 0; i < b[name][f]!.length; i++) {
            const x = a[name][f]![i], y = b[name][f]![i];
            assert.ok(
              Math.abs(x - y) <= 1e-5 * (1 + Math.abs(y)),
              `${f} ${name}[${i}]: ${x} vs ${y}`,
            );
          }
        }
      }
      for (const buf of buffers) {
        await checkCallerBuffer(buf, (await readParams(gpu))[buf.name]);
      }
    });
    // writeSection(PARAMS) (a restore) writes the caller's buffer, leaving its neighbours.
    await noGpuErrors(async () => {
      const p = callerBuffer("b", new Float32Array(70), "readable");
      const backend = await createWebGpuBackend(device!, planGpuArena(["a", "b"], [3, 70]), ADAM, {
        inPlaceParams: new Map([[1, { buffer: p.buffer, offset: 256, size: 280, length: 70 }]]),
      });
      const a = new Float32Array([1, 2, 3]), b = new Float32Array(70).map((_, i) => i / 7 - 3);
      backend.writeSection(PARAMS, { a, b });
      await checkCallerBuffer(p, b);
      const read = await backend.readSection(PARAMS);
      assert.deepEqual(read.a, a);
      assert.deepEqual(read.b, b);
      backend.destroy();
      p.buffer.destroy();
    });
  },
});
