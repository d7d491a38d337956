/**
 * The step of 8-bit moments against the float64 reference, code by code (docs/SPEC.md "Compact
 * states"), for every rule of the table on every CPU backend: teacher-forced, each step starts
 * the reference from the state's own codes and scales decoded by the reference's grids
 * (tests/q8_reference.ts), takes the rule's float64 step (its row of tests/rule_table.ts), and
 * encodes the new moments with the reference's scale (the block's largest magnitude) and nearest
 * rounding. The backend's scales must be the reference's to within the f32 step's error, its
 * codes the reference's or one away, its parameters within the 32-bit bound. And the non-finite
 * policies that refuse a step (`"skip"`, `"throw"`) leave every code and scale as it was.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { CompactMoment } from "../base/arena.ts";
import { type CompactHostBackend, holdsCodes } from "../base/backend.ts";
import { Q8_BLOCK } from "../base/q8.ts";
import {
  adam,
  adamw,
  dispose,
  lion,
  loadState,
  lookahead,
  type Optimizer,
  type OptimizerState,
  radam,
  ranger,
  readMoments,
  readParams,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { stateInternals } from "../core/state.ts";
import { assertSameBits } from "./cases.ts";
import { optimizerOf, RULE_TABLE, type RuleCase, type RuleRow } from "./rule_table.ts";
import {
  refDecodeSigned,
  refDecodeUnsigned,
  refEncodeSigned,
  refEncodeUnsigned,
  refScale,
} from "./q8_reference.ts";
import { firstMismatch, type RefState } from "./reference.ts";
import { bits, prng, randomTensor } from "./util.ts";

/** Sizes of tensors with 8-bit moments: whole blocks and a partial last one. */
const LENGTHS = [4096, 4097, 4351, 5000];

interface CompactCase {
  rule: RuleCase;
  length: number;
  steps: number;
  seed: number;
}

function caseArb(row: RuleRow): fc.Arbitrary<CompactCase> {
  return fc.record({
    rule: row.cases(true),
    length: fc.constantFrom(...LENGTHS),
    steps: fc.integer({ min: 3, max: 12 }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  });
}

/** The moments a backend holds as codes (tensor "w"), one per moment. */
function codesOf(backend: CompactHostBackend, moments: number): CompactMoment[] {
  return Array.from({ length: moments }, (_, k) => backend.viewCompact(k).w);
}

/** A moment's codes decoded by the reference's grids, in float64. */
function refDecoded(held: CompactMoment, signed: boolean): Float64Array {
  return Float64Array.from(
    held.codes,
    (c, i) =>
      signed ? refDecodeSigned(c, held.scales[i >> 8]) : refDecodeUnsigned(c, held.scales[i >> 8]),
  );
}

/**
 * Checks the backend's codes and scales of one moment against the reference's new values
 * `ref` (bound `tol`); returns a description of the first disagreement, or undefined.
 */
function compareCodes(
  held: CompactMoment,
  ref: Float64Array,
  tol: Float64Array,
  signed: boolean,
): string | undefined {
  for (let b = 0; b < held.scales.length; b++) {
    const lo = b * Q8_BLOCK, hi = Math.min(ref.length, lo + Q8_BLOCK);
    const block = ref.subarray(lo, hi);
    const s = refScale(block);
    const got = held.scales[b];
    if (Number.isNaN(s)) {
      if (!Number.isNaN(got)) return `block ${b}: scale ${got}, reference NaN`;
      continue;
    }
    let e = 0;
    for (let i = lo; i < hi; i++) e = Math.max(e, tol[i]);
    // (0 where the reference's largest is at most a subnormal, which the f32 step may round to 0)
    if (!(Math.abs(got - s) <= e || (got === 0 && s <= 2 ** -126 + e))) {
      return `block ${b}: scale ${got}, reference ${s} ± ${e}`;
    }
    if (got === 0) continue;
    for (let i = lo; i < hi; i++) {
      const expected = signed ? refEncodeSigned(ref[i], s) : refEncodeUnsigned(ref[i], s);
      if (Math.abs(held.codes[i] - expected) > 1) {
        return `[${i}]: code ${held.codes[i]}, reference ${expected} (value ${ref[i]}, scale ${s})`;
      }
    }
  }
  return undefined;
}

/** Runs a case on `backend` step by step against the reference; throws at a disagreement. */
async function checkCase(row: RuleRow, c: CompactCase, backend: "wasm" | "js"): Promise<void> {
  const rand = prng(c.seed);
  let state: OptimizerState = await optimizerOf(row, c.rule, backend, { states: "8bit" }).init({
    w: randomTensor(rand, c.length),
  });
  const held = stateInternals(state).backend;
  assert.ok(holdsCodes(held));
  const signs = row.moments(c.rule).map((_, k) => !held.layout.unsignedCodes[k]);
  const lr = c.rule.options.lr as number;
  for (let t = 1; t <= c.steps; t++) {
    const before: RefState = {
      p: Float64Array.from((await readParams(state)).w),
      m: new Float64Array(c.length),
      v: new Float64Array(c.length),
    };
    const codes = codesOf(held, signs.length);
    if (signs.length > 0) before.m = refDecoded(codes[0], signs[0]);
    if (signs.length > 1) before.v = refDecoded(codes[1], signs[1]);
    const grad = randomTensor(rand, c.length);
    const ref = row.reference(c.rule)(before, grad, t, lr);
    state = step(state, { w: grad });
    const what = `${backend} step ${t} (case ${JSON.stringify(c)})`;
    const p = (await readParams(state)).w;
    const i = firstMismatch(p, ref.p, ref.tolP);
    assert.equal(i, -1, `${what}: p[${i}] ${p[i]}, reference ${ref.p[i]} ± ${ref.tolP[i]}`);
    const moments = [[ref.m, ref.tolM], [ref.v, ref.tolV]] as const;
    signs.forEach((signed, k) => {
      const wrong = compareCodes(codes[k], moments[k][0], moments[k][1], signed);
      assert.equal(wrong, undefined, `${what}: moment ${k} ${wrong}`);
    });
  }
}

for (const row of RULE_TABLE) {
  for (const backend of ["wasm", "js"] as const) {
    Deno.test(`${row.rule} (8bit), ${backend}: each step's codes are the float64 reference's, or one away`, async () => {
      await fc.assert(
        fc.asyncProperty(caseArb(row), (c) => checkCase(row, c, backend)),
        { numRuns: 40 },
      );
    });
  }
}

Deno.test('a step refused for a non-finite gradient ("skip", "throw") leaves every code and scale', async () => {
  for (const row of RULE_TABLE) {
    const c = row.example;
    for (const nonFinite of ["skip", "throw"] as const) {
      for (const backend of ["wasm", "js"] as const) {
        for (const threads of backend === "wasm" ? [1, 2] : [1]) {
          let state = await optimizerOf(row, c, backend, {
            states: "8bit",
            nonFinite,
            threads,
            threadThreshold: 0,
            clipGradNorm: nonFinite === "throw" ? 1 : undefined,
          }).init({ w: randomTensor(prng(1), 5000) });
          try {
            for (let t = 1; t <= 3; t++) state = step(state, { w: randomTensor(prng(t), 5000) });
            const backendOf = stateInternals(state).backend;
            assert.ok(holdsCodes(backendOf));
            const moments = row.moments(c).length;
            const before = codesOf(backendOf, moments).map((h) => ({
              codes: h.codes.slice(),
              scales: h.scales.slice(),
            }));
            const bad = randomTensor(prng(9), 5000);
            bad[4500] = NaN;
            if (nonFinite === "skip") state = step(state, { w: bad });
            else assert.throws(() => step(state, { w: bad }), RangeError);
            const after = codesOf(backendOf, moments);
            before.forEach((b, k) => {
              assert.deepEqual(after[k].codes, b.codes, `${row.rule} ${nonFinite}: codes ${k}`);
              assert.deepEqual(
                new Uint32Array(after[k].scales.slice().buffer),
                new Uint32Array(b.scales.buffer),
                `${row.rule} ${nonFinite}: scales ${k}`,
              );
            });
          } finally {
            dispose(state);
          }
        }
      }
    }
  }
});

Deno.test("the padding of a tensor's last block stays 0 (eps 0 and coupled decay: no 0 / 0 there)", async () => {
  // The padding's gradient and moments are 0: with eps 0, Adam's first step divides 0 by 0 there.
  // Were the padding's parameters left NaN, the coupled decay would carry them into the block's
  // moments at the next step, and the block's scale would make every value of it NaN.
  const n = 4097;
  const grads = (t: number) => Float32Array.from({ length: n }, (_, i) => 1 + ((i * t) % 7));
  for (const backend of ["wasm", "js"] as const) {
    for (const threads of backend === "wasm" ? [1, 2] : [1]) {
      let state = await optimizerOf(
        RULE_TABLE[0],
        { optimizer: "adam", options: { eps: 0, weightDecay: 0.1 } },
        backend,
        { states: "8bit", threads, threadThreshold: 0 },
      ).init({ w: new Float32Array(n).fill(1) });
      try {
        for (let t = 1; t <= 4; t++) state = step(state, { w: grads(t) });
        const held = stateInternals(state).backend;
        assert.ok(holdsCodes(held));
        for (const h of codesOf(held, 2)) assert.ok(h.scales.every(Number.isFinite), backend);
        assert.ok((await readParams(state)).w.every(Number.isFinite));
      } finally {
        dispose(state);
      }
    }
  }
});

Deno.test("a block of subnormal second moments keeps them (eps 0: no Infinity where 32-bit is finite)", async () => {
  // Gradients of 1e-18 make v ≈ 1e-39, a subnormal f32, in every element of a block. Its scale
  // was 0, so v decoded to 0 under m ≈ 1e-19: at a step with a zero gradient, m / (sqrt(v) + 0)
  // was Infinity and every parameter of the block -Infinity, where the 32-bit step is finite.
  const n = 4352;
  const run = async (backend: "wasm" | "js", threads: number, states: "8bit" | "32bit") => {
    let state = await optimizerOf(
      RULE_TABLE[0],
      { optimizer: "adam", options: { lr: 1e-3, eps: 0 } },
      backend,
      { states, threads, threadThreshold: 0 },
    ).init({ w: new Float32Array(n).fill(1) });
    try {
      state = step(state, { w: new Float32Array(n).fill(1e-18) });
      state = step(state, { w: new Float32Array(n) });
      return (await readParams(state)).w;
    } finally {
      dispose(state);
    }
  };
  const f32 = await run("js", 1, "32bit");
  for (const backend of ["wasm", "js"] as const) {
    for (const threads of backend === "wasm" ? [1, 2] : [1]) {
      const p = await run(backend, threads, "8bit");
      // v is held within one code (6 %): sqrt(v) within 3 %, the step of lr/bc1 within it too
      for (let i = 0; i < n; i++) {
        assert.ok(
          Math.abs(p[i] - f32[i]) <= 1e-3 * 0.05,
          `${backend} × ${threads} [${i}]: ${p[i]}`,
        );
      }
    }
  }
});

/** Every rule in 8 bits, LookAhead and Ranger included, with `more` options. */
const OVERFLOW_MAKERS: [string, (more: Record<string, unknown>) => Optimizer][] = [
  ["radam", (more) => radam({ lr: 1e-2, weightDecay: 1e-2, ...more })],
  ["adam", (more) => adam({ lr: 1e-3, ...more })],
  ["adamw", (more) => adamw({ lr: 1e-3, weightDecay: 0.1, ...more })],
  ["lion", (more) => lion({ lr: 1e-4, weightDecay: 0.1, ...more })],
  ["sgd", (more) => sgd({ lr: 1e-2, momentum: 0.9, dampening: 0.5, ...more })],
  ["ranger", (more) => ranger({ lr: 1e-3, k: 2, ...more })],
  ["lookahead(adam)", (more) => lookahead(adam({ lr: 1e-3, ...more }), { k: 2 })],
];

Deno.test("a finite gradient whose square overflows f32 (3e19, FLT_MAX) leaves its block finite", async () => {
  // g · g of a finite gradient above √FLT_MAX ≈ 1.8e19 is +Infinity in f32, and so is v. Its
  // block's scale was then NaN, and at the next step its 256 parameters NaN (then every step
  // skipped for their non-finite gradients). An infinity is now held as FLT_MAX, the block's scale,
  // with the top code. Each step is checked against a 32-bit twin loaded from the state's own
  // checkpoint (the moments its codes hold): the same parameters, bit for bit, and new codes and
  // scales that are the reference's encoding of the twin's new moments (Infinity included).
  const n = 4352, at = 300; // block 1 of 17, the last one padded
  for (const big of [3e19, 3.4028234663852886e38]) {
    for (const [name, make] of OVERFLOW_MAKERS) {
      for (const [backend, threads] of [["wasm", 1], ["js", 1], ["wasm", 2]] as const) {
        const what = `${name} ${backend} × ${threads}, gradient ${big}`;
        let state = await make({ states: "8bit", backend, threads, threadThreshold: 0 })
          .init({ w: randomTensor(prng(3), n) });
        const held = stateInternals(state).backend;
        assert.ok(holdsCodes(held));
        const names = Object.keys(await readMoments(state));
        try {
          for (let t = 1; t <= 5; t++) {
            const grad = randomTensor(prng(10 + t), n);
            // and at step 3 another overflow in the block held at FLT_MAX (not a second FLT_MAX:
            // RAdam's parameter then overflows too, as in 32 bits, and no checkpoint holds it)
            if (t === 1 || t === 3) grad[at] = t === 1 ? big : -3e19;
            let twin = await loadState(await saveState(state), { states: "32bit", backend: "js" });
            state = step(state, { w: grad });
            twin = step(twin, { w: grad });
            const p = (await readParams(state)).w;
            assert.deepEqual(bits(p), bits((await readParams(twin)).w), `${what}, step ${t}`);
            const twinMoments = await readMoments(twin);
            dispose(twin);
            const decoded = await readMoments(state);
            names.forEach((moment, k) => {
              const codes = held.viewCompact(k).w;
              const wrong = compareCodes(
                codes,
                Float64Array.from(twinMoments[moment].w),
                new Float64Array(n),
                !held.layout.unsignedCodes[k],
              );
              assert.equal(wrong, undefined, `${what}, step ${t}: ${moment} ${wrong}`);
              assert.ok(
                codes.scales.every(Number.isFinite),
                `${what}, step ${t}: ${moment} scales`,
              );
              assert.ok(decoded[moment].w.every(Number.isFinite), `${what}, step ${t}: ${moment}`);
            });
            // the others of the block: finite, a non-zero second moment not 0
            for (let i = 256; i < 512; i++) {
              if (i !== at) assert.ok(Number.isFinite(p[i]), `${what}, step ${t}: p[${i}] ${p[i]}`);
              const v = decoded.exp_avg_sq?.w[i];
              if (v !== undefined) assert.ok(v > 0, `${what}, step ${t}: v[${i}] ${v}`);
            }
          }
        } finally {
          dispose(state);
        }
      }
    }
  }
});

Deno.test('"propagate": an infinite gradient is held as ±FLT_MAX, its block finite, the same on every CPU backend', async () => {
  // The element's parameter goes non-finite, as in 32 bits. (A NaN still poisons its block, and a
  // coupled weight decay carries a NaN parameter into the moments: RAdam's case is left out.)
  const n = 4352, at = 300;
  for (const [name, make] of OVERFLOW_MAKERS.filter(([name]) => name !== "radam")) {
    const states = [];
    for (const [backend, threads] of [["wasm", 1], ["js", 1], ["wasm", 2]] as const) {
      let state = await make({
        states: "8bit",
        backend,
        threads,
        threadThreshold: 0,
        nonFinite: "propagate",
      })
        .init({ w: randomTensor(prng(4), n) });
      for (let t = 1; t <= 3; t++) {
        const grad = randomTensor(prng(20 + t), n);
        if (t === 1) grad[at] = -Infinity;
        state = step(state, { w: grad });
      }
      const held = stateInternals(state).backend;
      assert.ok(holdsCodes(held));
      for (let k = 0; k < held.layout.unsignedCodes.length; k++) {
        assert.ok(held.viewCompact(k).w.scales.every(Number.isFinite), `${name} ${backend}: ${k}`);
      }
      const p = (await readParams(state)).w;
      p.forEach((x, i) => assert.ok(i === at || Number.isFinite(x), `${name} ${backend}: p[${i}]`));
      states.push(state);
    }
    for (const s of states.slice(1)) await assertSameBits(s, states[0], `${name} ${s.backend}`);
    states.forEach((s) => dispose(s));
  }
});
