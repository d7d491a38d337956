/**
 * What errors add about calls of the library's makers given in the wrong way: the options before
 * the optimizer, a factory or a schedule maker given uncalled, a stand-in for a schedule given
 * for one, `step` given more than it takes. Private to the library; values are worded by
 * `_errors.ts`.
 *
 * @module
 */
import { described } from "./_errors.ts";

/**
 * What to add to an error about `first`, given where `call`'s optimizer goes, when `second` is
 * the optimizer (an object with `settings` and `init`): the options came first. Empty else.
 *
 * @example
 * ```ts
 * import { swappedOptimizerHint } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const optimizer = { settings: {}, init() {} };
 * assert.equal(
 *   swappedOptimizerHint({ k: 5 }, optimizer, "lookahead"),
 *   " (the options came first: lookahead takes the optimizer first, lookahead(optimizer, options))",
 * );
 * assert.equal(swappedOptimizerHint({ k: 5 }, undefined, "lookahead"), "");
 * ```
 */
export function swappedOptimizerHint(first: unknown, second: unknown, call: string): string {
  const s = second as { settings?: unknown; init?: unknown } | null;
  if (typeof first !== "object" || first === null || typeof s !== "object" || s === null) return "";
  if (typeof s.settings !== "object" || s.settings === null || typeof s.init !== "function") {
    return "";
  }
  return ` (the options came first: ${call} takes the optimizer first, ${call}(optimizer, options))`;
}

/** The library's factories that make an optimizer with no argument. */
const FACTORIES = ["radam", "adam", "adamw", "sgd", "lion", "ranger"];

/**
 * What to add to an error about `value` given where an optimizer goes: for one of the library's
 * factories given uncalled (`lookahead(radam)`), to call it. Empty for anything else.
 *
 * @example
 * ```ts
 * import { factoryHint, optimizerFactory } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const radam = optimizerFactory(() => ({}), "radam");
 * assert.equal(factoryHint(radam), " (a factory: call it, radam())");
 * assert.equal(factoryHint(() => {}), "");
 * ```
 */
export function factoryHint(value: unknown): string {
  const name = factoryName(value);
  return name === undefined ? "" : ` (a factory: call it, ${name}())`;
}

/**
 * The mark the library's factories carry, under a registered symbol: the same in every copy of
 * the library loaded beside another (two versions in node_modules, two bundles of a page), so
 * that each knows the other's factories given uncalled, as neither knows them by identity.
 */
const FACTORY_MARK = Symbol.for("@optim/radam.factory");

/**
 * The name of `value` where it is one of the library's factories given uncalled (`radam`, where
 * `radam()` was meant), of this copy of the library or of another: known by the mark
 * {@linkcode optimizerFactory} gives them, not by its name, which a minifier renames and which a
 * function of the caller's may share (`function adam() {}`); else `undefined`.
 *
 * @example
 * ```ts
 * import { factoryName, optimizerFactory } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const Xe = optimizerFactory(() => ({}), "adamw");
 * assert.equal(factoryName(Xe), "adamw");
 * function adamw() {} // the caller's own
 * assert.equal(factoryName(adamw), undefined);
 * ```
 */
export function factoryName(value: unknown): string | undefined {
  if (typeof value !== "function") return undefined;
  const name = (value as { [FACTORY_MARK]?: unknown })[FACTORY_MARK];
  return typeof name === "string" && FACTORIES.includes(name) ? name : undefined;
}

/**
 * Marks `factory`, the library's factory named `name`, for {@linkcode factoryName}, which then
 * knows it given uncalled where an app's minified bundle renamed it (`radam.name` then `"Xe"`),
 * and gives it an `init` that throws a TypeError saying to call it first (optax's
 * `optax.adam(lr).init(params)` written `radam.init(params)`: JavaScript's "radam.init is not a
 * function" before). Neither is enumerable, and neither is in its type. Returns `factory`.
 *
 * @example
 * ```ts
 * import { factoryName, optimizerFactory } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const Xe = optimizerFactory(() => ({}), "radam");
 * assert.equal(factoryName(Xe), "radam");
 * assert.throws(() => (Xe as unknown as { init(): void }).init(), /call it first, await radam/);
 * ```
 */
export function optimizerFactory<F extends (...args: never[]) => unknown>(
  factory: F,
  name: string,
): F {
  return Object.defineProperties(factory, {
    [FACTORY_MARK]: { value: name },
    init: {
      value() {
        throw new TypeError(
          `${name}.init: ${name} is the factory, not an optimizer: call it first, ` +
            `await ${name}({ lr: 1e-3 }).init(params)`,
        );
      },
    },
  });
}

/**
 * What to add to an error about `value` given where `call`'s optimizer goes, where it is an
 * optimizer's name (`tfOptimizer("adam")`, as tfjs's `model.compile({ optimizer: "adam" })`
 * takes one): the call to write with the library's factory of that name, or, for a name of
 * another library's optimizer (`"rmsprop"`), which factories there are. Empty for anything else.
 *
 * @example
 * ```ts
 * import { optimizerNameHint } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   optimizerNameHint("Adam", "tfOptimizer"),
 *   " (an optimizer's name: call its factory, tfOptimizer(adam()))",
 * );
 * assert.match(optimizerNameHint("rmsprop", "tfOptimizer"), /radam, adam, adamw, sgd, lion/);
 * assert.equal(optimizerNameHint(3, "tfOptimizer"), "");
 * ```
 */
export function optimizerNameHint(value: unknown, call: string): string {
  if (typeof value !== "string" || !/^\w+$/.test(value)) return "";
  const name = value.toLowerCase();
  if (name === "ranger" && call === "lookahead") {
    return " (an optimizer's name: ranger() is RAdam in LookAhead already)";
  }
  if (FACTORIES.includes(name)) {
    return ` (an optimizer's name: call its factory, ${call}(${name}()))`;
  }
  return ` (a name: this library's optimizers are made by its factories, ${
    FACTORIES.join(", ")
  }, e.g. ${call}(adam()))`;
}

/** The library's schedule makers, each with a call of it that makes a schedule. */
const SCHEDULE_MAKERS = new WeakMap<object, string>();

/**
 * Records `maker`, a function of the library that makes a learning-rate schedule, with `call`,
 * an example call of it, for {@linkcode scheduleMakerHint}; returns `maker`.
 *
 * @example
 * ```ts
 * import { scheduleMaker, scheduleMakerHint } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const halving = scheduleMaker((lr: number) => (t: number) => lr / t, "halving(1e-3)");
 * assert.match(scheduleMakerHint(halving), /call it, lr: halving\(1e-3\)/);
 * ```
 */
export function scheduleMaker<F extends (...args: never[]) => unknown>(maker: F, call: string): F {
  SCHEDULE_MAKERS.set(maker, call);
  return maker;
}

/**
 * What an error about `value` given as a learning rate says it got where it is one of the
 * library's schedule makers itself (`lr: linearWarmup`), not the schedule a call of it makes:
 * that, and to call it. Empty for anything else, a schedule of the caller's named alike included.
 *
 * @example
 * ```ts
 * import { scheduleMakerHint } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(scheduleMakerHint((t: number) => 1e-3 / t), "");
 * ```
 */
export function scheduleMakerHint(value: unknown): string {
  const maker = scheduleMakerOf(value);
  return maker === undefined
    ? ""
    : `${maker.name} itself, which makes a schedule: call it, lr: ${maker.call}`;
}

/**
 * Where `value` is one of the library's schedule makers ({@linkcode scheduleMaker}): its name
 * and the example call recorded with it; else undefined.
 *
 * @example
 * ```ts
 * import { scheduleMaker, scheduleMakerOf } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const halving = scheduleMaker((lr: number) => (t: number) => lr / t, "halving(1e-3)");
 * assert.deepEqual(scheduleMakerOf(halving), { name: "halving", call: "halving(1e-3)" });
 * assert.equal(scheduleMakerOf(halving(1e-3)), undefined);
 * ```
 */
export function scheduleMakerOf(value: unknown): { name: string; call: string } | undefined {
  const call = typeof value === "function" ? SCHEDULE_MAKERS.get(value) : undefined;
  return call === undefined ? undefined : { name: call.slice(0, call.indexOf("(")), call };
}

/** Functions that stand in for a schedule that was not stored, each with what it is. */
const SCHEDULE_STAND_INS = new WeakMap<object, string>();

/**
 * Records `standIn`, a function the library gives in place of a learning-rate schedule that
 * could not be stored (it throws where it is called), with `what`, what it is in words, for
 * {@linkcode scheduleStandInHint}; returns `standIn`. Settings may hold it, but no option takes
 * it: given as a schedule, it is refused at once, not at the first step that calls it.
 *
 * @example
 * ```ts
 * import { scheduleStandIn, scheduleStandInHint } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const missing = scheduleStandIn((_t: number): number => {
 *   throw new TypeError("not stored");
 * }, "a stand-in for a schedule that was not stored");
 * assert.match(scheduleStandInHint(missing), /^a stand-in for a schedule that was not stored/);
 * ```
 */
export function scheduleStandIn<F extends (t: number) => number>(standIn: F, what: string): F {
  SCHEDULE_STAND_INS.set(standIn, what);
  return standIn;
}

/**
 * What an error about `value` given as a learning-rate schedule (`lr`, a part of `chain()`)
 * says it got where it is one of the library's stand-ins ({@linkcode scheduleStandIn}): what it
 * is, and to pass the schedule itself. Empty for anything else.
 *
 * @example
 * ```ts
 * import { scheduleStandInHint } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(scheduleStandInHint((t: number) => 1e-3 / t), "");
 * ```
 */
export function scheduleStandInHint(value: unknown): string {
  const what = typeof value === "function" ? SCHEDULE_STAND_INS.get(value) : undefined;
  return what === undefined
    ? ""
    : `${what}, which throws where it is called: pass the schedule itself, the function the ` +
      "state was trained with (neither a checkpoint nor a saved config can store one)";
}

/**
 * What an error about an optimizer's `settings` given where they are read (`lookahead()`,
 * `tfOptimizer()`) says where their lr is one of the library's stand-ins
 * ({@linkcode scheduleStandIn}; `checkpointInfo`'s settings of a file saved with a schedule):
 * `whose lr is` what it is, and to pass the schedule itself. Empty for any other settings.
 *
 * @example
 * ```ts
 * import { heldStandInHint, scheduleStandIn } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const lr = scheduleStandIn((_t: number): number => {
 *   throw new TypeError("not stored");
 * }, "a stand-in");
 * assert.match(heldStandInHint({ hyperparameters: { lr } }), /^whose lr is a stand-in, which/);
 * assert.equal(heldStandInHint({ hyperparameters: { lr: 1e-3 } }), "");
 * ```
 */
export function heldStandInHint(settings: unknown): string {
  const hyperparameters = typeof settings === "object" && settings !== null
    ? (settings as { hyperparameters?: unknown }).hyperparameters
    : undefined;
  const lr = typeof hyperparameters === "object" && hyperparameters !== null
    ? (hyperparameters as { lr?: unknown }).lr
    : undefined;
  const hint = scheduleStandInHint(lr);
  return hint === "" ? "" : `whose lr is ${hint}`;
}

/**
 * The error of `step(state, grads, more)`, which takes two arguments (JavaScript drops a third,
 * silently), where `more` is clearly a mistake: a learning rate given there (`step(state, grads,
 * 1e-3)`, `{ lr }`) is the optimizer's option or a schedule's; tensors there (optax's
 * `update(grads, state, params)`, or `step(state, params, grads)`) are the parameters, which the
 * state holds itself. Empty for anything else, dropped as before: an index (an integer ≥ 0) or a
 * key, as a callback is given them (`grads.reduce(step, state)`, RxJS's `scan(step, state)`).
 *
 * @example
 * ```ts
 * import { extraStepArgumentMessage } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(extraStepArgumentMessage(1e-3), /^step takes two arguments.*got a third, 0\.001/);
 * assert.match(extraStepArgumentMessage({ w: new Float32Array(2) }), /state\.params/);
 * assert.equal(extraStepArgumentMessage(1), ""); // reduce's index
 * ```
 */
export function extraStepArgumentMessage(extra: unknown): string {
  const object = typeof extra === "object" && extra !== null;
  const lr = (typeof extra === "number" && !(Number.isSafeInteger(extra) && extra >= 0)) ||
    (object && "lr" in extra);
  const tensors = extra instanceof Float32Array ||
    (object && Object.values(extra).some((v) => v instanceof Float32Array));
  const hint = lr
    ? " (a learning rate is the optimizer's option, radam({ lr }); to change it as training goes, " +
      "give a schedule, radam({ lr: (t) => … }), which each step calls)"
    : tensors
    ? " (tensors: a state holds its parameters, state.params, which each step updates; pass the " +
      "gradients alone, step(state, grads))"
    : "";
  return hint === "" ? "" : "step takes two arguments, step(state, grads), and would drop the " +
    `others, got a third, ${described(extra)}${hint}`;
}

/**
 * The error of `saveState(state, path)`, a file's path (a string, or a `URL`) given as a second
 * argument, which JavaScript drops, silently, where the caller thinks a file written: that
 * `saveState` writes none, and how its bytes are written. Empty for anything else (an index and
 * an array, as `states.map(saveState)` passes them, dropped as before).
 *
 * @example
 * ```ts
 * import { savePathMessage } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(savePathMessage("model.safetensors"), /^saveState writes no file/);
 * assert.equal(savePathMessage(0), "");
 * ```
 */
export function savePathMessage(extra: unknown): string {
  if (typeof extra !== "string" && !(typeof URL === "function" && extra instanceof URL)) return "";
  // (Its own string: a bundler folds constant strings into a template literal beside it.)
  const write = "await Deno.writeFile(path, await saveState(state)) " +
    "(Node: writeFile of node:fs/promises)";
  return "saveState writes no file: it takes the state alone and returns a Promise of the " +
    "checkpoint's bytes, got a second argument, " + described(extra) +
    "; write the bytes yourself, " + write;
}

/** What each read resolves to, and how a part of it is taken, as its error writes them. */
const READ_RESULTS = {
  readParams: ["copies of every tensor, by name", "const { w } = await readParams(state)"],
  readMoments: [
    "copies of every moment, by moment name then tensor name",
    "const { exp_avg } = await readMoments(state); exp_avg.w",
  ],
  readSlowWeights: [
    "copies of every slow weight, by tensor name",
    "const { w } = await readSlowWeights(state)",
  ],
} as const;

/**
 * The error of `call(state, more)` (`readParams`, `readMoments`, `readSlowWeights`), which takes
 * the state alone (JavaScript drops the others, silently, where the caller thinks a tensor or a
 * moment picked, `readParams(state, "w")`): what it takes and resolves to, and how a part of
 * that is taken. Empty where `more` is `undefined`, or an index (an integer ≥ 0), as
 * `states.map(readParams)` passes one (with the array), dropped as before; and where it is the
 * key under which `collection`, the third argument, holds `state`, as a callback over an object
 * or a `Map` is passed (lodash's `_.mapValues(states, readParams)`, `map.forEach`).
 *
 * @example
 * ```ts
 * import { readArgumentMessage } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(readArgumentMessage("readParams", "w"), /^readParams takes the state alone/);
 * assert.equal(readArgumentMessage("readParams", 0), "");
 * const state = {};
 * assert.equal(readArgumentMessage("readParams", "gen", state, { gen: state }), "");
 * ```
 */
export function readArgumentMessage(
  call: keyof typeof READ_RESULTS,
  more: unknown,
  state?: unknown,
  collection?: unknown,
): string {
  if (more === undefined || (Number.isSafeInteger(more) && (more as number) >= 0)) return "";
  if (state !== undefined && heldAt(collection, more) === state) return "";
  const [result, part] = READ_RESULTS[call];
  return `${call} takes the state alone, ${call}(state), and would drop the others, got a ` +
    `second argument, ${described(more)}: it returns a Promise of ${result}; take the ones ` +
    `you want from that, ${part}`;
}

/** What `collection` (an object or a `Map`) holds under `key`; `undefined` where that throws. */
function heldAt(collection: unknown, key: unknown): unknown {
  try {
    if (collection instanceof Map) return collection.get(key);
    if (typeof key !== "string" && typeof key !== "symbol") return undefined;
    if (typeof collection !== "object" || collection === null) return undefined;
    return Object.hasOwn(collection, key) ? Reflect.get(collection, key) : undefined;
  } catch {
    return undefined; // a getter or a Proxy that throws: the argument is refused, as before
  }
}
