/**
 * Learning-rate schedules: plain functions of the 1-based step `t`, usable as the `lr` option
 * of every optimizer. Each is evaluated once per step on the host, in float64. The schedules the
 * makers here return refuse a `t` below 1 or NaN with a RangeError (the steps count from 1,
 * PyTorch's and optax's from 0): called so, they would return a rate off their curve; and a `t`
 * past 2⁵³ − 1, which no state reaches (its step count stops there: past it, t and t + 1 are
 * one number). Their counts of steps are integers from 1 to 2⁵³ − 1 likewise.
 *
 * @module
 */
import { described, optionError, optionMessage } from "../base/_errors.ts";
import { scheduleMaker, scheduleMakerOf, scheduleStandInHint } from "../base/_call_hints.ts";
import { checkKeys } from "../base/schema.ts";

/**
 * A learning-rate schedule: the learning rate of 1-based step `t`. `step` calls it (on the CPU
 * backends once for each t, before the non-finite check; see `LearningRate`), so it may not
 * step, read, save or dispose the state being stepped (a TypeError says a step is in progress).
 *
 * @example
 * ```ts
 * import { radam, type Schedule } from "@optim/radam";
 * const halve: Schedule = (t) => 1e-3 * 0.5 ** Math.floor(t / 1000);
 * const opt = radam({ lr: halve });
 * ```
 */
export type Schedule = (t: number) => number;

/** The option `name`'s value, a finite number ≥ 0 (> 0 with `positive`); else its error. */
function check(name: string, value: number, positive = false): number {
  if (
    typeof value !== "number" || !Number.isFinite(value) || (positive ? !(value > 0) : value < 0)
  ) {
    throw optionError(name, `a finite number ${positive ? "> 0" : "≥ 0"}`, value);
  }
  return value;
}

/** What a count of steps must be. */
const STEPS = "an integer from 1 to 2⁵³ − 1";

/**
 * The option `name`'s value, a whole number of steps from 1 to 2⁵³ − 1 (the last step a state
 * takes; a count past it would never be reached); else its error.
 */
function checkSteps(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw optionError(name, STEPS, value);
  return value;
}

/**
 * Throws a RangeError unless `t`, the step a schedule made by `maker` was called with, is a
 * number from 1 to 2⁵³ − 1 (the steps count from 1): a schedule called at 0 or below (PyTorch's
 * and optax's count from 0), or at NaN, would return a learning rate off its curve
 * (`linearWarmup`'s negative) rather than say so; past 2⁵³ − 1 (Infinity included), where t and
 * t + 1 are one number, no state steps (core/step_scalars.ts). Fractional steps are allowed (a
 * schedule of `t / 2`).
 */
function checkT(maker: string, t: number): void {
  if (typeof t === "number" && t >= 1 && t <= Number.MAX_SAFE_INTEGER) return;
  throw new RangeError(
    `The schedule of ${maker} takes the 1-based step t, a number from 1 to 2⁵³ − 1, got ${
      described(t)
    }${
      t === 0 ? " (the first step is t = 1 here; PyTorch's and optax's schedules count from 0)" : ""
    }`,
  );
}

/**
 * Checks the arguments of the schedule maker `maker` (its call with typical values `example`,
 * e.g. `linearWarmup(1e-3, { warmupSteps: 100 })`), whose `lr` comes first and whose other
 * options, named `keys`, come in an object: a count of steps given bare (or as text, read from a
 * config file), or the options given first (PyTorch's `OneCycleLR(max_lr=…, total_steps=…)`),
 * say to write `example`; PyTorch's names of the options (`OTHER_NAMES`) say which they are
 * here. Then `lr` is checked, and the count of steps, `keys[0]`, which has no default: left out,
 * or the options with it, it says to write `example` too.
 */
function checkMaker(
  maker: string,
  example: string,
  lr: unknown,
  options: unknown,
  keys: readonly string[],
): void {
  const write = ` (write ${example})`;
  if (typeof lr === "object" && lr !== null) {
    throw new TypeError(
      `The first argument of ${maker} must be the learning rate, a finite number ≥ 0, got ${
        described(lr)
      } (write ${exampleOf(maker, keys[0], lr) ?? example})`,
    );
  }
  if (typeof options === "number" || typeof options === "string") {
    throw new TypeError(`Options of ${maker} must be an object, got ${described(options)}${write}`);
  }
  checkKeys(options, keys, maker, undefined, (key) => {
    const name = key.toLowerCase().replace(/_/g, "");
    if (!Object.hasOwn(OTHER_NAMES, name)) return "";
    const [option, here] = OTHER_NAMES[name];
    return option === "lr" || keys.includes(option)
      ? ` (${here.replace("KEY", key)}: ${example})`
      : "";
  });
  check("lr", lr as number);
  // Its count of steps has no default: left out (the options too, in JavaScript), say where.
  if ((options as Record<string, unknown> | undefined)?.[keys[0]] === undefined) {
    const none = options === undefined ? ", given no options" : "";
    throw new TypeError(
      `${optionMessage(keys[0], STEPS, undefined)} (${maker} needs it${none}: write ${example})`,
    );
  }
}

/**
 * The call of `maker` with the learning rate and step count of `given`, an object given for the
 * learning rate (`linearWarmup({ lr: 1e-3, steps: 100 })`): its first number named `lr`-like
 * (`max_lr`, optax's `init_value`, Keras's `initial_learning_rate`), and its first named
 * `step`-like under `steps`; undefined where it lacks either.
 */
function exampleOf(maker: string, steps: string, given: object): string | undefined {
  const entries = Object.entries(given).filter(([, v]) => typeof v === "number");
  const lr = entries.find(([k]) => /(lr|init_?value|learning_?rate)$/i.test(k))?.[1];
  const n = entries.find(([k]) => /step/i.test(k))?.[1];
  return lr === undefined || n === undefined ? undefined : `${maker}(${lr}, { ${steps}: ${n} })`;
}

/**
 * PyTorch's (and optax's, Keras's) names of the schedules' options, lower case without `_`: the
 * option each is here (`lr`, the first argument of every maker), and what to say of it, said
 * only to a maker that has that option (`linearWarmup` has no `finalLr`).
 */
const OTHER_NAMES: Readonly<Record<string, readonly [string, string]>> = {
  tmax: ["decaySteps", "KEY is decaySteps here"],
  etamin: ["finalLr", "KEY is finalLr here"],
  endvalue: ["finalLr", "KEY is finalLr here"],
  alpha: [
    "finalLr",
    "KEY, in optax and Keras a fraction of lr, is finalLr here, the rate itself, alpha × lr",
  ],
  maxlr: ["lr", "KEY is the first argument here, lr"],
  initvalue: ["lr", "KEY is the first argument here, lr"],
  initiallearningrate: ["lr", "KEY is the first argument here, lr"],
  finaldivfactor: ["divFinal", "KEY is divFinal here"],
  epochs: ["totalSteps", "totalSteps here is epochs × stepsPerEpoch"],
  stepsperepoch: ["totalSteps", "totalSteps here is epochs × stepsPerEpoch"],
  warmup: ["warmupSteps", "KEY is warmupSteps here"],
};

/**
 * Cosine interpolation from `a` (at pct 0) to `b` (at pct 1), as fastai's `SchedCos`. The
 * difference is scaled by the half of `1 + cos`, in [0, 1], not by `1 + cos` first: that
 * product passed float64's largest for an `a` above half of it (Infinity at step 1). The sum is
 * held between `a` and `b`: `b + (a - b)` rounds up past `a` where `a - b` rounded up, which
 * at float64's largest was Infinity.
 */
function cosine(a: number, b: number, pct: number): number {
  const rate = b + (a - b) * ((1 + Math.cos(Math.PI * pct)) / 2);
  return Math.min(Math.max(rate, Math.min(a, b)), Math.max(a, b));
}

/**
 * `lr / div`, the rate a cycle starts or ends at, checked finite: a `div` (option `name`) so
 * small that it is not (`divFinal: 1e-320`) made the cycle's rates Infinity, and its last NaN,
 * refused only at those steps.
 */
function divided(lr: number, name: string, div: number): number {
  const rate = lr / div;
  if (!Number.isFinite(rate)) {
    throw optionError(name, `a number > 0 that keeps lr / ${name} finite (lr ${lr})`, div);
  }
  return rate;
}

/**
 * A constant learning rate.
 *
 * @example
 * ```ts
 * import { constantLr } from "@optim/radam";
 * import assert from "node:assert/strict";
 * assert.equal(constantLr(0.1)(7), 0.1);
 * ```
 */
export function constantLr(lr: number): Schedule {
  check("lr", lr);
  return () => lr;
}

/**
 * Linear warmup from `lr / warmupSteps` at step 1 to `lr` at step `warmupSteps`, then `lr`.
 *
 * @example
 * ```ts
 * import { linearWarmup } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const s = linearWarmup(1e-3, { warmupSteps: 10 });
 * assert.deepEqual([s(1), s(10), s(100)].map((x) => +x.toPrecision(12)), [1e-4, 1e-3, 1e-3]);
 * ```
 */
export function linearWarmup(lr: number, options: { warmupSteps: number }): Schedule {
  checkMaker("linearWarmup", "linearWarmup(1e-3, { warmupSteps: 100 })", lr, options, [
    "warmupSteps",
  ]);
  const n = checkSteps("warmupSteps", options?.warmupSteps);
  return (t) => (checkT("linearWarmup", t), lr * Math.min(1, t / n));
}

/**
 * Cosine decay from `lr` at step 1 to `finalLr` (default 0) at step `decaySteps`, then
 * `finalLr`: `finalLr + (lr − finalLr) · (1 + cos(π · (t − 1) / (decaySteps − 1))) / 2`.
 * A `finalLr` above `lr` is taken as it is, the same half cosine rising from `lr` to `finalLr`
 * (as PyTorch's `CosineAnnealingLR` with `eta_min` above the base rate, and fastai's
 * `SchedCos`): a warmup of that shape, not an error; `finalLr` equal to `lr` is constant.
 *
 * @example
 * ```ts
 * import { cosineDecay } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const s = cosineDecay(1e-3, { decaySteps: 101 });
 * assert.deepEqual([s(1), s(51), s(101)].map((x) => +x.toPrecision(12)), [1e-3, 5e-4, 0]);
 * ```
 */
export function cosineDecay(
  lr: number,
  options: { decaySteps: number; finalLr?: number },
): Schedule {
  checkMaker("cosineDecay", "cosineDecay(1e-3, { decaySteps: 1000 })", lr, options, [
    "decaySteps",
    "finalLr",
  ]);
  const n = checkSteps("decaySteps", options?.decaySteps);
  const final = check("finalLr", options.finalLr ?? 0);
  return (t) => {
    checkT("cosineDecay", t);
    return n === 1 ? (t <= 1 ? lr : final) : cosine(lr, final, Math.min(1, (t - 1) / (n - 1)));
  };
}

/**
 * fastai's `fit_one_cycle` learning-rate shape over `totalSteps` steps: a cosine warmup from
 * `lr / divFactor` to `lr` over the first `pctStart` of the steps, then cosine annealing to
 * `lr / divFinal`. fastai's defaults: `divFactor = 25`, `divFinal = 1e5`,
 * `pctStart = 0.25`. Step `t` sits at fraction `(t − 1) / totalSteps` of the cycle, as fastai's
 * `pct_train` before the batch. A `divFactor` or `divFinal` below 1 is taken as it is (the cycle
 * then starts, or ends, above `lr`), as PyTorch's `OneCycleLR` takes it; one so small that
 * `lr` divided by it is not finite is a RangeError naming it (where the cycle has that part:
 * not `divFactor` with `pctStart` 0, nor `divFinal` with `pctStart` 1).
 *
 * @example
 * ```ts
 * import { oneCycle } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const s = oneCycle(1e-2, { totalSteps: 100 });
 * assert.equal(+s(1).toPrecision(12), 1e-2 / 25);
 * ```
 */
export function oneCycle(
  lr: number,
  options: { totalSteps: number; pctStart?: number; divFactor?: number; divFinal?: number },
): Schedule {
  checkMaker("oneCycle", "oneCycle(1e-3, { totalSteps: 1000 })", lr, options, [
    "totalSteps",
    "pctStart",
    "divFactor",
    "divFinal",
  ]);
  const n = checkSteps("totalSteps", options?.totalSteps);
  const pctStart = check("pctStart", options.pctStart ?? 0.25);
  if (pctStart > 1) throw optionError("pctStart", "a finite number from 0 to 1", pctStart);
  const div = check("divFactor", options.divFactor ?? 25, true);
  const divFinal = check("divFinal", options.divFinal ?? 1e5, true);
  // Each checked where the cycle has its part: one without warmup never starts at lr / div,
  // one all warmup never anneals to lr / divFinal (their rates were finite, and are).
  const start = pctStart > 0 ? divided(lr, "divFactor", div) : lr / div;
  const end = pctStart < 1 ? divided(lr, "divFinal", divFinal) : lr / divFinal;
  return (t) => {
    checkT("oneCycle", t);
    const pct = Math.min(1, (t - 1) / n);
    if (pct < pctStart) return cosine(start, lr, pct / pctStart);
    return pctStart === 1 ? lr : cosine(lr, end, (pct - pctStart) / (1 - pctStart));
  };
}

/** What to add where a part of `chain` has `s`, not a function, as its schedule. */
function chainPartHint(s: unknown, n: unknown): string {
  if (Array.isArray(s) && typeof s[0] === "function") {
    return " (the pairs came in one array: give each as its own argument, " +
      "chain([s1, n1], [s2, n2]), or spread the array, chain(...pairs))";
  }
  if (typeof n === "function") return " (swapped: the schedule comes first, [schedule, steps])";
  return typeof s === "number"
    ? ` (a constant learning rate is a schedule so: constantLr(${s}))`
    : "";
}

/**
 * Throws a TypeError where `s`, a part's schedule, is one of the schedule makers here given
 * uncalled (`[linearWarmup, 100]`), or a stand-in for a schedule that was not stored
 * (`checkpointInfo`'s): called with the step, it would throw at the first step that reaches
 * it, or return a function.
 */
function checkChainSchedule(s: unknown): void {
  const standIn = scheduleStandInHint(s);
  if (standIn !== "") {
    throw new TypeError(`chain() parts must be [schedule, steps], got ${standIn} as a schedule`);
  }
  const maker = scheduleMakerOf(s);
  if (maker === undefined) return;
  throw new TypeError(
    `chain() parts must be [schedule, steps], got ${maker.name} itself as a schedule, which ` +
      `makes one: call it, [${maker.call}, steps]`,
  );
}

/**
 * Throws a RangeError where a part of `parts` (their counts checked) would start past step
 * 2⁵³ − 1, which no state reaches: the counts before it add up to 2⁵³ − 1 or more.
 */
function checkChainStarts(parts: readonly (readonly [Schedule, number])[]): void {
  let before = 0;
  for (let i = 1; i < parts.length; i++) {
    before += parts[i - 1][1];
    if (before < Number.MAX_SAFE_INTEGER) continue;
    throw new RangeError(
      `chain() part ${i} would start past step 2⁵³ − 1, the last step a state takes, and ` +
        "never run: the steps of the parts before it add up to 2⁵³ − 1 or more",
    );
  }
}

/**
 * Runs schedules one after the other: `chain([s1, n1], [s2, n2], …)` runs `s1` for `n1` steps,
 * then `s2` for `n2` steps counted from its own step 1, and so on; the last one runs on past
 * its count. Each count is an integer from 1 to 2⁵³ − 1, and every part starts by step 2⁵³ − 1
 * (a part after it would never run); a part's schedule is a schedule, not one of the makers
 * here given uncalled (a TypeError says to call it).
 *
 * @example
 * ```ts
 * import { chain, constantLr, cosineDecay, linearWarmup } from "@optim/radam";
 * import assert from "node:assert/strict";
 * const s = chain([linearWarmup(1e-3, { warmupSteps: 100 }), 100], [cosineDecay(1e-3, { decaySteps: 900 }), 900]);
 * assert.deepEqual([s(100), s(101)].map((x) => +x.toPrecision(12)), [1e-3, 1e-3]);
 * ```
 */
export function chain(...parts: [Schedule, number][]): Schedule {
  if (parts.length === 0) throw new RangeError("chain() needs at least one [schedule, steps]");
  for (const [i, part] of parts.entries()) {
    if (!Array.isArray(part) || part.length !== 2) {
      throw new TypeError(
        `chain() parts must be [schedule, steps] pairs, got ${
          described(part)
        }: write chain([s1, n1], [s2, n2], …)`,
      );
    }
    const [s, n] = part;
    if (typeof s !== "function") {
      throw new TypeError(
        `chain() parts must be [schedule, steps], got ${described(s)} as a schedule${
          chainPartHint(s, n)
        }`,
      );
    }
    checkChainSchedule(s);
    checkSteps(`steps of chain() part ${i}`, n);
  }
  const list = parts.map(([s, n]) => [s, n] as const);
  checkChainStarts(list);
  return (t) => {
    checkT("chain", t);
    let offset = 0;
    for (let i = 0; i < list.length - 1; i++) {
      if (t <= offset + list[i][1]) return list[i][0](t - offset);
      offset += list[i][1];
    }
    return list[list.length - 1][0](t - offset);
  };
}

// `lr: linearWarmup`, the maker given for the schedule it makes, says to call it (checkLearningRate).
scheduleMaker(constantLr, "constantLr(1e-3)");
scheduleMaker(linearWarmup, "linearWarmup(1e-3, { warmupSteps: 100 })");
scheduleMaker(cosineDecay, "cosineDecay(1e-3, { decaySteps: 1000 })");
scheduleMaker(oneCycle, "oneCycle(1e-3, { totalSteps: 1000 })");
scheduleMaker(chain, "chain([schedule, steps], …)");
