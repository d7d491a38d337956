/**
 * Random optimizer cases shared by every backend's tests: a fast-check arbitrary of
 * hyperparameters and tensor sizes, seeded data, and a check that runs a case on one backend
 * step by step against the float64 reference (tests/reference.ts).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adam,
  adamw,
  lion,
  lookahead,
  type OptimizerState,
  type Params,
  radam,
  type RAdamOptions,
  readMoments,
  readParams,
  readSlowWeights,
  type ShapedTensor,
  step,
} from "../mod.ts";
import {
  firstMismatch,
  type RefConfig,
  refEffectiveGrads,
  type RefState,
  refStep,
  refSync,
  toF64,
} from "./reference.ts";
import { hasSlowWeights } from "./util.ts";

/** A random case: which optimizer, its options, the tensor sizes, steps and a data seed. */
export interface Case {
  kind: "radam" | "adam" | "adamw" | "lion";
  options: RAdamOptions;
  /** A learning-rate schedule instead of a constant (the constant scales it). */
  schedule: boolean;
  lengths: number[];
  steps: number;
  seed: number;
  /** The training-loop features (issue 4). */
  extras: Extras;
}

/** LookAhead, clipping, centralization, and steps whose gradient holds a NaN (skipped). */
export interface Extras {
  lookahead?: { k: number; alpha: number };
  clipGradNorm?: number;
  gc: boolean;
  /** One parameter group holding the odd-numbered tensors. */
  group?: { lrScale: number; weightDecay: number };
  /** Calls of `step` (1-based) whose gradient gets a NaN or ±Infinity; they are skipped. */
  badCalls: number[];
}

const extrasArb: fc.Arbitrary<Extras> = fc.record({
  lookahead: fc.option(
    fc.record({
      k: fc.integer({ min: 1, max: 7 }),
      alpha: fc.oneof(fc.constantFrom(0, 1), real(0, 1)),
    }),
    { nil: undefined },
  ),
  clipGradNorm: fc.option(fc.oneof(fc.constant(0), real(1e-7, 100)), { nil: undefined }),
  gc: fc.boolean(),
  group: fc.option(
    fc.record({
      lrScale: fc.oneof(fc.constantFrom(0, 1), real(0, 10)),
      weightDecay: fc.oneof(fc.constant(0), real(0, 0.1)),
    }),
    { nil: undefined },
  ),
  badCalls: fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 3 }),
});

/** Sizes that exercise the SIMD main loop and its scalar tail. */
const SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 33, 64, 257, 4097];

/**
 * A double in [min, max], where values below 1e-30 become exactly 0: hyperparameters that
 * would round to a subnormal or zero f32 are a representation corner, not a kernel property.
 */
function real(min: number, max: number): fc.Arbitrary<number> {
  return fc.double({ min, max, noNaN: true }).map((x) => (x < 1e-30 ? 0 : x));
}

const beta2Arb = fc.oneof(
  real(0, 0.6), // ρ∞ ≤ 4: never rectified
  real(0.6, 0.99),
  fc.constantFrom(0.999, 0.9999, 1 - 1e-6), // near 1
);

/**
 * The arbitrary of cases; `steps` at least `minSteps`. With `features: false`, plain cases:
 * no LookAhead, clipping, centralization, groups, Nesterov or non-finite gradients (for
 * backends that lack those features).
 */
export function caseArb(minSteps = 50, features = true): fc.Arbitrary<Case> {
  return fc.record({
    kind: fc.constantFrom("radam" as const, "adam" as const, "adamw" as const),
    options: fc.record({
      lr: fc.oneof(fc.constant(0), real(1e-5, 0.1)),
      betas: fc.tuple(
        fc.oneof(fc.constant(0), real(0, 0.99)),
        beta2Arb,
      ),
      eps: fc.constantFrom(0, 1e-12, 1e-8, 1e-5, 1e-3),
      weightDecay: fc.oneof(fc.constant(0), real(0, 0.1)),
      decoupledWeightDecay: fc.boolean(),
      maximize: fc.boolean(),
      threshold: fc.constantFrom(4, 5, 6, 8, 20),
      degenerateToSgd: fc.boolean(),
      nesterov: features ? fc.boolean() : fc.constant(false),
    }),
    schedule: fc.boolean(),
    lengths: fc.array(fc.constantFrom(...SIZES), { minLength: 1, maxLength: 6 }),
    steps: fc.integer({ min: minSteps, max: minSteps + 10 }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    extras: features ? extrasArb : fc.constant({ gc: false, badCalls: [] }),
  });
}

/**
 * The arbitrary of Lion cases (options lr, betas, weightDecay, maximize; every training-loop
 * feature unless `features` is false), `steps` at least `minSteps`.
 */
export function lionCaseArb(minSteps = 50, features = true): fc.Arbitrary<Case> {
  return fc.record({
    kind: fc.constant("lion" as const),
    options: fc.record({
      lr: fc.oneof(fc.constant(0), real(1e-6, 0.01)),
      betas: fc.tuple(fc.oneof(fc.constant(0), real(0, 0.99)), beta2Arb),
      weightDecay: fc.oneof(fc.constant(0), real(0, 1)),
      maximize: fc.boolean(),
    }),
    schedule: fc.boolean(),
    lengths: fc.array(fc.constantFrom(...SIZES), { minLength: 1, maxLength: 6 }),
    steps: fc.integer({ min: minSteps, max: minSteps + 10 }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    extras: features ? extrasArb : fc.constant({ gc: false, badCalls: [] }),
  });
}

/** Rows of a tensor centralized by a case (rank 2 `[rows, length / rows]`), or undefined. */
export function rowsOf(c: Case, length: number): number | undefined {
  if (!c.extras.gc || length <= 1) return undefined;
  let rows = 1;
  for (let d = 2; d * d <= length; d++) if (length % d === 0) rows = d;
  return rows;
}

/** A small deterministic PRNG (mulberry32), so a case's data follows from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), a | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

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

/** Names of a case's tensors: a transformer-like state dict. */
export function tensorNames(c: Case): string[] {
  return c.lengths.map((_, i) => `layers.${i}.weight`);
}

/** The case's learning rate at step t (a warmup-cosine shape when scheduled). */
export function lrAt(c: Case, t: number): number {
  const base = c.options.lr as number;
  if (!c.schedule) return base;
  return base * Math.min(1, t / 4) * (0.5 + 0.5 * Math.cos(t / 10));
}

/** The optimizer a case describes, on `backend`; `more` adds options (e.g. `threads`). */
export function optimizerFor(
  c: Case,
  backend: RAdamOptions["backend"],
  more: Pick<RAdamOptions, "threads" | "threadThreshold" | "nonFinite"> = {},
) {
  const lr = c.schedule ? (t: number) => lrAt(c, t) : c.options.lr;
  const { clipGradNorm, gc } = c.extras;
  const group = c.extras.group;
  const groups = group
    ? [{ match: (name: string) => Number(name.split(".")[1]) % 2 === 1, ...group }]
    : undefined;
  const common = { lr, backend, clipGradNorm, gc, groups, ...more };
  let opt;
  if (c.kind === "radam") opt = radam({ ...c.options, ...common });
  else if (c.kind === "lion") {
    const { lr: _lr, betas, weightDecay, maximize } = c.options;
    opt = lion({ betas, weightDecay, maximize, ...common });
  } else {
    const { threshold: _t, degenerateToSgd: _d, nesterov: _n, ...rest } = c.options;
    opt = c.kind === "adam" ? adam({ ...rest, ...common }) : adamw({ ...rest, ...common });
  }
  return c.extras.lookahead ? lookahead(opt, c.extras.lookahead) : opt;
}

/** The reference configuration of a case. */
export function refConfig(c: Case): RefConfig {
  const o = c.options;
  const adamLike = c.kind !== "radam";
  return {
    kind: c.kind === "lion" ? "lion" : adamLike ? "adam" : "radam",
    beta1: o.betas![0],
    beta2: o.betas![1],
    eps: o.eps ?? 0,
    weightDecay: o.weightDecay!,
    decoupled: c.kind === "adamw" ? (o.decoupledWeightDecay ?? true) : !!o.decoupledWeightDecay,
    maximize: !!o.maximize,
    threshold: o.threshold ?? 5,
    degenerateToSgd: o.degenerateToSgd ?? true,
    nesterov: !!o.nesterov,
  };
}

/** Initial params and the gradient of each step, from the case's seed. */
export function caseData(c: Case): {
  params: Record<string, Float32Array | ShapedTensor>;
  grads: (call: number) => Record<string, Float32Array>;
} {
  const names = tensorNames(c);
  const rand = prng(c.seed);
  const params: Record<string, Float32Array | ShapedTensor> = {};
  names.forEach((n, i) => {
    const data = randomTensor(rand, c.lengths[i]);
    const rows = rowsOf(c, c.lengths[i]);
    params[n] = rows === undefined ? data : { data, shape: [rows, c.lengths[i] / rows] };
  });
  const all: Record<string, Float32Array>[] = [];
  for (let t = 1; t <= c.steps; t++) {
    const g: Record<string, Float32Array> = {};
    names.forEach((n, i) => g[n] = randomTensor(rand, c.lengths[i]));
    if (c.extras.badCalls.includes(t)) {
      const k = Math.floor(rand() * names.length);
      const x = g[names[k]];
      if (x.length > 0) x[Math.floor(rand() * x.length)] = [NaN, Infinity, -Infinity][t % 3];
    }
    all.push(g);
  }
  return { params, grads: (t) => all[t - 1] };
}

/** Whether a gradient record holds a NaN or ±Infinity. */
export function hasNonFinite(g: Record<string, Float32Array>): boolean {
  return Object.values(g).some((x) => x.some((v) => !Number.isFinite(v)));
}

/** Reads a state's params and moments as float64 reference state, per tensor. */
export async function readAll(state: OptimizerState<unknown>): Promise<Record<string, RefState>> {
  const params = await readParams(state);
  const { exp_avg, exp_avg_sq = {} } = await readMoments(state);
  const slow = hasSlowWeights(state) ? await readSlowWeights(state) : {};
  const out: Record<string, RefState> = {};
  for (const name of Object.keys(params)) {
    const v = exp_avg_sq[name] ?? new Float32Array(params[name].length);
    out[name] = { p: toF64(params[name]), m: toF64(exp_avg[name]), v: toF64(v) };
    if (slow[name]) out[name].s = toF64(slow[name]);
  }
  return out;
}

/**
 * Runs case `c` on a state from `init`, and after every step compares params, exp_avg and
 * exp_avg_sq with one float64 reference step taken from the state before it, within the
 * reference's error bound. Throws an Error describing the first disagreement.
 */
export async function checkAgainstReference(
  c: Case,
  init: (params: Params) => Promise<OptimizerState<unknown>>,
  kTol?: number,
): Promise<void> {
  const cfg = refConfig(c);
  const { params, grads } = caseData(c);
  const names = tensorNames(c);
  const rows = c.lengths.map((n) => rowsOf(c, n));
  let state = await init(params);
  let before = await readAll(state);
  let t = 0;
  let skipped = 0;
  for (let call = 1; call <= c.steps; call++) {
    state = step(state, grads(call));
    const after = await readAll(state);
    if (hasNonFinite(grads(call))) {
      // Skipped: nothing may change, bit for bit.
      skipped++;
      if (state.step !== t || state.skippedSteps !== skipped) {
        throw new Error(`call ${call}: a non-finite gradient was not skipped`);
      }
      for (const name of names) {
        for (const field of ["p", "m", "v", "s"] as const) {
          const a = after[name][field], b = before[name][field];
          if (a && b && a.some((x, i) => !Object.is(x, b[i]))) {
            throw new Error(`call ${call}: skipped step changed ${field} of ${name}`);
          }
        }
      }
      continue;
    }
    t++;
    const eff = refEffectiveGrads(names.map((n) => grads(call)[n]), rows, c.extras.clipGradNorm);
    const la = c.extras.lookahead;
    for (let k = 0; k < names.length; k++) {
      const name = names[k];
      const grouped = c.extras.group && k % 2 === 1 ? c.extras.group : undefined;
      const tensorCfg = grouped ? { ...cfg, weightDecay: grouped.weightDecay } : cfg;
      const lr = lrAt(c, t) * (grouped ? grouped.lrScale : 1);
      const ref = refStep(tensorCfg, before[name], eff.grads[k], t, lr, eff.err[k], kTol);
      const checks: [string, Float64Array, Float64Array][] = [
        ["m", ref.m, ref.tolM],
        ["v", ref.v, ref.tolV],
      ];
      if (la && t % la.k === 0) {
        const sync = refSync(before[name].s!, ref.p, ref.tolP, la.alpha);
        checks.push(["p", sync.slow, sync.tol], ["s", sync.slow, sync.tol]);
      } else {
        checks.push(["p", ref.p, ref.tolP]);
        if (la) checks.push(["s", before[name].s!, new Float64Array(ref.p.length)]);
      }
      for (const [field, expected, tol] of checks) {
        const actual = after[name][field as "p" | "m" | "v" | "s"]!;
        const i = firstMismatch(actual, expected, tol);
        if (i >= 0) {
          throw new Error(
            `${state.backend}: ${field} of ${name}[${i}] at step ${t}: got ${
              actual[i]
            }, reference ${expected[i]} ± ${tol[i]} (case ${JSON.stringify(c)})`,
          );
        }
      }
    }
    before = after;
  }
}

/** The f32 bit patterns of `a` (NaNs of any payload map to one pattern). */
export function bits(a: ArrayLike<number>): Uint32Array {
  const f = Float32Array.from(a, (x) => (Number.isNaN(x) ? NaN : x));
  return new Uint32Array(f.buffer);
}

/** Asserts that two states hold the same bits everywhere (params, moments, slow weights). */
export async function assertSameBits(
  a: OptimizerState<unknown>,
  b: OptimizerState<unknown>,
  what: string,
): Promise<void> {
  assert.ok(Object.is(a.lastGradNorm, b.lastGradNorm), `${what}: norm`);
  assert.equal(a.skippedSteps, b.skippedSteps, `${what}: skipped steps`);
  assert.equal(a.step, b.step, `${what}: step`);
  const [x, y] = [await readAll(a), await readAll(b)];
  for (const name of Object.keys(x)) {
    for (const field of ["p", "m", "v", "s"] as const) {
      if (!x[name][field]) continue;
      assert.deepEqual(
        bits(x[name][field]!),
        bits(y[name][field]!),
        `${what}: ${field} of ${name}`,
      );
    }
  }
}
