/**
 * Lion under nonFinite "propagate" on the WebGPU backend beside wasm, value class for value class:
 * NaN and infinite gradients, moments and parameters (∞ − ∞, ∞ · 0 by β1 = 0 or by a clipping
 * factor of 0, maximize's sign), gradients of f32's largest magnitude,
 * zeros and subnormals, in 32-bit and 8-bit states. The WGSL decides these classes from the bits
 * as stored (WGSL lets a compiler assume no NaN or infinity; tests/gpu/wgsl_finite_test.ts reads
 * that from the code), so on llvmpipe, which keeps IEEE-754, this checks that the bits decided
 * are the ones IEEE-754 gives. Also: a finite `c` or `m` cannot overflow in f32 on the CPU (a
 * contracted one could on a GPU: the WGSL computes them from halves or magnitudes where a value is
 * 2¹²⁶ or more, tests/gpu/overflow_finite_test.ts).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { lion, type LionOptions, step } from "../../mod.ts";
import { readAll } from "../cases.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";

const MAX = 3.4028234663852886e38;
const f32 = Math.fround;

/** Per lane: the parameter, then the gradients of three steps (a NaN parameter comes of a step). */
const LANES: readonly (readonly [number, number, number, number])[] = [
  [1, NaN, 0.5, 0.5],
  [1, Infinity, -Infinity, 1],
  [-1, -Infinity, -Infinity, 2],
  [1, Infinity, 0.5, -0.5],
  [0.5, MAX, MAX, -MAX],
  [0.5, -MAX, 3, MAX],
  [2, 0, -0, 0],
  [1, 1e-45, -1e-45, 0.25],
  [-3, 1, Infinity, NaN],
];

/** Elements of the tensor: a block of the 8-bit codes a lane, the rest zero gradients. */
const SPACING = 256;
const LENGTH = 4096;

const CONFIGS: Record<string, LionOptions> = {
  "defaults": { lr: 3e-3, weightDecay: 0.1 },
  "β1 = 0": { lr: 3e-3, betas: [0, 0.5] },
  "maximize": { lr: 3e-3, maximize: true },
  "clipping (an infinity clips by 0)": { lr: 3e-3, clipGradNorm: 1 },
};

/** The value's class: "NaN", "+Infinity", "-Infinity" or "finite". */
const classOf = (x: number) =>
  Number.isNaN(x) ? "NaN" : Number.isFinite(x) ? "finite" : x > 0 ? "+Infinity" : "-Infinity";

function tensor(k: number): Float32Array {
  const out = new Float32Array(LENGTH).fill(k === 0 ? 1 : 0);
  LANES.forEach((lane, i) => out[i * SPACING] = lane[k]);
  return out;
}

for (const states of ["32bit", "8bit"] as const) {
  for (const [config, options] of Object.entries(CONFIGS)) {
    Deno.test({
      name:
        `webgpu lion (${states}, ${config}): under "propagate", NaN and infinities reach the parameters and moments as on wasm`,
      ignore,
      async fn() {
        await noGpuErrors(async () => {
          const more = { ...options, nonFinite: "propagate", states } as const;
          const params = { w: tensor(0) };
          let gpu = await lion({ ...more, backend: "webgpu" }).init(params, { device: device! });
          let cpu = await lion({ ...more, backend: "wasm" }).init(params);
          const seen = new Set<string>();
          for (let t = 1; t <= 3; t++) {
            const grads = { w: tensor(t) };
            gpu = step(gpu, grads);
            cpu = step(cpu, grads);
            const [a, b] = [(await readAll(gpu)).w, (await readAll(cpu)).w];
            for (const key of ["p", "m"] as const) {
              b[key].forEach((q, i) => {
                const p = a[key][i];
                seen.add(classOf(q));
                const what = `step ${t}, ${key}[${i}]: webgpu ${p}, wasm ${q}`;
                assert.equal(classOf(p), classOf(q), what);
                if (Number.isFinite(q)) assert.ok(Math.abs(p - q) <= 1e-6 * Math.abs(q), what);
              });
            }
          }
          // (8-bit moments hold an infinity as ±FLT_MAX: docs/SPEC.md, "Compact states".)
          const classes = states === "8bit" ? [] : ["+Infinity", "-Infinity"];
          assert.deepEqual([...seen].sort(), [...classes, "NaN", "finite"]);
        });
      },
    });
  }
}

for (const states of ["32bit", "8bit"] as const) {
  Deno.test({
    name:
      `webgpu lion (${states}): p · paramDecay − lr · sign(c) past f32's largest, of finite values (a huge lr or weight decay), is the infinity wasm gives`,
    ignore,
    async fn() {
      await noGpuErrors(async () => {
        const params = { w: new Float32Array(LENGTH).map((_, i) => [1, -1, 0.5, 3e38][i % 4]) };
        const grads = { w: new Float32Array(LENGTH).map((_, i) => [1, -1, -1, 1, 0][i % 5]) };
        for (
          const options of [{ lr: 2e38 }, { lr: 1, weightDecay: 1e38 }, {
            lr: 3e38,
            weightDecay: 0.5,
          }]
        ) {
          const more = { ...options, nonFinite: "propagate", states } as const;
          let gpu = await lion({ ...more, backend: "webgpu" }).init(params, { device: device! });
          let cpu = await lion({ ...more, backend: "wasm" }).init(params);
          const seen = new Set<string>();
          for (let t = 1; t <= 2; t++) {
            gpu = step(gpu, grads);
            cpu = step(cpu, grads);
            const [a, b] = [(await readAll(gpu)).w.p, (await readAll(cpu)).w.p];
            b.forEach((q, i) => {
              seen.add(classOf(q));
              const what = `${JSON.stringify(options)}, step ${t}, p[${i}]: webgpu ${
                a[i]
              }, wasm ${q}`;
              assert.equal(classOf(a[i]), classOf(q), what);
              if (Number.isFinite(q)) assert.ok(Math.abs(a[i] - q) <= 1e-6 * Math.abs(q), what);
            });
          }
          assert.ok(seen.has("+Infinity") && seen.has("-Infinity"), [...seen].join());
        }
      });
    },
  });
}

Deno.test("lion: a finite interpolation c or moment m cannot overflow f32 (each product rounded)", () => {
  // The largest |β · x + (1 − β) · y| over |x|, |y| ≤ the largest f32 is at x = y = ±FLT_MAX.
  const beta = fc.oneof(
    fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    fc.integer({ min: 1, max: 2 ** 24 - 1 }).map((k) => k / 2 ** 24),
    fc.integer({ min: 1, max: 2 ** 20 }).map((k) => 1 - k * 2 ** -53),
  );
  fc.assert(
    fc.property(beta, (b) => {
      const sum = f32(f32(f32(b) * MAX) + f32(f32(1 - b) * MAX));
      assert.ok(Number.isFinite(sum), `β = ${b}: ${sum}`);
    }),
    { numRuns: 20000 },
  );
});
