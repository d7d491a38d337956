/**
 * Gradient centralization on WebGPU, batched (gpu/centralize.ts): every centralized tensor of a
 * step in one dispatch, on many shapes (1 row, 1 column, many tiny tensors, one large one),
 * against the wasm backend; the same bits whatever the device's limits split the batch into
 * (binding windows, 2-D grids, more rows than a grid holds, tables of a few runs), in 32-bit and
 * 8-bit states. Without an adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has
 * none.
 */
import assert from "node:assert/strict";
import {
  checkpointInfo,
  dispose,
  type Optimizer,
  radam,
  ranger,
  readParams,
  saveState,
  sgd,
  step,
} from "../../mod.ts";
import { initWebGpuState } from "../../core/webgpu_state.ts";
import { optimizerOf, RULE_TABLE } from "../rule_table.ts";
import { device, ignore, K_GPU, noGpuErrors } from "./gpu_device.ts";

/** A seeded generator of floats in [0, 1). */
function random(seed: number): () => number {
  return () => (seed = (seed * 16807) % 2147483647) / 2147483647;
}

/** Shapes of a model: `kind` "tiny" (2,000 tensors up to 4 × 4), "mixed" or "large". */
function shapesOf(kind: "tiny" | "mixed" | "large", next: () => number): number[][] {
  const int = (n: number) => 1 + Math.floor(next() * n);
  if (kind === "tiny") return Array.from({ length: 2000 }, () => [int(4), int(4)]);
  if (kind === "large") return [[5], [2048, 1536], [1, 3]];
  return Array.from({ length: 60 }, (_, i) => {
    const pick = i % 6;
    if (pick === 0) return [int(300)]; // rank 1: not centralized
    if (pick === 1) return [1, int(700)]; // one row
    if (pick === 2) return [int(700), 1]; // one column: centralized to 0
    if (pick === 3) return [int(3), int(3), int(5)];
    return [int(200), int(300)];
  });
}

/** Params and gradients of `shapes` (values over many magnitudes, signs and -0). */
function modelOf(shapes: number[][], next: () => number) {
  const params: Record<string, Float32Array | { data: Float32Array; shape: number[] }> = {};
  const grads: Record<string, Float32Array> = {};
  shapes.forEach((shape, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    params[`t${i}`] = shape.length > 1 ? { data, shape } : data;
    grads[`t${i}`] = Float32Array.from(
      { length: n },
      () => next() < 0.02 ? -0 : (next() - 0.5) * 10 ** Math.floor(next() * 6 - 3),
    );
  });
  return { params, grads };
}

Deno.test({
  name:
    "webgpu: centralization of many shapes (1 row, 1 column, 2,000 tiny tensors, one of 3M elements) matches the wasm backend",
  ignore,
  async fn() {
    const next = random(11);
    const u = 2 ** -24;
    for (const kind of ["tiny", "mixed", "large"] as const) {
      const shapes = shapesOf(kind, next);
      const { params, grads } = modelOf(shapes, next);
      // SGD with lr 1 from zero params: each param is minus its centralized gradient, exactly.
      const opt = (backend: "wasm" | "webgpu") => sgd({ lr: 1, gc: true, backend });
      const gpu = step(await noGpuErrors(() => opt("webgpu").init(params, { device })), grads);
      const cpu = step(await opt("wasm").init(params), grads);
      const got = await readParams(gpu);
      shapes.forEach((shape, i) => {
        const name = `t${i}`;
        const want = cpu.params[name] as Float32Array;
        const g = grads[name];
        const cols = shape.length > 1 ? g.length / shape[0] : 1;
        for (let r = 0; r < g.length / cols; r++) {
          // Both means within (cols − 1) roundings of the row's sum of magnitudes over cols.
          let abs = 0;
          for (let j = 0; j < cols; j++) abs += Math.abs(g[r * cols + j]);
          const meanBound = 2 * (cols + K_GPU) * u * abs / cols;
          for (let j = r * cols; j < (r + 1) * cols; j++) {
            const d = Math.abs(got[name][j] - want[j]);
            assert.ok(
              d <= meanBound + K_GPU * u * Math.abs(want[j]),
              `${kind} ${name} (${shape}) [${j}]: ${got[name][j]} vs ${want[j]}`,
            );
          }
        }
        if (shape.length === 1) assert.deepEqual(got[name], want, `${name} is not centralized`);
      });
      dispose(gpu);
      dispose(cpu);
    }
  },
});

Deno.test({
  name:
    "webgpu: centralization split by the device's limits (windows, 2-D grids, more rows than a grid, small tables) gives the bits of one dispatch, 32-bit and 8-bit",
  ignore,
  async fn() {
    const next = random(5);
    // 4 KiB bindings (also 255 runs a table), 3 workgroups a side: 9 rows a dispatch at most.
    const small = { maxStorageBufferBindingSize: 4096, maxComputeWorkgroupsPerDimension: 3 };
    // 64 KiB bindings, 40 workgroups a side: rows past one side of the grid, in 2-D grids.
    const wide = { maxStorageBufferBindingSize: 1 << 16, maxComputeWorkgroupsPerDimension: 40 };
    const cases = [
      { shapes: shapesOf("tiny", next).slice(0, 600), limits: small },
      { shapes: [[7, 3], [1, 1000], [1000, 1], [50, 20], [3], [17, 64], [9, 65]], limits: small },
      { shapes: [[5], [3000, 5], [200, 300], [1, 16000]], limits: wide },
    ];
    for (const { shapes, limits } of cases) {
      const { params, grads } = modelOf(shapes, next);
      for (const states of ["32bit", "8bit"] as const) {
        const settings = ranger({ lr: 1e-2, states }).settings;
        await noGpuErrors(async () => {
          let split = await initWebGpuState(settings, params, { device: device! }, limits);
          let whole = await initWebGpuState(settings, params, { device: device! });
          for (let k = 0; k < 3; k++) {
            split = step(split, grads);
            whole = step(whole, grads);
          }
          const [a, b] = [await readParams(split), await readParams(whole)];
          assert.deepEqual(a, b, `${states}: ${JSON.stringify(shapes.slice(0, 6))}`);
          dispose(split);
          dispose(whole);
        });
      }
    }
  },
});

Deno.test({
  name:
    "webgpu: a step of a model of 5,000 centralized tensors makes one centralization dispatch, not one a tensor",
  ignore,
  async fn() {
    const shapes = Array.from({ length: 5000 }, () => [4, 6]);
    const { params, grads } = modelOf(shapes, random(3));
    /** The dispatches of a step of the model, with or without `gc`. */
    const dispatchesOf = async (gc: boolean) => {
      let state = await noGpuErrors(() =>
        radam({ gc, backend: "webgpu" }).init(params, { device })
      );
      const proto = GPUComputePassEncoder.prototype;
      const dispatch = proto.dispatchWorkgroups;
      let dispatches = 0;
      proto.dispatchWorkgroups = function (...args) {
        dispatches++;
        return dispatch.apply(this, args);
      };
      try {
        state = step(state, grads);
      } finally {
        proto.dispatchWorkgroups = dispatch;
      }
      await readParams(state);
      dispose(state);
      return dispatches;
    };
    assert.equal(await dispatchesOf(true), await dispatchesOf(false) + 1);
  },
});

/** Rows of `cols` gradients holding NaN or infinities, or finite values near f32's largest. */
function specialRows(cols: number): number[][] {
  const row = (at: Record<number, number>, fill = (i: number) => Math.sin(i + 1)) =>
    Array.from({ length: cols }, (_, i) => at[i] ?? fill(i));
  return [
    row({ 3: NaN }),
    row({ [cols - 1]: Infinity }),
    row({ 0: -Infinity, 5: -Infinity }),
    row({ 1: Infinity, [cols - 2]: -Infinity }),
    row({ 2: Infinity, 4: NaN }),
    row({}, (i) => (i % 2 ? 3e38 : -2e38)), // an f32 sum that overflows, or not, by the order
    row({}, (i) => (i % 3 ? 3e38 : 1)), // overflows
    row({}, (i) => (i - cols / 3) * (2e38 / cols)), // largest · cols past 2¹²⁶: summed scaled
    row({}),
  ];
}

/** The parameters after one centralized step of `rows` on each backend (lr 0.1 from 0.5). */
async function specialStep(
  opt: (backend: "wasm" | "webgpu") => Optimizer<unknown>,
  rows: number[][],
) {
  const cols = rows[0].length;
  const w = { data: new Float32Array(rows.length * cols).fill(0.5), shape: [rows.length, cols] };
  const grads = { w: Float32Array.from(rows.flat()) };
  const run = async (backend: "wasm" | "webgpu") => {
    const init = backend === "webgpu" ? { device: device! } : {};
    return (await readParams(step(await opt(backend).init({ w }, init), grads))).w;
  };
  return await noGpuErrors(() => Promise.all([run("webgpu"), run("wasm")]));
}

for (const rule of RULE_TABLE) {
  Deno.test({
    name:
      `webgpu ${rule.rule}: centralization of rows holding NaN or infinities matches wasm (told by the bits, not by a sum)`,
    ignore,
    async fn() {
      // Wide rows (a workgroup each) and narrow ones (an invocation each).
      for (const cols of [3 * 64 + 5, 40]) {
        const more = { gc: true, nonFinite: "propagate", lr: 0.1 };
        const opt = (backend: "wasm" | "webgpu") => optimizerOf(rule, rule.example, backend, more);
        const [gpu, cpu] = await specialStep(opt, specialRows(cols).slice(0, 5));
        cpu.forEach((q, i) => {
          const p = gpu[i];
          assert.ok(
            Number.isNaN(q)
              ? Number.isNaN(p)
              : Number.isFinite(q)
              ? Math.abs(p - q) <= 1e-5 * Math.max(Math.abs(q), 1)
              : p === q,
            `cols ${cols}, row ${Math.floor(i / cols)} [${i % cols}]: webgpu ${p}, wasm ${q}`,
          );
        });
      }
    },
  });
}

Deno.test({
  name:
    "webgpu: centralization of finite rows near f32's largest (an f32 sum that overflows, or could) matches wasm",
  ignore,
  async fn() {
    for (const cols of [3 * 64 + 5, 40]) {
      const rows = specialRows(cols).slice(5);
      // SGD with lr 0.1: each param is 0.5 minus a tenth of its centralized gradient.
      const [gpu, cpu] = await specialStep((backend) => sgd({ lr: 0.1, gc: true, backend }), rows);
      cpu.forEach((q, i) => {
        const row = rows[Math.floor(i / cols)];
        const largest = Math.max(...row.map(Math.abs));
        assert.ok(
          Math.abs(gpu[i] - q) <= 1e-5 * 0.1 * largest,
          `cols ${cols}, row ${Math.floor(i / cols)} [${i % cols}]: webgpu ${gpu[i]}, wasm ${q}`,
        );
      });
    }
  },
});

/**
 * Rows of finite gradients in which a value minus the row's mean passes f32's largest, with the
 * IEEE-754 ties at the boundary: in a row `[v, −FLT_MAX, −FLT_MAX, w]` (of 4: sums exact in any
 * order) the mean is −FLT_MAX / 2 = −(2¹²⁷ − 2¹⁰³), so `v − mean` is `v + 2¹²⁷ − 2¹⁰³`.
 */
function overflowingRows(cols: number): number[][] {
  const MAX = 3.4028234663852886e38;
  if (cols === 4) {
    const tie = (d: number) => [2 ** 127 + d, -MAX, -MAX, -(2 ** 127) - d];
    // v − mean: 2¹²⁸ − 2¹⁰³, halfway to 2¹²⁸ (Infinity); halfway below FLT_MAX (FLT_MAX − 2¹⁰⁴);
    // past the halfway (Infinity); and each negated.
    const rows = [tie(0), tie(-(2 ** 104)), tie(2 ** 104)];
    return [...rows, ...rows.map((r) => r.map((x) => -x))];
  }
  // v − mean: about 2 · v (past FLT_MAX for 3e38, not for 2¹²⁷: (1 + 195 / 197) · 2¹²⁷).
  const one = (big: number) => Array.from({ length: cols }, (_, i) => (i === 0 ? big : -big));
  return [one(3e38), one(-3e38), one(2 ** 127)];
}

Deno.test({
  name:
    "webgpu: centralization of finite rows where a value minus the mean passes f32's largest gives the infinity wasm gives (decided from the halves, not from an overflow)",
  ignore,
  async fn() {
    let infinities = 0;
    for (const cols of [4, 3 * 64 + 5]) {
      const rows = overflowingRows(cols);
      // SGD with lr 0.1: each param is 0.5 minus a tenth of its centralized gradient.
      const [gpu, cpu] = await specialStep((backend) => sgd({ lr: 0.1, gc: true, backend }), rows);
      cpu.forEach((q, i) => {
        const what = `cols ${cols}, row ${Math.floor(i / cols)} [${i % cols}]: webgpu ${
          gpu[i]
        }, wasm ${q}`;
        if (!Number.isFinite(q)) {
          infinities++;
          assert.equal(gpu[i], q, what);
        } else {
          assert.ok(Math.abs(gpu[i] - q) <= 1e-5 * 0.1 * 2 ** 128, what);
        }
      });
    }
    // Two rows of 4 each way, and the first value of the first two wide rows.
    assert.equal(infinities, 4 + 2);
  },
});

Deno.test({
  name:
    "webgpu: a state whose longest centralized row needs a binding above checkpointInfo's memory.webgpuBinding starts; below it, it is refused naming the tensor",
  ignore,
  async fn() {
    // (Rows of 1000 and 70; of rank 3 and 4, and 8-bit moments of tensors of 4096 elements or
    // more. Not rows of a few elements, whose binding is the 32-byte table of runs: a device
    // binds 128 MiB at least, and below 256 bytes, the alignment, the step binds nothing.)
    const cases = [
      [[5], [3, 1000], [40, 70], [2, 3, 333]],
      [[5000], [3, 2000], [40, 70], [2, 3, 1000], [2, 2, 3, 700]],
    ];
    for (const shapes of cases) await bindingExact(shapes);
  },
});

/** That test, of a model of tensors of `shapes`, 32-bit and 8-bit. */
async function bindingExact(shapes: number[][]): Promise<void> {
  const { params } = modelOf(shapes, random(9));
  for (const states of ["32bit", "8bit"] as const) {
    const settings = ranger({ lr: 1e-2, states }).settings;
    const host = await ranger({ lr: 1e-2, states }).init(params);
    const { webgpuBinding } = checkpointInfo(await saveState(host)).memory;
    const longest = Math.max(
      ...shapes.map((s) => s.length > 1 ? s.slice(1).reduce((a, b) => a * b) : 0),
    );
    assert.ok(webgpuBinding >= Math.max(4 * longest, 32), String(webgpuBinding));
    const limited = (binding: number) =>
      initWebGpuState(settings, params, { device: device! }, {
        maxStorageBufferBindingSize: binding,
      });
    await noGpuErrors(async () => dispose(await limited(webgpuBinding)));
    // (The bound is a 256-byte aligned window's; a device of a finer alignment may need less.)
    if (device!.limits.minStorageBufferOffsetAlignment !== 256) continue;
    await assert.rejects(limited(webgpuBinding - 4), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.match(
        e.message,
        new RegExp(
          `^Gradient centralization of parameter "t\\d" \\(\\d+ × \\d+\\) needs a binding of ${webgpuBinding} bytes`,
        ),
      );
      return true;
    });
  }
}
