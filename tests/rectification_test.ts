import assert from "node:assert/strict";
import { radam, readMoments, readParams, step } from "../mod.ts";
import { MODE_ADAPTIVE, MODE_MOMENTS_ONLY, MODE_MOMENTUM, rhoAt } from "../rules/adam.ts";
import { rectifier, rho } from "./reference.ts";
import { scalarsAt } from "./util.ts";
import { type Case, checkAgainstReference, optimizerFor } from "./cases.ts";
import { checkTinyEps } from "./tiny_eps.ts";

Deno.test("docs/SPEC.md reference points: ρ5 = 4.996, ρ6 = 5.994, r6 ≈ 0.0258 at β2 = 0.999", () => {
  assert.ok(Math.abs(rho(0.999, 5).rhoT - 4.996) < 5e-4);
  assert.ok(Math.abs(rho(0.999, 6).rhoT - 5.994) < 5e-4);
  assert.ok(Math.abs(rectifier(0.999, 6, 5) - 0.0258) < 5e-5);
  // the library's host-side float64 ρt agrees with the reference's
  for (let t = 1; t < 100; t++) assert.equal(rhoAt(0.999, t), rho(0.999, t).rhoT);
});

/** ρt of β2 (a double, so a rational n / 2^k) computed exactly in rationals, then rounded. */
function exactRho(beta2: number, t: number): number {
  let n = BigInt(beta2 * 2 ** 60), d = 2n ** 60n; // exact: β2 ≥ 0.5 has 53 bits under 2^0
  assert.equal(Number(n) / 2 ** 60, beta2);
  const [nt, dt] = [n ** BigInt(t), d ** BigInt(t)];
  // ρt = 2 d / (d − n) − 1 − 2 t nt / (dt − nt), over the common denominator (d − n)(dt − nt)
  const den = (d - n) * (dt - nt);
  const num = 2n * d * (dt - nt) - (d - n) * (dt - nt) - 2n * BigInt(t) * nt * (d - n);
  [n, d] = [num * 10n ** 18n / den, 10n ** 18n];
  return Number(n) / Number(d);
}

Deno.test("β2 near 1: ρt to 1e-10 of t, so rectification starts at the step it should", async () => {
  // As the plain difference of its two terms (each about 2 / (1 − β2)), ρt lost its leading
  // digits: with β2 = 0.999999, ρ4 came out 4.0000064 (it is 3.9999975); with 1 − 1e-7, ρ6
  // 6.0003 (5.9999993); with 1 − 1e-8, ρ5 5.003 and ρ20 20.015; with 1 − 1e-9, 2t − 1
  for (const beta2 of [0.999, 0.9999, 0.999999, 1 - 1e-7, 1 - 1e-8, 1 - 1e-9, 1 - 1e-12]) {
    for (const t of [1, 2, 3, 4, 5, 6, 7, 10, 20, 30, 100, 1000]) {
      const want = exactRho(beta2, t);
      const got = rhoAt(beta2, t);
      assert.ok(Math.abs(got - want) <= 1e-10 * t, `β2 ${beta2}, t ${t}: ${got} vs ${want}`);
      assert.ok(Math.abs(rho(beta2, t).rhoT - want) <= 1e-10 * t, `reference, β2 ${beta2}, t ${t}`);
    }
  }
  // ρt is just below t (by 2.5e-6 at t = 4 with 1 − 1e-6, 6e-7 at t = 6 with 1 − 1e-7, 1e-6 at
  // t = 20 with 1 − 1e-8, 2.5e-9 at t = 4 with 1 − 1e-9, 4e-12 at t = 5 with 1 − 1e-12): the
  // first rectified step is threshold + 1
  const cases = [[0.999999, 4], [1 - 1e-7, 6], [1 - 1e-8, 20], [1 - 1e-9, 4], [1 - 1e-12, 5]];
  for (const [beta2, threshold] of cases) {
    let state = await radam({ betas: [0.9, beta2], threshold }).init({ w: new Float32Array(3) });
    for (let t = 1; t <= threshold + 1; t++) {
      state = step(state, { w: new Float32Array([1, -1, 0.5]) });
      const mode = t <= threshold ? MODE_MOMENTUM : MODE_ADAPTIVE;
      assert.equal(
        scalarsAt(state, t).mode,
        mode,
        `β2 ${beta2}, threshold ${threshold}, step ${t}`,
      );
    }
  }
});

for (const backend of ["wasm", "js"] as const) {
  Deno.test(`${backend}: steps 1-5 are momentum-SGD steps, step 6 is the first rectified one`, async () => {
    const lr = 0.01;
    let state = await radam({ lr, backend }).init({ w: new Float32Array([1, -2, 3]) });
    const g = new Float32Array([0.5, 0.25, -1]);
    for (let t = 1; t <= 6; t++) {
      const before = (await readParams(state)).w;
      state = step(state, { w: g });
      const s = scalarsAt(state, t);
      const after = (await readParams(state)).w;
      const { exp_avg } = await readMoments(state);
      if (t <= 5) {
        assert.equal(s.mode, MODE_MOMENTUM, `step ${t}`);
        // p moves by exactly lr · m̂ = lr · m / (1 − β1^t), in f32
        const size = Math.fround(lr / (1 - 0.9 ** t));
        for (let i = 0; i < 3; i++) {
          const expected = Math.fround(before[i] - Math.fround(size * exp_avg.w[i]));
          assert.equal(after[i], expected, `step ${t} element ${i}`);
        }
      } else {
        assert.equal(s.mode, MODE_ADAPTIVE, `step ${t}`);
        // the step size is lr · r6 · sqrt(1 − β2⁶) / (1 − β1⁶), r6 ≈ 0.0258
        const r = (s.stepSize * (1 - 0.9 ** 6)) / (lr * Math.sqrt(1 - 0.999 ** 6));
        assert.ok(Math.abs(r - 0.0258) < 5e-5, `r6 ${r}`);
      }
    }
  });
}

Deno.test("β2 ≤ 0.6 (ρ∞ ≤ 4) is never rectified", async () => {
  for (const beta2 of [0, 0.3, 0.6]) {
    let state = await radam({ betas: [0.9, beta2] }).init({ w: new Float32Array(5) });
    for (let t = 1; t <= 1000; t++) {
      state = step(state, { w: new Float32Array(5).fill(1) });
      assert.equal(scalarsAt(state, t).mode, MODE_MOMENTUM, `β2 = ${beta2}, step ${t}`);
    }
  }
});

Deno.test("degenerateToSgd: false leaves params (and decoupled decay) untouched until rectified", async () => {
  const p0 = new Float32Array([1, 2, 3, 4, 5]);
  let state = await radam({ degenerateToSgd: false, weightDecay: 0.1, decoupledWeightDecay: true })
    .init({ w: p0 });
  for (let t = 1; t <= 5; t++) {
    state = step(state, { w: new Float32Array(5).fill(t) });
    assert.equal(scalarsAt(state, t).mode, MODE_MOMENTS_ONLY);
    assert.deepEqual((await readParams(state)).w, p0);
  }
  const { exp_avg } = await readMoments(state);
  assert.ok(exp_avg.w.every((m) => m > 0), "moments still updated");
  state = step(state, { w: new Float32Array(5).fill(1) });
  assert.notDeepEqual((await readParams(state)).w, p0);
});

Deno.test("threshold moves the first rectified step (strict >)", async () => {
  // ρ4 ≈ 3.99, ρ5 ≈ 4.996, ρ6 ≈ 5.994, ρ7 ≈ 6.99, ρ8 ≈ 7.99; at threshold = ρ6 exactly, step 6
  // is not rectified (strict >).
  const rho6 = rho(0.999, 6).rhoT;
  for (const [threshold, first] of [[4, 5], [5, 6], [rho6, 7], [7.5, 8]] as const) {
    let state = await radam({ threshold }).init(new Float32Array(4));
    let t = 0;
    do {
      state = step(state, new Float32Array(4).fill(1));
      t++;
    } while (scalarsAt(state, t).mode !== MODE_ADAPTIVE);
    assert.equal(t, first, `threshold ${threshold}`);
  }
});

/** A Nesterov RAdam case (tests/cases.ts) with β1 `beta1`, as the random suites draw them. */
function nesterovCase(beta1: number, states: "32bit" | "8bit", lengths: number[]): Case {
  return {
    rule: "adam",
    states,
    optimizer: "radam",
    options: {
      lr: 1e-5,
      betas: [beta1, 0.999999],
      eps: 0,
      weightDecay: 0,
      decoupledWeightDecay: false,
      maximize: false,
      threshold: 4,
      degenerateToSgd: false,
      nesterov: true,
    },
    schedule: false,
    lengths,
    steps: 50,
    seed: 0,
    extras: { gc: false, badCalls: [] },
  };
}

for (const backend of ["wasm", "js"] as const) {
  Deno.test(`${backend}: Nesterov with a tiny β1 matches the reference (no Infinity, no subnormal step size)`, async () => {
    // m̂ = β1·m/(1 − β1^(t+1)) + (1 − β1)·g/bc1 was factored by β1 alone: at β1 = 1e-30 the
    // step size fell to a subnormal f32 (3 digits), below 3e-39 the gradient's mix overflowed
    // to Infinity and every parameter became NaN.
    // (β1 below 2^-126 is an f32 subnormal: these are exact in f32, as the reference reads them)
    for (const beta1 of [2 ** -149, 2 ** -130, 1e-30, 1e-10, 0.3, 0.5, 0.9, 0.99]) {
      for (const [states, lengths] of [["32bit", [2, 17]], ["8bit", [4097]]] as const) {
        const c = nesterovCase(beta1, states, [...lengths]);
        await checkAgainstReference(c, (params) => optimizerFor(c, backend).init(params));
      }
    }
  });
}

Deno.test("Nesterov's m̂ is factored by its larger coefficient: both mixes stay in [0, 1]", async () => {
  for (const beta1 of [2 ** -149, 1e-30, 0.3, 0.5, 0.9, 0.999]) {
    let state = await radam({ betas: [beta1, 0.999], nesterov: true, degenerateToSgd: true })
      .init({ w: new Float32Array([1, 2]) });
    for (let t = 1; t <= 8; t++) {
      state = step(state, { w: new Float32Array([0.5, -0.25]) });
      const s = scalarsAt(state, t);
      for (const mix of [s.gradMix, s.momentMix]) {
        assert.ok(
          mix > 0 && mix <= 1,
          `β1 ${beta1}, step ${t}: mixes ${s.gradMix}, ${s.momentMix}`,
        );
      }
      assert.ok(s.gradMix === 1 || s.momentMix === 1, `β1 ${beta1}, step ${t}`);
      assert.ok(Number.isFinite(s.stepSize) && s.stepSize > 0, `β1 ${beta1}, step ${t}`);
      assert.ok((await readParams(state)).w.every(Number.isFinite), `β1 ${beta1}, step ${t}`);
    }
  }
});

for (const backend of ["wasm", "js"] as const) {
  Deno.test(`${backend}: a tiny eps (down to 2^-149) steps zero moments by 0, not 0 / 0`, async () => {
    // Adam's eps · sqrt(1 − β2^t), one f32 a step, rounded to 0 for eps = 1e-45 (at β2 next to
    // 1, 1e-40): an element with m = v = 0 became NaN, where PyTorch's update is 0.
    for (const states of ["32bit", "8bit"] as const) {
      await checkTinyEps(backend, states, (opt, p) => opt.init(p));
    }
  });
}

Deno.test("threads: a tiny eps steps zero moments by 0, not 0 / 0", async () => {
  for (const states of ["32bit", "8bit"] as const) {
    await checkTinyEps("wasm", states, async (opt, p) => await opt.init(p), {
      threads: 2,
      threadThreshold: 1,
    });
  }
});
