/**
 * RAdam, Adam, AdamW, SGD (plain, momentum, dampening, Nesterov) and LookAhead under nonFinite
 * "propagate" on the WebGPU backend beside wasm, value class for value class (NaN, ±Infinity,
 * finite): NaN and infinite gradients, moments, parameters and slow weights (∞ − ∞, ∞ · 0 by a
 * clipping factor or a dampening of 1, ∞ / ∞ in Adam's quotient, a finite numerator over an
 * infinite v), in 32-bit and 8-bit states. The WGSL decides these classes from the bits as stored
 * (WGSL lets a compiler assume no NaN or infinity: tests/gpu/wgsl_finite_test.ts reads that from
 * the code), so on llvmpipe, which keeps IEEE-754, this checks that the bits decided are the ones
 * IEEE-754 gives. Lion's are in lion_nonfinite_test.ts.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { adam, adamw, lookahead, radam, ranger, sgd, type StatesFormat } from "../../mod.ts";
import { ignore, noGpuErrors } from "./gpu_device.ts";
import { compareLanes, type Make } from "./lanes.ts";

const MAX = 3.4028234663852886e38;
const f32 = Math.fround;

/** Per lane: the parameter (finite: init refuses others), then the gradients of four steps. */
const LANES: readonly (readonly number[])[] = [
  [1, NaN, 0.5, 0.5, 1],
  [1, Infinity, -Infinity, 1, 1],
  [-1, -Infinity, -Infinity, 2, 1],
  [1, Infinity, 0.5, -0.5, 1],
  [0.5, MAX, MAX, -MAX, 1],
  [0.5, -MAX, 3, MAX, 1],
  [2, 0, -0, 0, 0],
  [1, 1e-45, -1e-45, 0.25, 1],
  [-3, 1, Infinity, NaN, 1],
  [1, -Infinity, Infinity, 1, 1],
  [2, -Infinity, 0.5, 0.5, 0.5],
  [-2, 0.5, NaN, 0.5, 0.5],
];

const common = (backend: "webgpu" | "wasm", states: StatesFormat) =>
  ({ backend, states, nonFinite: "propagate" }) as const;

const CONFIGS: Record<string, Make> = {
  "adam": (b, s) => adam({ lr: 1e-2, ...common(b, s) }),
  "adam, L2 decay, maximize": (b, s) => adam({ weightDecay: 0.1, maximize: true, ...common(b, s) }),
  "adamw, clipping (an infinity clips by 0)": (b, s) =>
    adamw({ weightDecay: 0.1, clipGradNorm: 1, ...common(b, s) }),
  "radam (momentum steps)": (b, s) => radam({ lr: 1e-2, ...common(b, s) }),
  "radam, nesterov": (b, s) => radam({ nesterov: true, ...common(b, s) }),
  "radam, moments only": (b, s) => radam({ degenerateToSgd: false, ...common(b, s) }),
  "radam, rectified from step 2": (b, s) =>
    radam({ betas: [0.9, 0.5], threshold: 4, ...common(b, s) }),
  "sgd": (b, s) => sgd({ lr: 0.1, ...common(b, s) }),
  "sgd, momentum, L2 decay": (b, s) => sgd({ momentum: 0.9, weightDecay: 0.1, ...common(b, s) }),
  "sgd, dampening 1 (∞ · 0)": (b, s) => sgd({ momentum: 0.5, dampening: 1, ...common(b, s) }),
  "sgd, nesterov": (b, s) => sgd({ momentum: 0.9, nesterov: true, ...common(b, s) }),
  "lookahead(sgd, momentum), k = 1": (b, s) =>
    lookahead(sgd({ momentum: 0.9, ...common(b, s) }), { k: 1, alpha: 0.5 }),
  "lookahead(adam), alpha 0 (∞ · 0)": (b, s) =>
    lookahead(adam({ ...common(b, s) }), { k: 1, alpha: 0 }),
  "ranger, k = 2": (b, s) => ranger({ k: 2, ...common(b, s) }),
};

for (const states of ["32bit", "8bit"] as const) {
  for (const [config, make] of Object.entries(CONFIGS)) {
    Deno.test({
      name:
        `webgpu ${config} (${states}): under "propagate", NaN and infinities reach the parameters, moments and slow weights as on wasm`,
      ignore,
      async fn() {
        await noGpuErrors(async () => {
          const seen = await compareLanes(make, states, LANES);
          assert.ok(seen.has("NaN") && seen.has("finite"), [...seen].join());
          // (8-bit moments hold an infinity as ±FLT_MAX: docs/SPEC.md, "Compact states".)
          if (states === "32bit") assert.ok(seen.has("+Infinity") || seen.has("-Infinity"));
        });
      },
    });
  }
}

/** Finite f32 values, the largest magnitudes and those near 2¹²⁶…2¹²⁸ often. */
const f32Arb = fc.oneof(
  fc.float({ noNaN: true, noDefaultInfinity: true }),
  fc.float({ min: 2 ** 125, max: MAX, noNaN: true }).chain((x) => fc.constantFrom(x, -x)),
  fc.integer({ min: 0, max: 2 ** 23 }).map((k) => f32(MAX - k * 2 ** 104)),
  fc.constantFrom(0, -0, 2 ** -149, 1, -1, MAX, -MAX, 2 ** 127, -(2 ** 127)),
);

Deno.test("webgpu checks: times_checked, sum_checked and Lion's step tell an f32 overflow of finite values from scaled and halved operands exactly as IEEE-754 rounds it (the WGSL's arithmetic, in f32)", () => {
  const over = (x: number) => !Number.isFinite(x);
  fc.assert(
    fc.property(f32Arb, f32Arb, fc.constantFrom(-1, 0, 1), (x, y, s) => {
      // times_checked: (x · 2⁻⁶⁴) · (w · 2⁻⁶⁴) rounds to 1 or more.
      const scaled = f32(f32(x * 2 ** -64) * f32(y * 2 ** -64));
      assert.equal(Math.abs(scaled) >= 1, over(f32(x * y)), `${x} · ${y}`);
      // sum_checked: x / 2 + y / 2 rounds to 2¹²⁷ or more.
      const half = f32(f32(x * 0.5) + f32(y * 0.5));
      assert.equal(Math.abs(half) >= 2 ** 127, over(f32(x + y)), `${x} + ${y}`);
      // Lion: p · pd − ss · s, ss = |y|.
      const ss = Math.abs(y), product = f32(x * y);
      const stepHalf = f32(f32(product * 0.5) - f32(f32(ss * 0.5) * s));
      const inf = Math.abs(scaled) >= 1 || Math.abs(stepHalf) >= 2 ** 127;
      const cpu = f32(product - f32(ss * s));
      assert.equal(inf, over(cpu), `${x} · ${y} − ${ss} · ${s}`);
      if (inf) assert.equal(Math.abs(scaled) >= 1 ? scaled < 0 : stepHalf < 0, cpu < 0);
    }),
    { numRuns: 50000 },
  );
});
