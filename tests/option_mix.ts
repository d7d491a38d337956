/**
 * The pieces that tests drawing random mixes of options share (tests/combinations_test.ts,
 * tests/resume_chain.ts): the parameter groups and schedules drawn, the learning rate and groups
 * they make, the initial params, and a state as bits.
 */
import fc from "fast-check";
import {
  chain,
  cosineDecay,
  linearWarmup,
  oneCycle,
  type OptimizerState,
  type ShapedTensor,
} from "../mod.ts";
import { holdsCodes } from "../base/backend.ts";
import { stateInternals } from "../core/state.ts";
import { readAll, tensorNames } from "./cases.ts";
import { real, type RuleCase } from "./rule_table.ts";
import { bits, randomTensor } from "./util.ts";

/** Groups matching tensor indices by residue: `index % modulus === residue`. */
export interface GroupCase {
  modulus: number;
  residue: number;
  lrScale: number;
  weightDecay: number;
}

/** The schedules drawn: a constant lr, or a schedule of it. */
export type ScheduleCase = "none" | "warmup" | "cosine" | "oneCycle" | "chain";

/** Up to two groups, each with its own lr scale and weight decay. */
export const groupsArb: fc.Arbitrary<GroupCase[]> = fc.array(
  fc.record({
    modulus: fc.integer({ min: 1, max: 3 }),
    residue: fc.integer({ min: 0, max: 2 }),
    lrScale: fc.oneof(fc.constantFrom(0, 1), real(0, 10)),
    weightDecay: fc.oneof(fc.constant(0), real(0, 0.1)),
  }),
  { maxLength: 2 },
);

export const scheduleArb: fc.Arbitrary<ScheduleCase> = fc.constantFrom<ScheduleCase>(
  "none",
  "warmup",
  "cosine",
  "oneCycle",
  "chain",
);

/** LookAhead's `k` up to `maxK`, `alpha` one of `alphas` or any in [0, 1]; or none. */
export const lookaheadArb = (maxK: number, alphas: number[]) =>
  fc.option(
    fc.record({
      k: fc.integer({ min: 1, max: maxK }),
      alpha: fc.oneof(fc.constantFrom(...alphas), real(0, 1)),
    }),
    { nil: undefined },
  );

/** The learning rate of a case: its rule's constant, or a schedule of it. */
export function lrOf(
  c: { rule: RuleCase; schedule: ScheduleCase },
): number | ((t: number) => number) {
  const lr = c.rule.options.lr as number;
  switch (c.schedule) {
    case "none":
      return lr;
    case "warmup":
      return linearWarmup(lr, { warmupSteps: 3 });
    case "cosine":
      return cosineDecay(lr, { decaySteps: 7, finalLr: lr / 10 });
    case "oneCycle":
      return oneCycle(lr, { totalSteps: 9 });
    case "chain":
      return chain([linearWarmup(lr, { warmupSteps: 2 }), 2], [
        cosineDecay(lr, { decaySteps: 5 }),
        5,
      ]);
  }
}

/**
 * The `groups` option of a case's groups over its `count` tensors (named `<prefix>.<index>…`):
 * those that take a tensor (the first group matching it), as `init` refuses a group taking none.
 */
export function groupsOf(groups: readonly GroupCase[], count: number) {
  const all = groups.map((g) => ({
    match: (name: string) => Number(name.split(".")[1]) % g.modulus === g.residue,
    lrScale: g.lrScale,
    weightDecay: g.weightDecay,
  }));
  const names = Array.from({ length: count }, (_, i) => `t.${i}`);
  const taken = new Set(names.map((name) => all.findIndex((g) => g.match(name))));
  return all.filter((_, k) => taken.has(k));
}

/** Initial params of random values, rank 2 where `shaped` and the length factors. */
export function paramsOf(
  c: { lengths: number[]; shaped: boolean[] },
  rand: () => number,
): Record<string, Float32Array | ShapedTensor> {
  const params: Record<string, Float32Array | ShapedTensor> = {};
  tensorNames(c).forEach((name, i) => {
    const n = c.lengths[i];
    const data = randomTensor(rand, n);
    let rows = 1;
    for (let d = 2; d * d <= n; d++) if (n % d === 0) rows = d;
    params[name] = c.shaped[i] && n > 1 ? { data, shape: [rows, n / rows] } : data;
  });
  return params;
}

/**
 * Everything a state holds, as bits: counts, params, moments, slow weights, and (unless
 * `codes` is false) the 8-bit codes and scales; with `norm`, the last gradient norm.
 */
export async function snapshot(
  state: OptimizerState,
  { codes = true, norm = false } = {},
): Promise<Record<string, unknown>> {
  const tensors: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(await readAll(state))) {
    tensors[name] = { p: bits(s.p), m: bits(s.m), v: bits(s.v), s: s.s && bits(s.s) };
  }
  const backend = stateInternals(state).backend;
  const held: unknown[] = [];
  if (codes && holdsCodes(backend)) {
    for (let k = 0; k < backend.layout.unsignedCodes.length; k++) {
      const view = backend.viewCompact(k);
      for (const name of Object.keys(view).sort()) {
        held.push([k, name, Array.from(view[name].codes), bits(view[name].scales)]);
      }
    }
  }
  return {
    step: state.step,
    skipped: state.skippedSteps,
    ...(norm ? { norm: bits([state.lastGradNorm])[0] } : {}),
    names: state.names,
    tensors,
    codes: held,
  };
}
