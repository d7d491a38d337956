/**
 * A rule on WebGPU beside wasm, value class by value class (NaN, ±Infinity, finite): lanes of
 * chosen parameters and gradients, each in an 8-bit block of its own, stepped on both backends.
 * Shared by rules_nonfinite_test.ts and overflow_finite_test.ts.
 */
import assert from "node:assert/strict";
import { type Optimizer, type StatesFormat, step } from "../../mod.ts";
import { readAll } from "../cases.ts";
import { device } from "./gpu_device.ts";

/** An optimizer of the case, on `backend` with states `states`. */
export type Make = (backend: "webgpu" | "wasm", states: StatesFormat) => Optimizer<unknown>;

/** Elements of the tensor: a block of the 8-bit codes a lane, the rest small gradients. */
const SPACING = 256;
const LENGTH = 4096;

/** The value's class: "NaN", "+Infinity", "-Infinity" or "finite". */
export const classOf = (x: number): string =>
  Number.isNaN(x) ? "NaN" : Number.isFinite(x) ? "finite" : x > 0 ? "+Infinity" : "-Infinity";

/** The tensor of step `k` (0: the parameters), each lane's value at its block's start. */
function tensor(lanes: readonly (readonly number[])[], k: number): Float32Array {
  const out = new Float32Array(LENGTH).fill(k === 0 ? 1 : 0.25);
  lanes.forEach((lane, i) => out[i * SPACING] = lane[k]);
  return out;
}

/**
 * Steps `make`'s optimizer on WebGPU and on wasm through `lanes` (per lane: the parameter, then a
 * gradient a step), asserting after each step that every parameter, moment and slow weight is of
 * the same class on both, finite ones within 1e-5; returns the classes seen on wasm.
 */
export async function compareLanes(
  make: Make,
  states: StatesFormat,
  lanes: readonly (readonly number[])[],
): Promise<Set<string>> {
  const params = { w: tensor(lanes, 0) };
  let gpu = await make("webgpu", states).init(params, { device: device! });
  let cpu = await make("wasm", states).init(params);
  const seen = new Set<string>();
  for (let t = 1; t < lanes[0].length; t++) {
    const grads = { w: tensor(lanes, t) };
    gpu = step(gpu, grads);
    cpu = step(cpu, grads);
    const [a, b] = [(await readAll(gpu)).w, (await readAll(cpu)).w];
    for (const key of ["p", "m", "v", "s"] as const) {
      b[key]?.forEach((q, i) => {
        const p = a[key]![i];
        seen.add(classOf(q));
        const what = `step ${t}, ${key}[${i}]: webgpu ${p}, wasm ${q}`;
        assert.equal(classOf(p), classOf(q), what);
        if (Number.isFinite(q)) assert.ok(Math.abs(p - q) <= 1e-5 * Math.abs(q), what);
      });
    }
  }
  return seen;
}
