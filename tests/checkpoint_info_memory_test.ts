/**
 * `checkpointInfo(bytes).memory`: the bytes the state of a checkpoint takes on each backend,
 * from its header alone, are what `loadState` makes there (the js arena; the wasm memory's whole
 * pages, or a page more; the largest buffer of the GPU's layout or its ring of step scalars,
 * which a device's `maxBufferSize` bounds), for states of 32-bit and 8-bit moments, with groups
 * and LookAhead, and loaded in either format; and what they say of wasm's 4 GiB is what
 * `loadState` refuses, and of WebGPU's binding (under `gc`) what its centralization refuses.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adam,
  checkpointInfo,
  lion,
  loadState,
  lookahead,
  type Optimizer,
  radam,
  ranger,
  saveState,
  sgd,
  type StatesFormat,
} from "../mod.ts";
import { disposeState, stateInternals } from "../core/state.ts";
import { planOptionsOf } from "../core/plan.ts";
import type { Settings } from "../base/settings.ts";
import { type ArenaLayout, planArena } from "../base/arena.ts";
import { planCompactArena } from "../base/arena_compact.ts";
import type { CpuBackend } from "../cpu/cpu_backend.ts";
import { createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import {
  checkWasmCapacity,
  headerBytes,
  MAX_WASM_MEMORY_BYTES,
  PAGE_BYTES,
  wasmMemoryBytes,
} from "../cpu/wasm_backend.ts";
import { ALIGN_BYTES, gpuBufferBytes, planGpuArena, planGpuLayout } from "../gpu/arena_layout.ts";
import { planCentralizeBatches } from "../gpu/centralize.ts";
import { planGpuCompactArena } from "../gpu/compact_plan.ts";
import { RING_SIZE, ringStride } from "../gpu/scalar_ring.ts";
import { blockCount } from "../base/scalars.ts";
import { randoms } from "./util.ts";

const MAKERS: readonly ((states: StatesFormat, groups: boolean) => Optimizer<unknown>)[] = [
  (states, groups) =>
    radam({ states, ...(groups ? { groups: [{ match: /b/, lrScale: 2 }] } : {}) }),
  (states) => lookahead(adam({ states }), { k: 3 }),
  (states, groups) =>
    lion({ states, ...(groups ? { groups: [{ match: /^a/, weightDecay: 0 }] } : {}) }),
  (states) => sgd({ states, momentum: 0.9 }),
];

Deno.test("checkpointInfo: memory is the bytes of the state loadState makes on js, wasm and WebGPU", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: MAKERS.length - 1 }),
      fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 5 }),
      fc.constantFrom<StatesFormat>("32bit", "8bit"),
      fc.boolean(),
      async (maker, lengths, states, groups) => {
        const opt = MAKERS[maker](states, groups);
        const names = lengths.map((_, i) => `${"ab"[i % 2]}${i}`);
        const state = await opt.init(
          Object.fromEntries(names.map((name, i) => [name, randoms(lengths[i], i)])),
        );
        const bytes = await saveState(state);
        const { memory } = checkpointInfo(bytes);
        assert.ok(Object.isFrozen(memory));
        const js = stateInternals(await loadState(bytes, { backend: "js" })).backend as CpuBackend;
        assert.equal(memory.js, js.layout.byteLength);
        assert.equal(memory.js, js.buffer.byteLength);
        const wasm = stateInternals(await loadState(bytes, { backend: "wasm" }))
          .backend as CpuBackend;
        const used = wasm.buffer.byteLength; // (the memory's, in whole pages)
        assert.ok(wasm.base + wasm.layout.byteLength <= used);
        assert.ok(
          used <= memory.wasm && memory.wasm <= used + PAGE_BYTES,
          `${used} ${memory.wasm}`,
        );
        // The GPU's layout of the state (core/webgpu_state.ts), whose sections createSections
        // checks against maxBufferSize, and its ring of step scalars (a block per group and one
        // more, in each of its entries), the larger for a small model (tests/gpu/ counts the
        // buffers made).
        const layout = js.layout;
        const options = planOptionsOf(stateInternals(state).config, layout.names);
        const gpu = states === "8bit"
          ? planGpuCompactArena(layout.names, layout.lengths, options)
          : planGpuArena(layout.names, layout.lengths, options);
        const ring = RING_SIZE * ringStride(blockCount(gpu.segments)) * 4;
        const largest = Math.max(gpu.sectionLength * 4, ring);
        assert.equal(memory.webgpuBuffer, largest);
        // (One layout: the one a WebGPU state is started on, that gpuBufferBytes measures.)
        const planned = planGpuLayout(layout.names, layout.lengths, options, states);
        assert.deepEqual(planned, gpu);
        assert.equal(gpuBufferBytes(planned), largest);
      },
    ),
    { numRuns: 30, seed: 20261207 },
  );
});

Deno.test("checkpointInfo: memory.wasm holds the whole pages of the memory loadState grows, not only the bytes the state uses", async () => {
  // (The arena's end lies a few bytes into a page here: the memory has that page too. It was
  // counted from a page's start, 1008 bytes short of the memory.)
  const bytes = await saveState(
    await ranger().init({ w: new Float32Array(2970), b: new Float32Array(7) }),
  );
  const { memory } = checkpointInfo(bytes);
  const state = await loadState(bytes, { backend: "wasm" });
  const wasm = stateInternals(state).backend as CpuBackend;
  assert.ok(wasm.buffer.byteLength <= memory.wasm, `${wasm.buffer.byteLength} ${memory.wasm}`);
  assert.equal(memory.wasm % PAGE_BYTES, 0);
  disposeState(state);
});

Deno.test("checkpointInfo: memory is of the file's format of the moments, as loadState(bytes) resumes it", async () => {
  const params = { w: randoms(5000, 1), b: randoms(10, 2) };
  const bytes8 = await saveState(await radam({ states: "8bit" }).init(params));
  const bytes32 = await saveState(await radam().init(params));
  const [m8, m32] = [checkpointInfo(bytes8).memory, checkpointInfo(bytes32).memory];
  assert.ok(m8.js < m32.js && m8.wasm < m32.wasm);
  const as32 = stateInternals(await loadState(bytes8, { backend: "js", states: "32bit" }));
  assert.equal((as32.backend as CpuBackend).layout.byteLength, m32.js);
});

Deno.test("checkpointInfo: memory.wasm above 4 GiB is what loadState's wasm backend refuses", () => {
  // (No such file is made here: the arena it plans, of a parameter count on each side.)
  for (const n of [250_000_000, 270_000_000]) {
    const layout = planArena(["w"], [n], { moments: 2 });
    const over = wasmMemoryBytes(layout) > MAX_WASM_MEMORY_BYTES;
    assert.equal(n > 2 ** 28, over);
    if (over) assert.throws(() => checkWasmCapacity(layout), /4 GiB/);
    else checkWasmCapacity(layout);
  }
});

/**
 * Asserts that `binding` (a checkpoint's `memory.webgpuBinding`, `bytes`, of a state of `config`
 * over `params`) is the binding WebGPU's gradient centralization plans the state's tensors with,
 * and that 4 bytes less refuse it, naming a tensor and that binding: in loadState's order of the
 * tensors, and in others that a WebGPU `init` of the same params may be given (reversed,
 * rotated): each tensor starts at a 256-byte boundary, so where a row starts past one is its own.
 */
async function assertBindingExact(
  config: Settings,
  params: Record<string, { data: Float32Array; shape: number[] }>,
  bytes: Uint8Array,
  binding: number,
): Promise<void> {
  // The segments a WebGPU state of it centralizes (core/state.ts restoreState), on the
  // GPU's layout of it, planned against a device whose binding is just that, or 4 less.
  const host = stateInternals(await loadState(bytes, { backend: "js" })).backend.layout;
  const { names } = host;
  const rotated = names.map((_, i) => names[(i + 1) % names.length]);
  for (const order of [names, [...names].reverse(), rotated]) {
    const lengths = order.map((name) => host.lengths[names.indexOf(name)]);
    const options = planOptionsOf(config, order);
    assertBindingOf(planGpuLayout(order, lengths, options, config.run.states), params, binding);
  }
}

/** {@linkcode assertBindingExact} on the GPU's layout `gpu` of `params`. */
function assertBindingOf(
  gpu: ArenaLayout,
  params: Record<string, { data: Float32Array; shape: number[] }>,
  binding: number,
): void {
  const segments = gpu.names.flatMap((name, i) => {
    const shape = params[name].shape;
    return shape.length > 1 ? [gpu.offsets[i], shape[0], gpu.lengths[i] / shape[0]] : [];
  });
  const centralizedNames = gpu.names.filter((name) => params[name].shape.length > 1);
  const plan = (limit: number) =>
    planCentralizeBatches(
      segments,
      {
        maxStorageBufferBindingSize: limit,
        maxBufferSize: 1 << 30,
        maxComputeWorkgroupsPerDimension: 65535,
      },
      ALIGN_BYTES,
      centralizedNames,
    );
  assert.ok(plan(binding).length > 0);
  assert.throws(() => plan(binding - 4), (e: Error) => {
    assert.ok(e instanceof RangeError, String(e));
    assert.match(
      e.message,
      new RegExp(
        `^Gradient centralization of parameter "t\\d+" \\(\\d+ × \\d+\\) needs a binding of ${binding} bytes`,
      ),
    );
    return true;
  });
}

Deno.test("checkpointInfo: memory.webgpuBinding is the binding below which WebGPU's gradient centralization refuses the state, naming the tensor (rows of any length, tensors of rank 2 to 4)", async () => {
  await fc.assert(
    fc.asyncProperty(
      // (Rows of a few elements too: a binding holds a table of the runs of rows beside a
      // window, of 32 bytes at least, more than a window of a row of 7 elements or fewer.)
      fc.array(
        fc.tuple(
          fc.integer({ min: 1, max: 9 }),
          fc.integer({ min: 1, max: 700 }),
          fc.constantFrom<number[]>([], [2], [3, 2]),
        ),
        { minLength: 1, maxLength: 4 },
      ),
      fc.constantFrom<StatesFormat>("32bit", "8bit"),
      fc.boolean(),
      async (dims, states, gc) => {
        const names = dims.map((_, i) => `t${i}`);
        const opt = adam({ states, gc });
        const params = Object.fromEntries(names.map((name, i) => {
          const [rows, cols, inner] = dims[i];
          const length = rows * cols * inner.reduce((a, b) => a * b, 1);
          // (The first: rank 1.)
          const shape = i === 0 ? [length] : [rows, cols, ...inner];
          return [name, { data: randoms(length, i), shape }];
        }));
        const bytes = await saveState(await opt.init(params));
        const { memory } = checkpointInfo(bytes);
        const centralized = gc && dims.length > 1;
        if (!centralized) return assert.equal(memory.webgpuBinding, 0);
        await assertBindingExact(opt.settings, params, bytes, memory.webgpuBinding);
      },
    ),
    { numRuns: 40, seed: 20261207 },
  );
});

Deno.test("checkpointInfo: memory.wasm is one thread's; a threaded state's memory is it with the bytes its TSDoc says threads add, in whole pages", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: MAKERS.length - 1 }),
      fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 4 }),
      fc.constantFrom<StatesFormat>("32bit", "8bit"),
      fc.integer({ min: 2, max: 40 }),
      async (maker, lengths, states, threads) => {
        const opt = MAKERS[maker](states, false);
        const names = lengths.map((_, i) => `t${i}`);
        const bytes = await saveState(
          await opt.init(
            Object.fromEntries(names.map((name, i) => [name, randoms(lengths[i], i)])),
          ),
        );
        const { memory } = checkpointInfo(bytes);
        const state = await loadState(bytes, { backend: "wasm", threads, threadThreshold: 0 });
        try {
          const wasm = stateInternals(state).backend as CpuBackend;
          assert.equal(wasm.threads, threads);
          const n = wasm.layout.total;
          // As the TSDoc of memory.wasm counts them: a control block, the norm's partial sums,
          // the other threads' scratch of 8-bit moments.
          const added = 256 + Math.ceil(Math.ceil(n / 16384) * 8 / 64) * 64 +
            (states === "8bit" ? (threads - 1) * 2048 : 0);
          const used = wasm.buffer.byteLength;
          assert.equal(used, wasmMemoryBytes(wasm.layout, added), `${used} ${memory.wasm}`);
          assert.ok(
            memory.wasm <= used && used <= memory.wasm + Math.ceil(added / PAGE_BYTES) * PAGE_BYTES,
          );
        } finally {
          disposeState(state);
        }
      },
    ),
    { numRuns: 12, seed: 20261207 },
  );
});

Deno.test("a threaded state above 4 GiB is refused with its own memory's figure, not a page more", async () => {
  // (No such state is made: the threaded backend refuses its layout before it allocates.) Sizes
  // whose memory ends just short of a page's end: one thread's descriptor, scalars and scratch
  // counted again, as they were, made the figure a page more.
  const threads = 64;
  for (const states of ["32bit", "8bit"] as const) {
    const plan = (n: number) =>
      states === "8bit"
        ? planCompactArena(["w"], [n], { moments: 2 })
        : planArena(["w"], [n], { moments: 2 });
    let layout, added = 0;
    for (let n = states === "8bit" ? 450_000_000 : 300_000_000;; n += 16) {
      layout = plan(n);
      added = 256 + Math.ceil(Math.ceil(layout.total / 16384) * 8 / 64) * 64 +
        Math.ceil(threads * 16 / 64) * 64 + // each thread's slot: its last job, how it failed
        (states === "8bit" ? (threads - 1) * 2048 : 0);
      const again = wasmMemoryBytes(layout, added + headerBytes(layout, true));
      if (wasmMemoryBytes(layout, added) < again) break;
    }
    assert.ok(wasmMemoryBytes(layout, added) > MAX_WASM_MEMORY_BYTES);
    await assert.rejects(
      createThreadedWasmBackend(layout, threads),
      (e: Error) =>
        e instanceof RangeError &&
        e.message.includes(`needs ${wasmMemoryBytes(layout, added)} bytes`),
    );
  }
});

Deno.test("checkpointInfo: memory.webgpuBinding of a state whose centralized rows are of a few elements is the 32-byte table of runs bound beside them, not the rows' window", async () => {
  for (const shapes of [[[3], [2, 2]], [[4, 1, 1], [1, 7]], [[5, 1], [2, 3, 1, 1]]]) {
    const opt = adam({ gc: true });
    const params = Object.fromEntries(shapes.map((shape, i) => {
      const length = shape.reduce((a, b) => a * b, 1);
      return [`t${i}`, { data: randoms(length, i), shape }];
    }));
    const bytes = await saveState(await opt.init(params));
    const { webgpuBinding } = checkpointInfo(bytes).memory;
    assert.equal(webgpuBinding, 32, JSON.stringify(shapes));
    await assertBindingExact(opt.settings, params, bytes, webgpuBinding);
  }
});
