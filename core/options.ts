/**
 * Option resolution: the schemas of the options every rule shares (how a state runs, the
 * training-loop features) and LookAhead's, and the resolution of an optimizer's options, with
 * its rule's schema, into its {@linkcode Settings} (docs/SPEC.md). The option types are in
 * base/options.ts and the rules' modules.
 *
 * @module
 */
import { heldStandInHint } from "../base/_call_hints.ts";
import { refusingAssignment } from "../base/_refusing_record.ts";
import { described, optionError } from "../base/_errors.ts";
import {
  adapterOptionHint,
  clipValueHint,
  factoryOptionHint,
  initOptionHint,
  lookaheadOptionHint,
  pytorchOptionHint,
} from "../base/_option_names.ts";
import {
  DEFAULT_THREAD_THRESHOLD,
  type LearningRate,
  MAX_THREADS,
  type ParamGroup,
} from "../base/options.ts";
import {
  booleanOption,
  checkKeys,
  checkLearningRate,
  checkNumber,
  choiceOption,
  F32_MAX,
  keysOf,
  numberOption,
  resolveSchema,
  type Schema,
} from "../base/schema.ts";
import type { CommonHyperparameters, Settings } from "../base/settings.ts";
import { type Origin, originOf, remember } from "./origins.ts";
import {
  bareOptionsHint,
  extraArgumentsMessage,
  lookaheadHint,
  positionalHint,
} from "./positional.ts";

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null;
}

/**
 * Validates option `threads` (default 1): an integer from 1 to MAX_THREADS, and > 1 only on a
 * backend that can use it (wasm, or auto).
 */
export function checkThreads(value: unknown, backend: unknown): number {
  if (value === undefined) return 1;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_THREADS) {
    throw optionError("threads", `an integer from 1 to ${MAX_THREADS}`, value);
  }
  if (value > 1 && backend !== "wasm" && backend !== "auto") {
    throw new TypeError(
      `Option threads: ${value} needs the wasm backend (backend "wasm" or "auto"), got backend ${
        JSON.stringify(backend)
      }`,
    );
  }
  return value;
}

/** The backends a configuration may ask for. */
export const BACKENDS: readonly string[] = ["auto", "wasm", "js", "webgpu"];

/** The formats of option `states`. */
export const STATES: readonly string[] = ["32bit", "8bit"];

/** How a state is held and runs (not stored as options in checkpoints). */
export const RUN_OPTIONS: Schema = [
  choiceOption("backend", BACKENDS, "auto", "never"),
  {
    key: "threads",
    default: 1,
    stored: "never",
    check: (value, resolved) => checkThreads(value, resolved.backend),
  },
  numberOption("threadThreshold", DEFAULT_THREAD_THRESHOLD, "never"),
  // A checkpoint records the format of its moments in its own way (core/checkpoint.ts).
  choiceOption("states", STATES, "32bit", "never"),
];

/** The training-loop features every rule has. */
export const LOOP_OPTIONS: Schema = [
  numberOption("clipGradNorm", undefined, "unlessDefault"),
  choiceOption("nonFinite", ["skip", "throw", "propagate"], "skip", "unlessDefault"),
  booleanOption("gc", false, "always"),
  // Stored by core/checkpoint.ts, with the map of tensors to groups.
  {
    key: "groups",
    default: Object.freeze([]),
    stored: "never",
    check: (value, resolved) => checkGroups(value, resolved.weightDecay as number, resolved.lr),
  },
];

/** The settings a parameter group takes: any other is a misspelling, not ignored. */
const GROUP_KEYS = Object.keys(
  { match: true, lrScale: true, weightDecay: true } satisfies Record<keyof ParamGroup, true>,
);

/**
 * Where a group's unknown `key` goes instead: PyTorch's `lr` and `params` of a group, and the
 * options of the whole optimizer (`states`, `betas`, `clipGradNorm`, …), which no group sets.
 * A group's `lr` (`group`'s) is written as the `lrScale` that gives it from the optimizer's
 * `lr`, where both are numbers and their ratio is one the option takes (finite, ≥ 0).
 */
function groupKeyHint(key: string, group: Record<string, unknown>, lr: unknown): string {
  if (key === "lr") {
    // (Only a ratio the option takes: not of a schedule, of lr 0, nor NaN, < 0 or infinite.)
    const ratio = typeof group.lr === "number" && typeof lr === "number" ? group.lr / lr : NaN;
    const scale = Number.isFinite(ratio) && ratio >= 0
      ? `lrScale: ${+ratio.toPrecision(12)}`
      : "lrScale: 0.1 for a tenth of it";
    return ` (a group's learning rate is the optimizer's lr times lrScale: ${scale})`;
  }
  if (key === "params") {
    return " (a group takes its tensors by name: match: /^fc\\./ or match: (name) => names.includes(name))";
  }
  return key === "states"
    ? ` (states is an option of the whole optimizer, e.g. radam({ states: "8bit" }); tensors under 4096 values keep f32 moments)`
    : "";
}

function checkGroups(
  value: unknown,
  weightDecay: number,
  lr: unknown,
): readonly Required<ParamGroup>[] {
  if (!Array.isArray(value)) {
    throw optionError("groups", "an array of { match, lrScale?, weightDecay? }", value, false);
  }
  return Object.freeze(value.map((g: unknown, i: number) => {
    if (!isObject(g)) throw optionError(`groups[${i}]`, "an object", g, false);
    checkKeys(g, GROUP_KEYS, `groups[${i}]`, undefined, (key) => groupKeyHint(key, g, lr));
    const match = g.match;
    if (!(match instanceof RegExp) && typeof match !== "function") {
      const error = optionError(
        `groups[${i}].match`,
        "a RegExp or a function of the name",
        match,
        false,
      );
      const hint = typeof match === "string"
        ? ` (one name: match: (name) => name === ${JSON.stringify(match)})`
        : Array.isArray(match) && match.every((m) => typeof m === "string")
        ? " (names: match: (name) => names.includes(name))"
        : "";
      throw new TypeError(error.message + hint);
    }
    return Object.freeze({
      match: match as RegExp | ((name: string) => boolean),
      lrScale: checkNumber(`groups[${i}].lrScale`, g.lrScale ?? 1, 0, Infinity, true),
      weightDecay: checkNumber(
        `groups[${i}].weightDecay`,
        g.weightDecay ?? weightDecay,
        0,
        F32_MAX,
        true,
      ),
    });
  }));
}

/**
 * Throws a TypeError where a factory was given the parameters (a tensor, an array or a record of
 * them), as `torch.optim.Adam(model.parameters(), lr=1e-3)` takes them: they go to `init`.
 */
function checkNotParams(options: unknown, name: string): void {
  const tensor = (v: unknown) =>
    v instanceof Float32Array || (isObject(v) && v.data instanceof Float32Array);
  const values = Array.isArray(options)
    ? options
    : isObject(options) && !tensor(options)
    ? Object.values(options)
    : [options];
  if (values.length === 0 || !values.every(tensor)) return;
  throw new TypeError(
    `${name}() takes its options, not the parameters: they go to init, ` +
      `${name}({ lr: 1e-3 }).init(params) (where PyTorch writes torch.optim.Adam(params, lr=1e-3))`,
  );
}

/**
 * Throws a TypeError where arguments follow an options object (or none) given to `origin`'s
 * factory, or lookahead's where it is undefined: they would be ignored. (After a number, the
 * learning rate, their hint is {@linkcode positionalHint}'s.)
 */
function checkNoExtra(
  origin: Origin | undefined,
  options: unknown,
  positional: readonly unknown[],
): void {
  if (options !== undefined && typeof options !== "object") return;
  const message = extraArgumentsMessage(origin, options, positional);
  if (message !== "") throw new TypeError(message);
}

/** The hyperparameters every rule must resolve ({@linkcode CommonHyperparameters}). */
const COMMON_HYPERPARAMETERS = ["lr", "weightDecay", "maximize"] as const;

/**
 * Applies defaults (the optimizer's `defaults`, then the schemas') and validates `options`
 * (RangeError/TypeError naming the option) for the optimizer `origin`; with LookAhead
 * (`origin.lookahead`, Ranger), `k` and `alpha` too. The settings are named `origin.name`.
 */
export function resolveOptions(
  origin: Origin,
  options: unknown,
  positional: readonly unknown[] = [],
): Settings {
  checkNotParams(options, origin.name);
  const bare = bareOptionsHint(origin, options, positional);
  if (bare !== "") {
    throw new TypeError(
      `Options of ${origin.name} must be an object, got ${described(options)}${bare}`,
    );
  }
  checkNoExtra(origin, options, positional);
  const known = [...keysOf(origin.options), ...keysOf(RUN_OPTIONS), ...keysOf(LOOP_OPTIONS)];
  if (origin.lookahead) known.push("k", "alpha");
  const { k, alpha, ...given } = checkKeys(
    options,
    known,
    origin.name,
    (lr) => positionalHint(origin, lr, positional),
    (key, value) =>
      initOptionHint(key, origin.name) || pytorchOptionHint(key, origin.name) ||
      adapterOptionHint(key, origin.name) || lookaheadOptionHint(
        key,
        origin.name,
        value,
        options as Record<string, unknown>,
      ) ||
      clipValueHint(key),
  );
  const { defaults } = origin;
  const resolved = resolveSchema(origin.options, given, defaults);
  const hyperparameters = refusingHyperparameters(resolved, origin);
  for (const key of COMMON_HYPERPARAMETERS) {
    if (!(key in hyperparameters)) {
      throw new Error(`Internal error: the rule of ${origin.name} resolves no ${key}`);
    }
  }
  const run = Object.freeze(resolveSchema(RUN_OPTIONS, given, defaults));
  const loop = Object.freeze(resolveSchema(LOOP_OPTIONS, given, defaults, hyperparameters));
  checkScaledLearningRate(hyperparameters.lr as LearningRate, loop.groups as readonly ParamGroup[]);
  const settings = Object.freeze({
    name: origin.name,
    rule: origin.rule.name,
    hyperparameters: hyperparameters as unknown as CommonHyperparameters,
    run: run as unknown as Settings["run"],
    loop: loop as unknown as Settings["loop"],
    ...(origin.lookahead ? { lookahead: lookaheadOf({ k, alpha }) } : {}),
  });
  return remember(settings, origin);
}

/**
 * LookAhead's settings from its options (RangeError naming the option); `elsewhere` says where
 * an unknown one goes (see {@linkcode checkKeys}).
 */
function lookaheadOf(
  options: unknown,
  elsewhere?: (key: string) => string,
  positional: readonly unknown[] = [],
): { readonly k: number; readonly alpha: number } {
  if (typeof options === "number") {
    // (lookahead(optimizer, 5, 0.5), as PyTorch's Lookahead(optimizer, k, alpha) is written,
    // or lookahead(optimizer, 0.5, 6), as Ranger's own Lookahead(optimizer, alpha, k).)
    throw new TypeError(
      `Options of lookahead must be an object, got ${options} (` +
        `${lookaheadHint(options, positional)})`,
    );
  }
  checkNoExtra(undefined, options, positional);
  const o = checkKeys(options, ["k", "alpha"], "lookahead", undefined, elsewhere);
  const k = o.k ?? 6;
  // Safe integers only: a t past 2⁵³ − 1 is refused (core/step_scalars.ts), so a larger k
  // would never sync (and a checkpoint could not hold it exactly).
  if (typeof k !== "number" || !Number.isSafeInteger(k) || k < 1) {
    throw optionError("k", "an integer from 1 to 2⁵³ − 1", k);
  }
  const alpha = checkNumber("alpha", o.alpha ?? 0.5, 0, 1, true);
  return Object.freeze({ k, alpha });
}

/**
 * Validates LookAhead's options and returns `inner` wrapped (RangeError naming the option; a
 * TypeError where `inner`'s lr is a stand-in for a schedule that was not stored, which would
 * throw at the first step); `positional`: the arguments given after them
 * (`lookahead(opt, 5, 0.5)`: its error shows them).
 */
export function resolveLookahead(
  inner: Settings<unknown>,
  options: unknown,
  positional: readonly unknown[] = [],
): Settings {
  const origin = originOf(inner);
  // (checkpointInfo's settings of a file saved with a schedule: refused here, not at a step.)
  const standIn = heldStandInHint(inner);
  if (standIn !== "") throw new TypeError(`lookahead() was given an optimizer ${standIn}`);
  if (inner.lookahead) {
    throw new TypeError(`lookahead() was given ${inner.name}, which already has LookAhead`);
  }
  const settings = Object.freeze({
    ...inner as Settings,
    name: `lookahead(${inner.name})`,
    lookahead: lookaheadOf(
      options,
      (key) =>
        factoryOptionHintOf(inner, key, (call) => `lookahead(${call})`) ||
        adapterOptionHint(key, inner.name, `lookahead(${inner.name}())`),
      positional,
    ),
  });
  return remember(settings, origin);
}

/** The largest finite f32: a learning rate the kernels read must not round past it. */
export { F32_MAX };

/**
 * Throws a RangeError naming the option where a constant learning rate times a group's
 * `lrScale` (or alone) is past f32's range: the kernels' f32 step size would be ±Infinity, and
 * every parameter it touched too. (A schedule is checked at each step, core/state.ts.)
 */
export function checkScaledLearningRate(
  lr: LearningRate,
  groups: readonly Pick<ParamGroup, "lrScale">[],
): void {
  if (typeof lr !== "number") return;
  if (lr > F32_MAX) throw optionError("lr", `≤ ${F32_MAX} (the largest f32)`, lr);
  groups.forEach((g, i) => {
    const scale = g.lrScale ?? 1;
    if (lr * scale > F32_MAX) {
      throw new RangeError(
        `Option lr times groups[${i}].lrScale must be ≤ ${F32_MAX} (the largest f32), got ${lr} × ${scale} = ${
          lr * scale
        }`,
      );
    }
  });
}

/**
 * `settings` with the learning rate `lr` (already validated as a number ≥ 0 or a schedule) in
 * place of its own; a RangeError, as at option resolution, where a constant `lr` times a group's
 * `lrScale` is past f32's range.
 */
export function withLearningRate<H>(settings: Settings<H>, lr: LearningRate): Settings<H> {
  if (typeof lr === "function") checkLearningRate(lr); // (a maker uncalled, a stand-in: refused)
  checkScaledLearningRate(lr, (settings as Settings<unknown>).loop.groups);
  return holdingLearningRate(settings, lr);
}

/**
 * A schedule for reading what was saved with one that could not be stored (a checkpoint's
 * settings, a TensorFlow.js config, a state loaded to be read, not stepped): the rate is never
 * asked for; the settings then hold a stand-in ({@linkcode holdingLearningRate}).
 */
export const READ_ONLY_SCHEDULE = (_t: number): number => 0;

/**
 * `settings` with `lr` in place of its own, unchecked: for a stand-in that settings may hold but
 * no option takes (`checkLearningRate` refuses it), `checkpointInfo`'s for a schedule that a
 * checkpoint could not store.
 */
export function holdingLearningRate<H>(settings: Settings<H>, lr: LearningRate): Settings<H> {
  const origin = originOf(settings);
  const copy = Object.freeze({
    ...settings,
    hyperparameters: refusingHyperparameters({ ...settings.hyperparameters, lr }, origin),
  });
  return remember(copy, origin);
}

/**
 * What to add to the error for an unknown option `key` given beside the optimizer of
 * `settings`, already made (to its `init`, to `lookahead`, to `tfOptimizer`), where it is an
 * option of that optimizer's factory: the call that gives it there, as `radam({ lr })`,
 * `lookahead(adam({ lr }))` or `lookahead(adam(), { k })`, inside `wrap`'s call
 * (`tfOptimizer(radam({ lr }))`). Empty for any other key, or settings this library did not make.
 */
export function factoryOptionHintOf(
  settings: Settings<unknown>,
  key: string,
  wrap: (call: string) => string = (call) => call,
): string {
  let origin: Origin;
  try {
    origin = originOf(settings);
  } catch {
    return "";
  }
  const keys = [...keysOf(origin.options), ...keysOf(RUN_OPTIONS), ...keysOf(LOOP_OPTIONS)];
  const wrapped = settings.lookahead !== undefined && !origin.lookahead;
  if (settings.lookahead !== undefined) keys.push("k", "alpha");
  return factoryOptionHint(key, keys, (option) => {
    if (!wrapped) return wrap(`${origin.name}({ ${option} })`);
    return wrap(
      option === "k" || option === "alpha"
        ? `lookahead(${origin.name}(), { ${option} })`
        : `lookahead(${origin.name}({ ${option} }))`,
    );
  });
}

/**
 * The messages of an assignment to `settings.hyperparameters` of the optimizer `origin`
 * (`settings` are frozen: the assignment would change nothing, which a sloppy-mode script's did,
 * silently): to a setting it holds, `held`, saying which call of its factory gives it instead
 * (`betas` for `beta1`, `beta2`); to a key it holds not, `unknown`, that it holds none. (Made
 * when asked: a record is made at each `setLearningRate`.)
 */
function hyperparameterMessages(origin: Origin): {
  held: (key: string) => string;
  unknown: (key: string | symbol) => string;
} {
  const refused = (key: string | symbol) =>
    `Cannot set settings.hyperparameters.${String(key)}: an optimizer's settings are frozen ` +
    "(the assignment would change nothing)";
  const held = (key: string) => {
    if (key === "lr") {
      return `${refused(key)}; to change the learning rate, make the optimizer again ` +
        `(${origin.name}({ lr })), or, of a TensorFlow.js optimizer, set ` +
        "optimizer.learningRate = x";
    }
    const options = keysOf(origin.options);
    const option = options.includes(key)
      ? key
      : /^beta[12]$/.test(key) && options.includes("betas")
      ? "betas: [β1, β2]"
      : "...options";
    return `${refused(key)}; make the optimizer again with it (${origin.name}({ ${option} }))`;
  };
  const unknown = (key: string | symbol) =>
    `${refused(key)}; ${origin.name}'s hyperparameters hold no ${String(key)}`;
  return { held, unknown };
}

/**
 * `values` as the frozen record of `settings.hyperparameters`, an assignment to which (of a
 * setting it holds or not) is a TypeError naming it and what to write instead, in sloppy-mode
 * scripts too (see `refusingAssignment`).
 *
 * @example
 * ```ts
 * import { radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const { hyperparameters } = radam({ lr: 0.01 }).settings;
 * assert.ok(Object.isFrozen(hyperparameters));
 * assert.throws(
 *   () => new Function("h", "h.lr = 0.1;")(hyperparameters),
 *   /^TypeError: Cannot set settings\.hyperparameters\.lr: .*\(radam\(\{ lr \}\)\).*learningRate = x$/,
 * );
 * assert.throws(() => new Function("h", "h.beta1 = 0.8;")(hyperparameters), /radam\(\{ betas: /);
 * assert.equal(hyperparameters.lr, 0.01);
 * ```
 */
function refusingHyperparameters<T extends Record<string, unknown>>(
  values: T,
  origin: Origin,
): Readonly<T> {
  const { held, unknown } = hyperparameterMessages(origin);
  return refusingAssignment(values, held, unknown) as Readonly<T>;
}
