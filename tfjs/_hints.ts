/**
 * Checks of the shapes a first `applyGradients` call gets wrong, where the call would otherwise
 * step nothing, silently, or refuse with a message that does not say what to do: an element of
 * a `NamedTensor[]` that holds no `tensor` (a variable itself, `{ name, gradient }`), and one
 * `{ name, tensor }` given without its array. Private to the adapter.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { described, isOptimizerValue } from "../base/_errors.ts";
import type { Holder } from "../core/held.ts";

/**
 * Throws a TypeError where the element `g` (number `i` of a `NamedTensor[]`, named `name`) has
 * no `tensor` key: a variable given as its own gradient (`[variable]`), or the gradient under
 * another key (`{ name, gradient }`). tfjs leaves a `null` or `undefined` tensor out of the step,
 * so without this the step changes nothing and says nothing. An element with a `tensor` key,
 * `null` included, passes.
 *
 * @example
 * ```ts
 * import { checkHasTensor } from "./_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => checkHasTensor({ name: "w", gradient: 1 }, 0, "w"), TypeError);
 * checkHasTensor({ name: "w", tensor: null }, 0, "w"); // left out of the step, as in tfjs
 * ```
 */
export function checkHasTensor(g: object, i: number, name: string): void {
  if ("tensor" in g) return;
  const variable = `variable ${JSON.stringify(name)}`;
  if (g instanceof tf.Variable) {
    throw new TypeError(
      `Gradient ${i} is the ${variable} itself, not its gradient: give ` +
        "{ name: variable.name, tensor: gradient } (a NamedTensor)",
    );
  }
  const keys = Object.keys(g).filter((k) => k !== "name");
  throw new TypeError(
    `Gradient ${i} (of ${variable}) has no tensor: expected { name, tensor } (a NamedTensor), ` +
      `got ${keys.length === 0 ? "only a name" : `the keys name, ${keys.slice(0, 4).join(", ")}`}`,
  );
}

/**
 * What to add to the error of element `g` of a `NamedTensor[]` whose `name` is not a string:
 * where it is a variable or a tensor (`{ name: variable, tensor }`), to give the variable's
 * name; where `g` is a bare tensor (`tf.grads`' list), to key it by its variable's name. Empty
 * for anything else.
 *
 * @example
 * ```ts
 * import { nameHint } from "./_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(nameHint({ name: 3 }), "");
 * ```
 */
export function nameHint(g: unknown): string {
  if (g instanceof tf.Tensor) {
    return " (a gradient without its variable's name, as tf.grads gives them: key each by its " +
      "variable's name, { name: variable.name, tensor }, or pass tf.variableGrads(f).grads)";
  }
  const name = typeof g === "object" && g !== null ? (g as { name?: unknown }).name : undefined;
  return name instanceof tf.Tensor
    ? ` (its name is ${described(name)}: give the variable's name, { name: variable.name, tensor })`
    : "";
}

/**
 * Throws a TypeError where the record `map` given to `applyGradients` is one `{ name, tensor }`
 * (a `NamedTensor` without its array): its keys would be taken for variables named "name" and
 * "tensor".
 *
 * @example
 * ```ts
 * import { checkNotOneNamedTensor } from "./_hints.ts";
 *
 * checkNotOneNamedTensor({ "dense/kernel": null }); // a NamedTensorMap passes
 * ```
 */
export function checkNotOneNamedTensor(map: Readonly<Record<string, unknown>>): void {
  if (
    typeof map.name === "string" && Object.hasOwn(map, "tensor") &&
    Object.keys(map).length === 2
  ) {
    throw new TypeError(
      `applyGradients was given one { name, tensor } (the gradient of variable ${
        JSON.stringify(map.name)
      }): pass an array of them, optimizer.applyGradients([{ name, tensor }])`,
    );
  }
}

/**
 * Throws a TypeError where the weight `w` given to `setWeights` holds a disposed tensor: most
 * often one of a set `getWeights` gave, which the optimizer disposed at its next `getWeights`
 * (`model.save` with `includeOptimizer` makes one) or at its `dispose()`. Without this, tfjs's
 * bare "Tensor is disposed." named nothing.
 *
 * @example
 * ```ts
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { checkWeightLive } from "./_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const tensor = tf.tensor1d([1, 2]);
 * checkWeightLive({ name: "w/m", tensor });
 * tensor.dispose();
 * assert.throws(() => checkWeightLive({ name: "w/m", tensor }), TypeError);
 * ```
 */
export function checkWeightLive(w: { name: unknown; tensor: tf.Tensor }): void {
  if (!w.tensor.isDisposed) return;
  throw new TypeError(
    `Optimizer weight ${JSON.stringify(w.name)} was disposed (the tensors getWeights gives ` +
      "are the optimizer's, valid until its next getWeights call, which model.save with " +
      "includeOptimizer makes, or its dispose(): tf.clone them to keep them longer)",
  );
}

/**
 * The adapter as the holder of the state `optimizer.state` gives (see core/held.ts): `step` and
 * `dispose` of it say to use the optimizer's own calls, and a read or save of it that the
 * optimizer ended meanwhile (it replaced or disposed the state) says so, and how to save.
 *
 * @example
 * ```ts
 * import { ADAPTER_HOLDER } from "./_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(ADAPTER_HOLDER.disposeWith, "optimizer.dispose()");
 * ```
 */
export const ADAPTER_HOLDER: Holder = Object.freeze({
  name: "a TensorFlow.js optimizer's (optimizer.state of tfOptimizer)",
  stepWith: "the optimizer's applyGradients (model.fit, optimizer.minimize)",
  disposeWith: "optimizer.dispose()",
  endedBy: "replaced (setWeights, loadState; after a loadState, its next step or " +
    "setLearningRate) or disposed it",
  readWith: "save the optimizer's state with await optimizer.getWeights() (as model.save with " +
    "includeOptimizer does), or await saveState(optimizer.state) before setWeights, loadState " +
    "or dispose",
  checkpointWith: Object.freeze({
    save: "await saveState(optimizer.state)",
    resume: "await optimizer.loadState(bytes)",
  }),
});

/**
 * The error of `optimizer.lr = x` on a TensorFlow.js optimizer of this library (the option's
 * name, as `radam({ lr })` writes it; Keras's `optimizer.lr`), where the assignment added a
 * property that no step reads, silently: the learning rate to set is `learningRate`.
 */
export const LR_SET_MESSAGE = "A TensorFlow.js optimizer has no lr to set (the assignment " +
  "would change nothing): set optimizer.learningRate = x, as for tfjs's own optimizers, or " +
  "call optimizer.setLearningRate(x); the next step reads it";

/**
 * Makes an assignment of `lr` on instances of the class of `prototype` throw a TypeError of
 * {@linkcode LR_SET_MESSAGE} (a setter only, left out of the class's type: reading `lr` gives
 * `undefined`, as before).
 *
 * @example
 * ```ts
 * import { refuseLrSet } from "./_hints.ts";
 * import assert from "node:assert/strict";
 *
 * class Optimizer {}
 * refuseLrSet(Optimizer.prototype);
 * assert.throws(() => ((new Optimizer() as { lr?: number }).lr = 0.1), /learningRate = x/);
 * ```
 */
export function refuseLrSet(prototype: object): void {
  Object.defineProperty(prototype, "lr", {
    set() {
      throw new TypeError(LR_SET_MESSAGE);
    },
    configurable: true,
  });
}

/**
 * What a TensorFlow.js optimizer of this library reports that no assignment changes, and what to
 * write instead where there is something to write (see {@linkcode refuseReadOnlySets}).
 */
const READ_ONLY: Readonly<Record<string, string>> = {
  iterations: "; each step counts one: to go on at a run's step count, restore its weights, " +
    "await optimizer.setWeights(weights) (their iter), or its checkpoint, " +
    "await optimizer.loadState(bytes)",
  state: "; to resume from a checkpoint, await optimizer.loadState(bytes)",
  backend: '; it follows the optimizer\'s option backend, tfOptimizer(radam({ backend: "js" ' +
    "})), and tfjs's backend, await tf.setBackend(name)",
  settings: "; they are fixed when the optimizer is made, tfOptimizer(radam({ lr })): set the " +
    "learning rate with " +
    "optimizer.learningRate = x, or optimizer.setLearningRate(x)",
  optimizerName: "",
  skippedSteps: "",
  accumulatedBatches: "",
  averages: "",
};

/**
 * The error of an assignment to what a TensorFlow.js optimizer of this library reports
 * (`optimizer.iterations = 5`): that it is read-only and would change nothing, which a
 * sloppy-mode script's did, silently (strict mode's was JavaScript's "has only a getter"), and
 * what to write instead.
 *
 * @example
 * ```ts
 * import { readOnlyMessage } from "./_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(readOnlyMessage("state"), /^Cannot set optimizer\.state: .*loadState\(bytes\)$/);
 * ```
 */
export function readOnlyMessage(key: string): string {
  return `Cannot set optimizer.${key}: what a TensorFlow.js optimizer reports is read-only ` +
    `(the assignment would change nothing)${READ_ONLY[key] ?? ""}`;
}

/**
 * Gives each getter of `prototype` that {@linkcode readOnlyMessage} knows (`iterations`, `state`,
 * `backend`, `settings`, ...) a setter that throws its TypeError, in sloppy mode too (left out of
 * the class's type, which keeps them read-only). A name without a getter there, or that has a
 * setter already, is an Error: the class changed and this list must follow.
 *
 * @example
 * ```ts
 * import { refuseReadOnlySets } from "./_hints.ts";
 * import assert from "node:assert/strict";
 *
 * class Reports {
 *   get iterations() { return 3; }
 *   get state() { return undefined; }
 *   get backend() { return "js"; }
 *   get settings() { return {}; }
 *   get optimizerName() { return "adam"; }
 *   get skippedSteps() { return 0; }
 *   get accumulatedBatches() { return 0; }
 *   get averages() { return undefined; }
 * }
 * refuseReadOnlySets(Reports.prototype);
 * const reports = new Reports();
 * assert.throws(() => new Function("o", "o.iterations = 5;")(reports), /setWeights/);
 * assert.equal(reports.iterations, 3);
 * ```
 */
export function refuseReadOnlySets(prototype: object): void {
  for (const key of Object.keys(READ_ONLY)) {
    const own = Object.getOwnPropertyDescriptor(prototype, key);
    if (own?.get === undefined || own.set !== undefined) {
      throw new Error(`refuseReadOnlySets: ${key} is not a getter without a setter here`);
    }
    const set = () => {
      throw new TypeError(readOnlyMessage(key));
    };
    Object.defineProperty(prototype, key, { ...own, set });
  }
}

/** The error of a disposed optimizer used. */
export const DISPOSED_MESSAGE =
  "This TensorFlow.js optimizer was disposed; make a new one with tfOptimizer()";

/**
 * What to add to the error of a callback's factory (`skippedStepsCallback`, `emaCallback`,
 * named `call`) given a model where the optimizer goes: to pass its optimizer; given an optimizer
 * of the library (`radam()`), not the `tfOptimizer` of it that the model was compiled with: to
 * pass that one (written with the optimizer's factory, `opt` for a wrapped one). Else empty.
 *
 * @example
 * ```ts
 * import { modelGivenHint } from "./_hints.ts";
 * import assert from "node:assert/strict";
 *
 * const model = { compile() {}, fit() {} };
 * assert.equal(
 *   modelGivenHint(model, "emaCallback"),
 *   " (a model: pass its optimizer, emaCallback(model.optimizer))",
 * );
 * assert.equal(modelGivenHint(3, "emaCallback"), "");
 * const lion = { name: "lion", settings: {}, init() {} };
 * assert.match(modelGivenHint(lion, "emaCallback"), /tfOptimizer\(lion\(\), \{ ema: true \}\)/);
 * ```
 */
export function modelGivenHint(value: unknown, call: string): string {
  const model = value as { compile?: unknown; fit?: unknown } | null;
  if (isOptimizerValue(value)) {
    const { name } = value as { name?: unknown };
    const made = typeof name === "string" && /^\w+$/.test(name) ? `${name}()` : "opt";
    const options = call === "emaCallback" ? ", { ema: true }" : "";
    return " (an optimizer of this library: pass the TensorFlow.js optimizer made of it, the one " +
      `model.compile was given, const optimizer = tfOptimizer(${made}${options}); ` +
      `${call}(optimizer), or ${call}(model.optimizer))`;
  }
  return typeof model === "object" && model !== null && typeof model.compile === "function" &&
      typeof model.fit === "function"
    ? ` (a model: pass its optimizer, ${call}(model.optimizer))`
    : "";
}

/**
 * Makes the callback factory `factory`, named `name`, given to `model.fit`'s callbacks itself
 * (`callbacks: [skippedStepsCallback]`), reject `fit` before its first batch with a TypeError
 * saying to call it, where tfjs-layers took it as a callback with no hooks and trained without
 * it, silently: tfjs reads a callback's `onTrainBegin`, which this gives the function (not
 * enumerable, and out of its type).
 *
 * @example
 * ```ts
 * import { refuseUncalled } from "./_hints.ts";
 * import assert from "node:assert/strict";
 *
 * function makeCallback() {
 *   return {};
 * }
 * refuseUncalled(makeCallback, "makeCallback");
 * const hooks = makeCallback as unknown as { onTrainBegin(): void };
 * assert.throws(() => hooks.onTrainBegin(), /callbacks: \[makeCallback\(optimizer\)\]/);
 * ```
 */
export function refuseUncalled(factory: object, name: string): void {
  Object.defineProperty(factory, "onTrainBegin", {
    value: () => {
      throw new TypeError(
        `${name} was given to model.fit's callbacks itself: call it with the optimizer, ` +
          `callbacks: [${name}(optimizer)]`,
      );
    },
    configurable: true,
  });
}
