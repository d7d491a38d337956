/**
 * Everything a state holds, read for comparison (its counts, parameters, moments and slow
 * weights), and where two such readings first differ, bit for bit: for the tests of a state
 * made from another (`init(params, { from })`) on the CPU and on WebGPU.
 */
import { type OptimizerState, readMoments, readParams, readSlowWeights } from "../mod.ts";
import { bits, hasSlowWeights } from "./util.ts";

/** What a state holds, by `kind.tensor` (`params.w`, `m.w`, `slow.w`), and its counts. */
export type Contents = Map<string, number | Float32Array>;

/** Everything `state` holds: its step counts and its tensors by kind. */
export async function contents(state: OptimizerState<unknown>): Promise<Contents> {
  const slow = hasSlowWeights(state) ? await readSlowWeights(state) : {};
  const parts = { params: await readParams(state), ...await readMoments(state), slow };
  const out: Contents = new Map([["step", state.step], ["skipped", state.skippedSteps]]);
  for (const [kind, tensors] of Object.entries(parts)) {
    for (const [name, values] of Object.entries(tensors as Record<string, Float32Array>)) {
      out.set(`${kind}.${name}`, values);
    }
  }
  return out;
}

/**
 * Where `a` and `b` first differ, bit for bit, in words (`params.w[3]: 1 vs 2`); undefined where
 * they do not. A short message: a failure costs no diff of large arrays.
 */
export function difference(a: Contents, b: Contents): string | undefined {
  const keys = [...a.keys()].sort(), others = [...b.keys()].sort();
  if (keys.join() !== others.join()) return `keys ${keys} vs ${others}`;
  for (const k of keys) {
    const x = a.get(k)!, y = b.get(k)!;
    if (typeof x === "number" || typeof y === "number") {
      if (!Object.is(x, y)) return `${k}: ${x} vs ${y}`;
      continue;
    }
    if (x.length !== y.length) return `${k}: length ${x.length} vs ${y.length}`;
    const p = bits(x), q = bits(y);
    const i = p.findIndex((v, j) => v !== q[j]);
    if (i >= 0) return `${k}[${i}]: ${x[i]} vs ${y[i]}`;
  }
  return undefined;
}
