import assert from "node:assert/strict";
import {
  adam,
  adamw,
  chain,
  constantLr,
  cosineDecay,
  dispose,
  linearWarmup,
  loadState,
  lookahead,
  oneCycle,
  radam,
  ranger,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "../mod.ts";
import { edit } from "./checkpoint_files.ts";
import { bits, prng, randomTensor, saying } from "./util.ts";
import { refGlobalNorm } from "./reference.ts";
import { TFA_ATOL, TFA_CASES, tfaError, tfaSample } from "./published_values.ts";

const BACKENDS = ["wasm", "js"] as const;

function grads(seed: number, lengths: Record<string, number>, count: number) {
  const rand = prng(seed);
  return Array.from({ length: count }, () => {
    const g: Record<string, Float32Array> = {};
    for (const [name, n] of Object.entries(lengths)) g[name] = randomTensor(rand, n);
    return g;
  });
}

for (const backend of BACKENDS) {
  Deno.test(`${backend}: a NaN gradient mid LookAhead period changes nothing, and the run continues as if that step never happened`, async () => {
    const lengths = { "a.weight": 37, "a.bias": 5 };
    const params = {
      "a.weight": { data: randomTensor(prng(1), 37), shape: [1, 37] },
      "a.bias": randomTensor(prng(2), 5),
    };
    const gs = grads(3, lengths, 20);
    const opt = ranger({ lr: 1e-2, k: 6, backend });
    let clean = await opt.init(params);
    let dirty = await opt.init(params);
    for (let i = 0; i < gs.length; i++) {
      if (i === 8) {
        // step 9 of the dirty run (t = 9, mid period 7..12): a NaN in one tensor
        const bad = { "a.weight": gs[i]["a.weight"].slice(), "a.bias": gs[i]["a.bias"] };
        bad["a.weight"][11] = NaN;
        const before = await readSlowWeights(dirty);
        const p = await readParams(dirty);
        dirty = step(dirty, bad);
        assert.equal(dirty.step, 8);
        assert.equal(dirty.skippedSteps, 1);
        assert.ok(Number.isNaN(dirty.lastGradNorm));
        assert.deepEqual(
          bits((await readSlowWeights(dirty))["a.weight"]),
          bits(before["a.weight"]),
        );
        assert.deepEqual(bits((await readParams(dirty))["a.weight"]), bits(p["a.weight"]));
      }
      clean = step(clean, gs[i]);
      dirty = step(dirty, gs[i]);
    }
    assert.equal(dirty.step, clean.step);
    for (const read of [readParams, readSlowWeights]) {
      const [a, b] = [await read(clean), await read(dirty)];
      for (const name of Object.keys(a)) assert.deepEqual(bits(a[name]), bits(b[name]));
    }
    const [ma, mb] = [await readMoments(clean), await readMoments(dirty)];
    assert.deepEqual(bits(ma.exp_avg_sq["a.weight"]), bits(mb.exp_avg_sq["a.weight"]));
  });

  Deno.test(`${backend}: LookAhead syncs every k steps: p equals slow = slow + α(p − slow)`, async () => {
    const w0 = new Float32Array([1, -2, 3]);
    let s = await lookahead(adam({ lr: 0.1, backend }), { k: 3, alpha: 0.25 }).init({ w: w0 });
    const g = { w: new Float32Array([1, 1, -1]) };
    s = step(s, g);
    s = step(s, g);
    assert.deepEqual((await readSlowWeights(s)).w, w0);
    const inner = (await readParams(s)).w;
    assert.notDeepEqual(inner, w0);
    s = step(s, g);
    const slow = (await readSlowWeights(s)).w;
    assert.deepEqual(slow, (await readParams(s)).w);
    // the slow weights moved a quarter of the way from w0 to the inner weights after 3 steps
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(slow[i] - w0[i]) < Math.abs(inner[i] - w0[i]));
  });

  Deno.test(`${backend}: global-norm clipping equals clipping computed in float64 over all tensors`, async () => {
    const lengths = { a: 1000, b: 7, c: 64 };
    const g = grads(9, lengths, 1)[0];
    g.a[3] = 3e30; // squares overflow f32, not the f64 accumulation
    const norm = refGlobalNorm(Object.values(g));
    assert.ok(Number.isFinite(norm));
    const p0: Record<string, Float32Array> = {};
    for (const [k, n] of Object.entries(lengths)) p0[k] = new Float32Array(n).fill(0.5);
    // lr 1 momentum-SGD step with β1 = 0: p = p − g_clipped exactly (one f32 rounding)
    const opt = radam({ lr: 1, betas: [0, 0.5], clipGradNorm: 2, backend });
    const s = step(await opt.init(p0), g);
    assert.ok(Math.abs(s.lastGradNorm - norm) <= 1e-15 * norm);
    const { exp_avg } = await readMoments(s);
    for (const k of Object.keys(lengths)) {
      for (let i = 0; i < g[k].length; i++) {
        const want = g[k][i] * (2 / norm);
        assert.ok(
          Math.abs(exp_avg[k][i] - want) <= 3 * 2 ** -24 * Math.abs(want) + 2 ** -149,
          `${k}[${i}]: ${exp_avg[k][i]} vs ${want}`,
        );
      }
    }
    // the clipped gradient has norm 2 (to f32 precision)
    const clippedNorm = refGlobalNorm(Object.values(exp_avg));
    assert.ok(Math.abs(clippedNorm - 2) < 1e-6);
  });

  Deno.test(`${backend}: clipping by a scale below f32's normal range keeps the clipped gradients' precision`, async () => {
    // |g| up to 3.4e38: a norm of about 1.3e40, so the scale max / norm is 8e-41 (max 1) or 8e-44
    // (max 1e-3), subnormal in f32 (16 and 6 significant bits: the clipped gradients were up to
    // 1e-5 and 1e-2 off), or 8e-71 (max 1e-30: every clipped value below 3e-32); a gradient of
    // -1e-30, whose clipped value rounds to 0 either way.
    for (const max of [1, 1e-3, 1e-30]) {
      for (const [threads, n] of [[1, 4099], [2, 4099], [1, 3]] as const) {
        const g = new Float32Array(n).map((_, i) => ((i * 7919) % 2001 - 1000) * 3.4e35);
        g[0] = 3.4028234e38;
        g[1] = -1e-30;
        const norm = refGlobalNorm([g]);
        // lr 1 momentum-SGD step with β1 = 0: p = p − g_clipped (m is the clipped gradient)
        const opt = radam({
          lr: 1,
          betas: [0, 0.5],
          clipGradNorm: max,
          backend,
          threads: backend === "wasm" ? threads : 1,
          threadThreshold: 0,
        });
        let s = await opt.init({ w: { data: new Float32Array(n), shape: [n] } });
        s = step(s, { w: g });
        const m = (await readMoments(s)).exp_avg.w;
        for (let i = 0; i < n; i++) {
          const want = g[i] * (max / norm);
          assert.ok(
            Math.abs(m[i] - want) <= 3 * 2 ** -24 * Math.abs(want) + 2 ** -149,
            `max ${max}, ${threads} thread(s), [${i}]: ${m[i]} vs ${want}`,
          );
        }
        dispose(s);
      }
    }
  });

  Deno.test(`${backend}: nonFinite "throw" names the tensor and leaves the state as it was`, async () => {
    let s = await radam({ nonFinite: "throw", backend }).init({
      a: new Float32Array(4),
      b: new Float32Array(4),
    });
    s = step(s, { a: new Float32Array(4).fill(1), b: new Float32Array(4).fill(1) });
    const before = await readParams(s);
    const bad = { a: new Float32Array(4).fill(1), b: new Float32Array([1, 2, Infinity, 0]) };
    assert.throws(() => step(s, bad), (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /"b".*Infinity at index 2/);
      return true;
    });
    assert.equal(s.step, 1);
    assert.equal(s.skippedSteps, 0);
    assert.deepEqual(await readParams(s), before);
    s = step(s, { a: new Float32Array(4), b: new Float32Array(4) }); // still usable
    assert.equal(s.step, 2);
  });

  Deno.test(`${backend}: nonFinite "propagate" lets a NaN through, as PyTorch`, async () => {
    let s = await radam({ nonFinite: "propagate", backend }).init(new Float32Array(3));
    s = step(s, new Float32Array([1, NaN, 1]));
    assert.equal(s.step, 1);
    assert.ok(Number.isNaN(s.params[""][1]));
    assert.ok(Number.isNaN(s.lastGradNorm)); // no norm computed
  });

  Deno.test(`${backend}: gradient centralization removes each row's mean of rank > 1 tensors only`, async () => {
    // momentum-SGD first step with β1 = 0: exp_avg is the gradient the update used
    const opt = radam({ lr: 0, betas: [0, 0.9], gc: true, backend });
    let s = await opt.init({
      w: { data: new Float32Array(6), shape: [2, 3] },
      b: new Float32Array(3),
    });
    s = step(s, { w: new Float32Array([1, 2, 6, -1, -1, 5]), b: new Float32Array([1, 2, 6]) });
    const { exp_avg } = await readMoments(s);
    assert.deepEqual(Array.from(exp_avg.w), [-2, -1, 3, -2, -2, 4]);
    assert.deepEqual(Array.from(exp_avg.b), [1, 2, 6]);
  });

  Deno.test(`${backend}: centralization of a row whose f32 sum overflows takes its mean in f64`, async () => {
    // Finite gradients whose row sum is above f32's largest: the mean was Infinity, the
    // centralized gradients -Infinity and NaN, and every parameter of the tensor NaN (under
    // "skip", which passes finite gradients), with or without clipping (its scale is applied
    // after centralization). The rows: the overflow in one lane, in the lane sums' combination,
    // in the tail; a NaN (under "propagate") still makes its row NaN.
    const rows = [
      [3e38, 0, 0, 0, 3e38, 0, 0, 0, -1e38],
      [3e38, 3e38, 0, 0, -2e38, 0, 0, 0, 5],
      [2e38, 1, 2, 3, 4, 5, 6, 7, 2e38],
    ];
    const grad = Float32Array.from([...rows.flat(), 3e38, 3e38, 3e38, 3e38, 3e38, NaN, 0, 0, 0]);
    for (const threads of backend === "wasm" ? [1, 2] : [1]) {
      // momentum-SGD first step with β1 = 0: exp_avg is the gradient the update used
      const opt = radam({
        lr: 0,
        betas: [0, 0.9],
        gc: true,
        nonFinite: "propagate",
        backend,
        threads,
        threadThreshold: 0,
      });
      let s = await opt.init({ w: { data: new Float32Array(36), shape: [4, 9] } });
      s = step(s, { w: grad });
      const used = (await readMoments(s)).exp_avg.w;
      for (let r = 0; r < 3; r++) {
        const mean = rows[r].reduce((a, x) => a + x, 0) / 9;
        for (let i = 0; i < 9; i++) {
          const want = Math.fround(rows[r][i]) - mean;
          assert.ok(
            Math.abs(used[r * 9 + i] - want) <=
              2 ** -22 * Math.abs(mean) + 2 ** -23 * Math.abs(want),
            `row ${r} [${i}]: ${used[r * 9 + i]} vs ${want} (${threads} thread(s))`,
          );
        }
      }
      // a row of 3e38 and a NaN: NaN, as before
      assert.ok(used.subarray(27).every(Number.isNaN));
      dispose(s);
    }
  });
}

Deno.test("ranger has Ranger's defaults and validates LookAhead and shapes", async () => {
  const r = ranger();
  assert.equal(r.name, "ranger");
  const h = r.settings.hyperparameters;
  assert.deepEqual([h.beta1, h.beta2], [0.95, 0.999]);
  assert.equal(h.eps, 1e-5);
  assert.equal(r.settings.loop.gc, true);
  assert.equal(h.decoupledWeightDecay, true);
  assert.deepEqual(r.settings.lookahead, { k: 6, alpha: 0.5 });
  assert.throws(() => lookahead(radam(), { k: 0 }), RangeError);
  assert.throws(() => lookahead(radam(), { k: 1.5 }), RangeError);
  assert.throws(() => lookahead(radam(), { alpha: 1.5 }), /alpha/);
  assert.throws(() => lookahead(lookahead(radam())), TypeError);
  assert.throws(() => radam({ nonFinite: "ignore" as "skip" }), /nonFinite/);
  assert.throws(() => radam({ clipGradNorm: -1 }), /clipGradNorm/);
  await assert.rejects(
    () => r.init({ w: { data: new Float32Array(5), shape: [2, 3] } }),
    (e: Error) => e instanceof RangeError && /"w"/.test(e.message),
  );
});

Deno.test("lookahead: a k past 2^53 − 1 (which never synced) is refused at the factory, naming k", async () => {
  const expected = "Option k must be an integer from 1 to 2⁵³ − 1, got";
  for (const k of [2 ** 53, 2 ** 60, Number.MAX_VALUE, Infinity, 0, 1.5]) {
    assert.throws(() => lookahead(radam(), { k }), saying(RangeError, `${expected} ${k}`));
    assert.throws(() => ranger({ k }), saying(RangeError, `${expected} ${k}`));
  }
  assert.throws(() => ranger({ k: "6" as unknown as number }), saying(TypeError, expected));
  assert.equal(lookahead(radam(), { k: 2 ** 53 - 1 }).settings.lookahead?.k, 2 ** 53 - 1);
  // A checkpoint of such a k is refused too, by the same check.
  const bytes = await saveState(await ranger({ k: 5 }).init({ w: new Float32Array(2) }));
  const far = edit(bytes, (h) => {
    const stored = JSON.parse(h.__metadata__.hyperparameters);
    stored.lookahead.k = 2 ** 60;
    h.__metadata__.hyperparameters = JSON.stringify(stored);
  });
  await assert.rejects(() => loadState(far), saying(RangeError, `${expected} ${2 ** 60}`));
});

Deno.test("schedules: fastai's SchedCos test values, warmup, one-cycle shape, chain", () => {
  // fastai docs, callback.schedule: SchedCos(0, 2) at [0, .25, .5, .75, 1] is
  // [0, 0.29289, 1, 1.70711, 2] (test_close, eps 1e-5). Our cosineDecay from 0 to 2 over 5 steps
  // visits the same positions.
  const cos = cosineDecay(0, { decaySteps: 5, finalLr: 2 });
  const want = [0, 0.29289, 1, 1.70711, 2];
  for (let t = 1; t <= 5; t++) assert.ok(Math.abs(cos(t) - want[t - 1]) < 1e-5);
  assert.equal(constantLr(0.3)(99), 0.3);
  const w = linearWarmup(1e-3, { warmupSteps: 10 });
  assert.ok(Math.abs(w(1) - 1e-4) < 1e-18);
  assert.equal(w(10), 1e-3);
  assert.equal(w(11), 1e-3);
  const oc = oneCycle(1, { totalSteps: 100 });
  assert.ok(Math.abs(oc(1) - 1 / 25) < 1e-15); // starts at lr / div
  assert.ok(Math.abs(oc(26) - 1) < 1e-15); // peak at pct_start = 0.25
  assert.ok(oc(13) > oc(1) && oc(13) < oc(26));
  assert.ok(oc(100) < 1e-3 && oc(100) > 1e-5); // towards lr / div_final
  const c = chain([constantLr(1), 3], [constantLr(2), 2], [constantLr(3), 1]);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(c), [1, 1, 1, 2, 2, 3, 3]);
  assert.throws(() => linearWarmup(1, { warmupSteps: 0 }), RangeError);
});

Deno.test("schedules: a wrong type is a TypeError, a number out of range a RangeError, worded as every option", () => {
  const bad = <T>(f: () => T, kind: typeof TypeError | typeof RangeError, message: string) =>
    assert.throws(f, (e: Error) => e.constructor === kind && e.message === message);
  // deno-lint-ignore no-explicit-any
  const loose = (x: unknown) => x as any;
  bad(
    () => constantLr(loose("1e-3")),
    TypeError,
    'Option lr must be a finite number ≥ 0, got a string "1e-3"' +
      " (a number as text: convert it, Number(value))",
  );
  bad(() => constantLr(-1), RangeError, "Option lr must be a finite number ≥ 0, got -1");
  bad(
    () => cosineDecay(1, { decaySteps: NaN }),
    RangeError,
    "Option decaySteps must be an integer from 1 to 2⁵³ − 1, got NaN",
  );
  bad(
    () => linearWarmup(1, { warmupSteps: loose("10") }),
    TypeError,
    'Option warmupSteps must be an integer from 1 to 2⁵³ − 1, got a string "10"' +
      " (a number as text: convert it, Number(value))",
  );
  bad(
    () => linearWarmup(1, loose({})),
    TypeError,
    "Option warmupSteps must be an integer from 1 to 2⁵³ − 1, got undefined " +
      "(linearWarmup needs it: write linearWarmup(1e-3, { warmupSteps: 100 }))",
  );
  bad(
    () => oneCycle(1, { totalSteps: 10, pctStart: 1.5 }),
    RangeError,
    "Option pctStart must be a finite number from 0 to 1, got 1.5",
  );
  bad(
    () => oneCycle(1, { totalSteps: 10, divFactor: 0 }),
    RangeError,
    "Option divFactor must be a finite number > 0, got 0",
  );
  bad(
    () => oneCycle(1, { totalSteps: 10, divFinal: loose(true) }),
    TypeError,
    "Option divFinal must be a finite number > 0, got true",
  );
  bad(
    () => chain([loose(5), 3]),
    TypeError,
    "chain() parts must be [schedule, steps], got 5 as a schedule (a constant learning rate is a schedule so: constantLr(5))",
  );
  bad(
    () => chain([constantLr(1), 3], [constantLr(1), 0]),
    RangeError,
    "Option steps of chain() part 1 must be an integer from 1 to 2⁵³ − 1, got 0",
  );
  // The brackets forgotten: a part that is not a [schedule, steps] pair says how to write one
  // (destructured as it was, it threw the runtime's ".for is not iterable").
  bad(
    () => chain(loose(constantLr(1)), loose(3)),
    TypeError,
    "chain() parts must be [schedule, steps] pairs, got a function: write chain([s1, n1], [s2, n2], …)",
  );
  bad(
    () => chain([constantLr(1), 3], loose(constantLr(2))),
    TypeError,
    "chain() parts must be [schedule, steps] pairs, got a function: write chain([s1, n1], [s2, n2], …)",
  );
  bad(
    () => chain(loose([constantLr(1), 3, 4])),
    TypeError,
    "chain() parts must be [schedule, steps] pairs, got Array(3): write chain([s1, n1], [s2, n2], …)",
  );
  bad(() => chain(), RangeError, "chain() needs at least one [schedule, steps]");
  // The options record: a number where it belongs is named, a misspelled option is not ignored.
  bad(
    () => cosineDecay(1, loose(100)),
    TypeError,
    "Options of cosineDecay must be an object, got 100 (write cosineDecay(1e-3, { decaySteps: 1000 }))",
  );
  bad(
    () => oneCycle(1, loose({ totalSteps: 10, pct_start: 0.3 })),
    TypeError,
    "Unknown option pct_start for oneCycle; expected one of totalSteps, pctStart, divFactor, " +
      "divFinal (pct_start is pctStart here)",
  );
  bad(
    () => cosineDecay(1, loose({ decaySteps: 10, final: 0.1 })),
    TypeError,
    "Unknown option final for cosineDecay; expected one of decaySteps, finalLr",
  );
  bad(
    () => linearWarmup(1, loose({ steps: 10 })),
    TypeError,
    "Unknown option steps for linearWarmup; expected one of warmupSteps",
  );
});

for (const backend of BACKENDS) {
  Deno.test(`${backend}: parameter groups set weight decay and lr scale per tensor, by name`, async () => {
    const opt = adamw({
      lr: 0.1,
      weightDecay: 0.5,
      backend,
      groups: [{ match: /\.bias$/, weightDecay: 0 }, { match: (n) => n === "head", lrScale: 2 }],
    });
    let s = await opt.init({
      "fc.weight": new Float32Array(5).fill(1),
      "fc.bias": new Float32Array(3).fill(1),
      head: new Float32Array(2).fill(1),
    });
    s = step(s, {
      "fc.weight": new Float32Array(5),
      "fc.bias": new Float32Array(3),
      head: new Float32Array(2),
    });
    const p = await readParams(s);
    assert.deepEqual(Array.from(p["fc.weight"]), Array(5).fill(Math.fround(1 - 0.1 * 0.5)));
    assert.deepEqual(Array.from(p["fc.bias"]), [1, 1, 1]);
    assert.deepEqual(Array.from(p.head), Array(2).fill(Math.fround(1 - 0.2 * 0.5)));
  });
}

// Two more test values (the verified published ones are TFA_CASES, at the end). Source: two
// TensorFlow tests found through the code-search index (test_look_ahead and test_radam,
// Keras/TF1 ports of LookAhead and RAdam; the index did not name their repository, so treat the
// provenance as unverified; the values are also derived by hand below). Both use numpy's
// assert_almost_equal (decimal 7: |actual − desired| < 1.5e-7), kept here.
const DECIMAL_7 = 1.5e-7;

for (const backend of BACKENDS) {
  Deno.test(`${backend}: TF test_look_ahead values: SGD(lr 0.1) in LookAhead(alpha 0.2, k 5), grad 2`, async () => {
    // RAdam with β1 = 0 and β2 = 0.5 (ρ∞ = 3: never rectified) is plain SGD: p -= lr · g.
    const lr = 0.1, alpha = 0.2;
    let s = await lookahead(radam({ lr, betas: [0, 0.5], backend }), { k: 5, alpha }).init(
      new Float32Array([1]),
    );
    for (let i = 0; i < 4; i++) s = step(s, new Float32Array([2]));
    assert.ok(Math.abs(s.params[""][0] - (1 - 4 * lr * 2)) < DECIMAL_7);
    s = step(s, new Float32Array([2]));
    assert.ok(Math.abs(s.params[""][0] - (1 * (1 - alpha) + (1 - 5 * lr * 2) * alpha)) < DECIMAL_7);
  });

  Deno.test(`${backend}: TF test_radam values: threshold 4, lr 0.1, constant grad 2`, async () => {
    const lr = 0.1;
    let s = await radam({ lr, threshold: 4, backend }).init(new Float32Array([1]));
    for (let i = 0; i < 4; i++) s = step(s, new Float32Array([2]));
    const x4 = s.params[""][0];
    assert.ok(Math.abs(x4 - (1 - 4 * lr * 2)) < DECIMAL_7); // without adaptive gradient
    s = step(s, new Float32Array([2])); // ρ5 = 4.996 > 4: rectified
    const rhoInf = 2 / (1 - 0.999) - 1, b = 0.999 ** 5, rho = rhoInf - 2 * 5 * b / (1 - b);
    const r = Math.sqrt((rho - 4) * (rho - 2) * rhoInf / ((rhoInf - 4) * (rhoInf - 2) * rho));
    assert.ok(Math.abs(s.params[""][0] - (x4 - lr * r * 2 / 2)) < DECIMAL_7);
  });
}

for (const backend of BACKENDS) {
  for (const c of TFA_CASES) {
    Deno.test(`${backend}: TensorFlow Addons ${c.name} (atol ${TFA_ATOL})`, async () => {
      const { params, grads } = tfaSample();
      let s = await c.make(backend).init(params);
      for (let i = 0; i < 100; i++) s = step(s, grads);
      const error = tfaError(await readParams(s), c.expected);
      assert.ok(error < TFA_ATOL, `off by ${error}`);
    });
  }
}
