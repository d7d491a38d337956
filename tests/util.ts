/**
 * What the tests share: one seeded PRNG and the random tensors made with it, the f32 bit
 * patterns of arrays (one NaN handling), and the per-step scalars of a state computed through
 * its rule's module (what its kernels are given), without a test hook in the library; and the
 * check of an error's kind and words.
 */
import assert from "node:assert/strict";
import { LR_WORD, zeroScalars } from "../base/scalars.ts";
import type { OptimizerState } from "../mod.ts";
import { ruleOf } from "../core/origins.ts";
import { stateInternals } from "../core/state.ts";
import { seededRandom } from "../examples/demo/random.ts";

/**
 * A small deterministic PRNG (mulberry32) of numbers in [0, 1), so data follows from a seed:
 * the demo's generator, the one TypeScript copy (tests/node/shared_case.mjs, plain JavaScript
 * for Node, has its own, checked against this one by tests/prng_test.ts).
 */
export const prng: (seed: number) => () => number = seededRandom;

/** Random f32 data: magnitudes spread over 10⁻⁶ … 10², some exact zeros. */
export function randomTensor(rand: () => number, length: number): Float32Array {
  const out = new Float32Array(length);
  const scale = 10 ** (rand() * 8 - 6);
  for (let i = 0; i < length; i++) {
    const u = rand();
    out[i] = u < 0.03 ? 0 : (rand() * 2 - 1) * scale * 10 ** (rand() * 2 - 1);
  }
  return out;
}

/** `n` f32 numbers uniform in [-1, 1) from `seed`. */
export function randoms(n: number, seed: number): Float32Array {
  const rand = prng(seed);
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
}

/** The f32 bit patterns of `a`, every NaN (of any payload) as the one quiet NaN 0x7fc00000. */
export function bits(a: ArrayLike<number>): Uint32Array {
  const out = new Uint32Array(Float32Array.from(a).buffer);
  for (let i = 0; i < a.length; i++) if (Number.isNaN(a[i])) out[i] = 0x7fc00000;
  return out;
}

/**
 * The scalars of block 0 (the optimizer's own settings) of step `t` of a state, by name: its
 * rule's `computeScalars` with the state's hyperparameters and learning rate.
 */
export function scalarsAt(state: OptimizerState<unknown>, t: number): Record<string, number> {
  const { config } = stateInternals(state);
  const rule = ruleOf(config);
  const given = config.hyperparameters.lr;
  const out = zeroScalars();
  out[LR_WORD] = typeof given === "function" ? given(t) : given;
  rule.computeScalars(config.hyperparameters, t, out);
  return Object.fromEntries(rule.scalars.fields.map(([name], k) => [name, out[k]]));
}

/** Whether a state keeps LookAhead's slow weights (`lookahead(…)`, `ranger`). */
export function hasSlowWeights(state: OptimizerState<unknown>): boolean {
  return stateInternals(state).config.lookahead !== undefined;
}

/** `record` behind a Proxy that counts the reads of each of its string keys, and the counts. */
export function countingReads<T extends object>(record: T): [T, Record<string, number>] {
  const reads: Record<string, number> = {};
  const proxy = new Proxy(record, {
    get(target, key, receiver) {
      if (typeof key === "string") reads[key] = (reads[key] ?? 0) + 1;
      return Reflect.get(target, key, receiver);
    },
  });
  return [proxy, reads];
}

/**
 * An error of `kind` whose message holds `text`, for `assert.throws`/`assert.rejects` (a string
 * third argument of those would be the assertion's own message, not a check).
 */
export function saying(kind: ErrorConstructor, text: string): (e: Error) => true {
  return (e: Error) => {
    assert.ok(e instanceof kind, `${e.constructor.name}: ${e.message}`);
    assert.ok(e.message.includes(text), `"${e.message}" does not say "${text}"`);
    return true;
  };
}

/**
 * A number from the environment variable `name`, where the test may read it (`deno task
 * test:core` grants no env): undefined where it is not set or not readable.
 */
export function setting(name: string): number | undefined {
  const granted = Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
  const text = granted ? Deno.env.get(name) : undefined;
  return text === undefined ? undefined : Number(text);
}
