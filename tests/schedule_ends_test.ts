/**
 * The schedules at their ends, for every value their makers take: each learning rate is a finite
 * number ≥ 0 between the rates the curve runs between, at the first step, the last and past it;
 * and a `oneCycle` whose `divFactor` or `divFinal` would make `lr / div` past float64's range is
 * refused where it is made, naming the option.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { cosineDecay, oneCycle } from "../mod.ts";
import { saying } from "./util.ts";

/** Any finite double ≥ 0, float64's largest and subnormals included. */
const rate = fc.oneof(
  fc.double({ min: 0, max: Number.MAX_VALUE, noNaN: true }),
  fc.constantFrom(0, Number.MIN_VALUE, 1e-3, Number.MAX_VALUE, Number.MAX_VALUE / 2),
);
const steps = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER));

/** The steps to look at: the first, the last two, past the last, and one between. */
function stepsOf(n: number, between: number): number[] {
  return [1, 2, Math.max(1, n - 1), n, n + 1, 1 + Math.floor(between * (n - 1))]
    .filter((t) => t <= Number.MAX_SAFE_INTEGER);
}

/**
 * Asserts `x` is a finite number ≥ 0 from `lo` to `hi`, give or take the roundings of
 * `b + (a − b) · w` (a few ulps of `hi`).
 */
function within(x: number, lo: number, hi: number, what: string): void {
  const slack = 2 ** -50 * hi;
  assert.ok(
    Number.isFinite(x) && x >= 0 && x >= lo - slack && x <= hi + slack,
    `${what}: ${x} not in [${lo}, ${hi}]`,
  );
}

Deno.test("cosineDecay: every rate is finite and between lr and finalLr, finalLr itself at the end", () => {
  // (The difference times 1 + cos, before the halving, passed float64's largest: Infinity.)
  assert.equal(cosineDecay(1e308, { decaySteps: 3 })(1), 1e308);
  assert.equal(cosineDecay(1e308, { decaySteps: 3 })(2), 5e307);
  // (finalLr + (lr - finalLr) rounded up past lr, there float64's largest: Infinity.)
  const max = Number.MAX_VALUE;
  assert.equal(cosineDecay(max, { decaySteps: 2, finalLr: 3.872190390119212e307 })(1), max);
  fc.assert(
    fc.property(rate, rate, steps, fc.double({ min: 0, max: 1, noNaN: true }), (lr, fin, n, u) => {
      const s = cosineDecay(lr, { decaySteps: n, finalLr: fin });
      for (const t of stepsOf(n, u)) {
        within(
          s(t),
          Math.min(lr, fin),
          Math.max(lr, fin),
          `cosineDecay(${lr}, ${n}, ${fin})(${t})`,
        );
      }
      if (n > 1) assert.equal(s(n), fin);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("oneCycle: every rate is finite and between lr / divFactor, lr and lr / divFinal", () => {
  const div = fc.oneof(
    fc.double({ min: Number.MIN_VALUE, max: Number.MAX_VALUE, noNaN: true }),
    fc.constantFrom(1, 25, 1e5, 1e-300, 1e300),
  );
  const pct = fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0, 1));
  fc.assert(
    fc.property(rate, steps, pct, div, div, fc.double({ min: 0, max: 1, noNaN: true }), (
      lr,
      n,
      pctStart,
      divFactor,
      divFinal,
      u,
    ) => {
      // (A cycle without warmup never starts at lr / divFactor, one all warmup never ends at
      // lr / divFinal: either is taken as it is there.)
      const start = pctStart > 0 ? lr / divFactor : lr, end = pctStart < 1 ? lr / divFinal : lr;
      const options = { totalSteps: n, pctStart, divFactor, divFinal };
      if (!Number.isFinite(start) || !Number.isFinite(end)) {
        const name = Number.isFinite(start) ? "divFinal" : "divFactor";
        assert.throws(() => oneCycle(lr, options), saying(RangeError, `Option ${name} must be`));
        return;
      }
      const s = oneCycle(lr, options);
      const lo = Math.min(start, lr, end), hi = Math.max(start, lr, end);
      for (const t of stepsOf(n, u)) {
        within(s(t), lo, hi, `oneCycle(${lr}, ${JSON.stringify(options)})(${t})`);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("oneCycle: a divFactor or divFinal that makes lr / div past float64's range is refused, naming it", () => {
  // It was taken: the cycle's rates were Infinity and its last one NaN (Infinity + (lr −
  // Infinity) · 0), each refused only at its step.
  assert.throws(
    () => oneCycle(1, { totalSteps: 10, divFinal: 1e-320 }),
    saying(RangeError, "Option divFinal must be a number > 0 that keeps lr / divFinal finite"),
  );
  assert.throws(
    () => oneCycle(1e300, { totalSteps: 10, divFactor: 1e-10 }),
    saying(RangeError, "Option divFactor must be a number > 0 that keeps lr / divFactor finite"),
  );
  // A quotient that stays finite is taken as before, however small the divisor.
  assert.equal(oneCycle(1e-3, { totalSteps: 10, divFinal: 1e-300 })(11), 1e-3 / 1e-300);
});

Deno.test("oneCycle: a divisor of a part the cycle does not have (pctStart 0 or 1) is taken whatever lr / div is, as before", () => {
  // Refused where the cycle was made, though no rate of it is lr / div: a cycle all warmup
  // (pctStart 1) never anneals to lr / divFinal, one without warmup (pctStart 0) never starts
  // at lr / divFactor, and their rates were finite.
  // Every rate is that of the cycle with the default divisor, which it does not use either.
  const ts = [1, 2, 5, 10, 11, 100];
  const warmup = oneCycle(1, { totalSteps: 10, pctStart: 1, divFinal: 1e-320 });
  const warmupAsEver = oneCycle(1, { totalSteps: 10, pctStart: 1 });
  assert.deepEqual(ts.map(warmup), ts.map(warmupAsEver));
  const anneal = oneCycle(1e300, { totalSteps: 10, pctStart: 0, divFactor: 1e-10 });
  const annealAsEver = oneCycle(1e300, { totalSteps: 10, pctStart: 0 });
  assert.deepEqual(ts.map(anneal), ts.map(annealAsEver));
  assert.ok(ts.map(anneal).every(Number.isFinite) && ts.map(warmup).every(Number.isFinite));
  // Where the part is there, however short, such a divisor is refused.
  assert.throws(
    () => oneCycle(1, { totalSteps: 10, pctStart: 0.999, divFinal: 1e-320 }),
    saying(RangeError, "Option divFinal must be"),
  );
  assert.throws(
    () => oneCycle(1e300, { totalSteps: 10, pctStart: 1e-9, divFactor: 1e-10 }),
    saying(RangeError, "Option divFactor must be"),
  );
});
