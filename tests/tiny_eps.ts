/**
 * A tiny `eps` (below f32's normal range, down to its least positive value) on a backend: Adam
 * folds `eps · sqrt(1 − β2^t)` into one f32 scalar a step, which rounded to 0 there, and an
 * element whose moments are 0 stepped by 0 / 0 = NaN where PyTorch's `m̂ / (sqrt(v̂) + eps)` is 0.
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  type BackendChoice,
  dispose,
  type Optimizer,
  radam,
  ranger,
  readParams,
  type StatesFormat,
  step,
} from "../mod.ts";
import { type AdamConfig, firstMismatch, K, refAdamStep, toF64 } from "./reference.ts";
import { readAll } from "./cases.ts";

/** The eps values checked: an f32 subnormal, one that rounds to 2⁻¹⁴⁹, and 2⁻¹⁴⁹ itself. */
export const TINY_EPS = [1e-40, 1e-45, 2 ** -149] as const;

/** β2 values: the default, and one next to 1 (where even eps = 1e-40 underflowed). */
const BETA2 = [0.999, 1 - 1e-12] as const;

const FACTORIES = { adam, adamw, radam, ranger } as const;

/**
 * Steps every RAdam/Adam optimizer (and Ranger) with each tiny eps on `backend` with `states`
 * moments (and `more` options), made by `init`, on gradients that are 0 at even indices: those elements keep their
 * parameter exactly (m = v = 0: they step by 0), every parameter is finite, and (32-bit moments)
 * each step matches the float64 reference from the state before it (`k` roundings a quantity).
 */
export async function checkTinyEps(
  backend: BackendChoice,
  states: StatesFormat,
  init: (opt: Optimizer, params: Float32Array) => Promise<Parameters<typeof step>[0]>,
  more: { threads?: number; threadThreshold?: number } = {},
  k = K,
): Promise<void> {
  const n = states === "8bit" ? 4097 : 9;
  const p0 = Float32Array.from({ length: n }, (_, i) => 1 + (i % 7) / 8);
  const grad = Float32Array.from({ length: n }, (_, i) => i % 2 ? Math.sin(i) / 8 : 0);
  for (const [name, factory] of Object.entries(FACTORIES)) {
    for (const eps of TINY_EPS) {
      for (const beta2 of BETA2) {
        const what = `${backend} ${states} ${name}, eps ${eps}, β2 ${beta2}`;
        const opt = factory({
          eps,
          betas: [0.9, beta2],
          lr: 1e-2,
          weightDecay: 0,
          backend,
          states,
          ...more,
        });
        const config: AdamConfig = {
          kind: name === "adam" || name === "adamw" ? "adam" : "radam",
          beta1: 0.9,
          beta2,
          eps,
          weightDecay: 0,
          decoupled: name === "adamw",
          maximize: false,
          threshold: 5,
          degenerateToSgd: true,
        };
        let state = await init(opt, p0);
        for (let t = 1; t <= 8; t++) {
          const before = (await readAll(state))[""];
          state = step(state, grad);
          const p = (await readParams(state))[""];
          for (let i = 0; i < n; i++) {
            assert.ok(Number.isFinite(p[i]), `${what}: p[${i}] = ${p[i]} at step ${t}`);
            if (i % 2 === 0) assert.equal(p[i], p0[i], `${what}: p[${i}] at step ${t}`);
          }
          if (states === "8bit" || name === "ranger") continue;
          const ref = refAdamStep(config, before, grad, t, 1e-2, undefined, k);
          const i = firstMismatch(toF64(p), ref.p, ref.tolP);
          assert.equal(i, -1, `${what}: p[${i}] = ${p[i]} at step ${t}, reference ${ref.p[i]}`);
        }
        dispose(state);
      }
    }
  }
}
