/**
 * RAdam against its float64 reference over a long run without re-syncing (the per-step
 * comparison on random cases is every rule's, tests/rules_test.ts).
 */
import assert from "node:assert/strict";
import { radam, readParams, step } from "../mod.ts";
import { refAdamStep, type RefState, toF64 } from "./reference.ts";

Deno.test("free-running 200 steps stay within 1e-4 of the total movement of the float64 run", async () => {
  // Without re-syncing, f32 rounding accumulates; this bounds the drift at default settings.
  const n = 1001;
  const rand = (i: number, t: number) => Math.sin(i * 12.9898 + t * 78.233) * 0.5;
  const p0 = Float32Array.from({ length: n }, (_, i) => rand(i, 0));
  for (const backend of ["wasm", "js"] as const) {
    let state = await radam({ lr: 1e-2, backend }).init({ w: p0 });
    let ref: RefState = { p: toF64(p0), m: new Float64Array(n), v: new Float64Array(n) };
    const moved = new Float64Array(n);
    const cfg = {
      kind: "radam" as const,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      decoupled: false,
      maximize: false,
      threshold: 5,
      degenerateToSgd: true,
    };
    for (let t = 1; t <= 200; t++) {
      const g = Float32Array.from({ length: n }, (_, i) => rand(i, t) + 0.1);
      state = step(state, { w: g });
      const next = refAdamStep(cfg, ref, g, t, 1e-2);
      for (let i = 0; i < n; i++) moved[i] += Math.abs(next.p[i] - ref.p[i]);
      ref = next;
    }
    const { w } = await readParams(state);
    for (let i = 0; i < n; i++) {
      assert.ok(
        Math.abs(w[i] - ref.p[i]) <= 1e-4 * moved[i] + 1e-6 * Math.abs(ref.p[i]),
        `${backend} w[${i}] = ${w[i]}, reference ${ref.p[i]}, moved ${moved[i]}`,
      );
    }
  }
});
