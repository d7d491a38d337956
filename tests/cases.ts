/**
 * Random optimizer cases shared by every backend's tests, for any rule of the table
 * (tests/rule_table.ts): a fast-check arbitrary of a rule's options, the training-loop features and
 * tensor sizes, seeded data, and a check that runs a case on one backend step by step against the
 * rule's float64 reference.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type BackendChoice,
  dispose,
  lookahead,
  type OptimizerState,
  type Params,
  readMoments,
  readParams,
  readSlowWeights,
  type ShapedTensor,
  type StatesFormat,
  step,
} from "../mod.ts";
import type { CompactMoment } from "../base/arena.ts";
import { holdsCodes } from "../base/backend.ts";
import { Q8_MIN_ELEMENTS } from "../base/q8.ts";
import { stateInternals } from "../core/state.ts";
import { codeTolerance } from "./q8_reference.ts";
import { firstMismatch, refEffectiveGrads, type RefState, refSync, toF64 } from "./reference.ts";
import {
  optimizerOf,
  real,
  RULE_TABLE,
  type RuleCase,
  type RuleRow,
  type Vector,
} from "./rule_table.ts";
import { bits, hasSlowWeights, prng, randomTensor } from "./util.ts";

/**
 * Tensor lengths that exercise 8-bit states: empty, one element, f32 moments below the threshold,
 * and codes of whole and partial blocks.
 */
export const COMPACT_LENGTHS = [0, 1, 255, 4095, 4096, 4097, 4351, 5000] as const;

/** The CPU backends, which agree bit for bit: wasm, js, and wasm on two threads. */
export const CPU_BACKENDS = [
  { backend: "wasm", threads: 1 },
  { backend: "js", threads: 1 },
  { backend: "wasm", threads: 2 },
] as const;

/**
 * A random case: the rule (its row of the table), which optimizer and its options, the
 * training-loop features, the tensor sizes, steps and a data seed.
 */
export interface Case extends RuleCase {
  readonly rule: string;
  /** The format of the moments (`states`). */
  readonly states: StatesFormat;
  /** A learning-rate schedule instead of a constant (the constant scales it). */
  readonly schedule: boolean;
  readonly lengths: number[];
  readonly steps: number;
  readonly seed: number;
  /** The training-loop features. */
  readonly extras: Extras;
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
 * Sizes of 8-bit states' cases: those above, and tensors whose moments are codes (4096
 * elements or more), of whole blocks and not.
 */
const COMPACT_SIZES = [...SIZES, 4096, 4097, 4351, 4608, 5000, 6143];

/**
 * The arbitrary of `row`'s cases; `steps` at least `minSteps`. With `features: false`, plain
 * cases: no LookAhead, clipping, centralization, groups, non-finite gradients, nor the rule's
 * own features (for backends' suites that leave those out). `states`: the format of the
 * moments.
 */
export function caseArb(
  row: RuleRow,
  minSteps = 50,
  features = true,
  states: StatesFormat = "32bit",
): fc.Arbitrary<Case> {
  const sizes = states === "8bit" ? COMPACT_SIZES : SIZES;
  return fc.record({
    rule: row.cases(features),
    schedule: fc.boolean(),
    lengths: fc.array(fc.constantFrom(...sizes), { minLength: 1, maxLength: 6 }),
    steps: fc.integer({ min: minSteps, max: minSteps + 10 }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    extras: features ? extrasArb : fc.constant<Extras>({ gc: false, badCalls: [] }),
  }).map(({ rule, ...rest }): Case => ({ rule: row.rule, states, ...rule, ...rest }));
}

/** The row of the table a case belongs to. */
export function rowOf(c: Case): RuleRow {
  const row = RULE_TABLE.find((r) => r.rule === c.rule);
  if (!row) throw new Error(`No row of the rule table is ${JSON.stringify(c.rule)}`);
  return row;
}

/** Rows of a tensor centralized by a case (rank 2 `[rows, length / rows]`), or undefined. */
export function rowsOf(c: Case, length: number): number | undefined {
  if (!c.extras.gc || length <= 1) return undefined;
  let rows = 1;
  for (let d = 2; d * d <= length; d++) if (length % d === 0) rows = d;
  return rows;
}

/**
 * Names of a case's tensors (of anything with tensor lengths): a transformer-like state dict; the
 * index in a name is what a case's groups match on.
 */
export function tensorNames(c: { readonly lengths: readonly number[] }): string[] {
  return c.lengths.map((_, i) => `layers.${i}.weight`);
}

/** The case's learning rate at step t (a warmup-cosine shape when scheduled). */
export function lrAt(c: Case, t: number): number {
  const base = c.options.lr as number;
  if (!c.schedule) return base;
  return base * Math.min(1, t / 4) * (0.5 + 0.5 * Math.cos(t / 10));
}

/** The learning rate a case's optimizer is given: its constant, or its schedule. */
export function lrOf(c: Case): number | ((t: number) => number) {
  return c.schedule ? (t: number) => lrAt(c, t) : c.options.lr as number;
}

/** The optimizer a case describes, on `backend`; `more` adds options (e.g. `threads`). */
export function optimizerFor(
  c: Case,
  backend: BackendChoice,
  more: { threads?: number; threadThreshold?: number; nonFinite?: "skip" | "throw" } = {},
) {
  const { clipGradNorm, gc } = c.extras;
  const group = c.extras.group;
  // (With one tensor the group takes none, which init refuses: the case then has none.)
  const groups = group && c.lengths.length > 1
    ? [{ match: (name: string) => Number(name.split(".")[1]) % 2 === 1, ...group }]
    : undefined;
  const common = { lr: lrOf(c), clipGradNorm, gc, groups, states: c.states, ...more };
  const opt = optimizerOf(rowOf(c), c, backend, common);
  return c.extras.lookahead ? lookahead(opt, c.extras.lookahead) : opt;
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

/**
 * Reads a state's params, moments (`m` the rule's first, `v` its second; zeros where it keeps
 * fewer) and slow weights as float64 reference state, per tensor.
 */
export async function readAll(state: OptimizerState<unknown>): Promise<Record<string, RefState>> {
  const params = await readParams(state);
  const [m = {}, v = {}] = Object.values(await readMoments(state));
  const slow = hasSlowWeights(state) ? await readSlowWeights(state) : {};
  const out: Record<string, RefState> = {};
  for (const name of Object.keys(params)) {
    const zeros = new Float32Array(params[name].length);
    out[name] = { p: toF64(params[name]), m: toF64(m[name] ?? zeros), v: toF64(v[name] ?? zeros) };
    if (slow[name]) out[name].s = toF64(slow[name]);
  }
  return out;
}

/**
 * Runs case `c` on a state from `init`, and after every step compares params, moments and slow
 * weights with one float64 reference step taken from the state before it, within the
 * reference's error bound. Throws an Error describing the first disagreement.
 */
export async function checkAgainstReference(
  c: Case,
  init: (params: Params) => Promise<OptimizerState<unknown>>,
  kTol?: number,
): Promise<void> {
  const row = rowOf(c);
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
      const lr = lrAt(c, t) * (grouped ? grouped.lrScale : 1);
      const ref = row.reference(c, grouped?.weightDecay)(
        before[name],
        eff.grads[k],
        t,
        lr,
        eff.err[k],
        kTol,
      );
      // 8-bit moments: within one code step of the reference (each step starts from the state's
      // decoded moments, so the error does not accumulate).
      const compact = c.states === "8bit" && c.lengths[k] >= Q8_MIN_ELEMENTS;
      const checks: [string, Float64Array, Float64Array][] = [
        ["m", ref.m, compact ? codeTolerance(ref.m, ref.tolM, true) : ref.tolM],
        ["v", ref.v, compact ? codeTolerance(ref.v, ref.tolV, false) : ref.tolV],
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

/**
 * Asserts that two states hold the same bits everywhere (params, moments, slow weights; 8-bit
 * moments' codes and scales as they are), and the same counts and (with `norm`) the same norm
 * of their last step.
 */
export async function assertSameBits(
  a: OptimizerState<unknown>,
  b: OptimizerState<unknown>,
  what: string,
  norm = true,
): Promise<void> {
  if (norm) assert.ok(Object.is(a.lastGradNorm, b.lastGradNorm), `${what}: norm`);
  assert.equal(a.skippedSteps, b.skippedSteps, `${what}: skipped steps`);
  assert.equal(a.step, b.step, `${what}: step`);
  const [x, y] = [await readAll(a), await readAll(b)];
  const ba = stateInternals(a).backend, bb = stateInternals(b).backend;
  if (holdsCodes(ba) && holdsCodes(bb)) {
    for (let k = 0; k < ba.layout.unsignedCodes.length; k++) {
      const ca: Readonly<Record<string, CompactMoment>> = ba.viewCompact(k);
      const cb: Readonly<Record<string, CompactMoment>> = bb.viewCompact(k);
      assert.deepEqual(Object.keys(ca).sort(), Object.keys(cb).sort(), `${what}: compact tensors`);
      for (const name of Object.keys(ca)) {
        assert.deepEqual(ca[name].codes, cb[name].codes, `${what}: codes ${k} of ${name}`);
        assert.deepEqual(bits(ca[name].scales), bits(cb[name].scales), `${what}: scales ${k}`);
      }
    }
  }
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

/** Asserts `actual` is `expected` within 1e-6 relative (or exactly, bit for bit). */
function close(
  actual: ArrayLike<number>,
  expected: readonly number[],
  exact: boolean,
  what: string,
) {
  if (exact) {
    assert.deepEqual(Array.from(actual), expected, what);
    return;
  }
  expected.forEach((x, i) =>
    assert.ok(
      Math.abs(actual[i] - x) <= 1e-6 * Math.abs(x) + 1e-12,
      `${what}[${i}]: ${actual[i]} ≠ ${x}`,
    )
  );
}

/** A vector's steps on `backend` give its hand-computed values. */
export async function checkVector(
  row: RuleRow,
  vector: Vector,
  backend: "wasm" | "js" | "webgpu",
  device?: GPUDevice,
  states: StatesFormat = "32bit",
): Promise<void> {
  let optimizer = optimizerOf(row, vector.case, backend, { states });
  if (vector.lookahead) optimizer = lookahead(optimizer, vector.lookahead);
  const params = { w: Float32Array.from(vector.params) };
  let state: OptimizerState<unknown> = device
    ? await optimizer.init(params, { device })
    : await optimizer.init(params);
  for (const g of vector.grads) state = step(state, { w: Float32Array.from(g) });
  const exact = backend !== "webgpu" && !!vector.exact;
  close((await readParams(state)).w, vector.expected.params, exact, `${backend} params`);
  const moments = await readMoments(state);
  for (const [name, values] of Object.entries(vector.expected.moments ?? {})) {
    close(moments[name].w, values, exact, `${backend} ${name}`);
  }
  dispose(state);
}

/** The row's float64 reference gives a vector's hand-computed values, within its bound. */
export function checkReferenceVector(row: RuleRow, vector: Vector): void {
  const n = vector.params.length;
  let s: RefState = { p: toF64(vector.params), m: new Float64Array(n), v: new Float64Array(n) };
  let slow = toF64(vector.params);
  const lr = vector.case.options.lr as number;
  vector.grads.forEach((g, i) => {
    const t = i + 1;
    const next = row.reference(vector.case)(s, g, t, lr);
    let p = next.p, tol = next.tolP;
    if (vector.lookahead && t % vector.lookahead.k === 0) {
      ({ slow, tol } = refSync(slow, next.p, next.tolP, vector.lookahead.alpha));
      p = slow;
    }
    s = { ...next, p };
    if (t === vector.grads.length) {
      // Hand-computed values rounded to f32 are within the f32 bound of the float64 step.
      const expected = Float64Array.from(vector.expected.params);
      const slack = tol.map((x, j) => x + 2 ** -23 * Math.abs(expected[j]));
      assert.equal(firstMismatch(p, expected, slack), -1, `reference params ${p} ≠ ${expected}`);
      const [m0, m1] = Object.values(vector.expected.moments ?? {});
      if (m0) assert.equal(firstMismatch(next.m, m0, next.tolM.map((x) => x + 1e-12)), -1, "m");
      if (m1) assert.equal(firstMismatch(next.v, m1, next.tolV.map((x) => x + 1e-12)), -1, "v");
    }
  });
}
