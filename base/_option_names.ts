/**
 * What an error adds for an unknown option that is another library's name of one here, or an
 * optimizer's option given to a call that does not take it: which option it is here, and where
 * it goes. Private; the error messages themselves are worded in `_errors.ts`.
 *
 * @module
 */

/**
 * Names other libraries give options of this one (tfjs, Keras, PyTorch, optax; `max_norm`,
 * the argument of PyTorch's `clip_grad_norm_`, `max_grad_norm` Hugging Face's; LookAhead's in
 * optax and TensorFlow Addons, `sync_period` and `slow_step_size`, and in Ranger's original
 * code, with its `use_gc` and `N_sma_threshhold`), by this one's.
 */
const OTHER_NAMES: Readonly<Record<string, string>> = {
  learningRate: "lr",
  learning_rate: "lr",
  beta1: "betas",
  beta2: "betas",
  beta_1: "betas",
  beta_2: "betas",
  b1: "betas",
  b2: "betas",
  epsilon: "eps",
  useNesterov: "nesterov",
  clipnorm: "clipGradNorm",
  clipNorm: "clipGradNorm",
  max_norm: "clipGradNorm",
  maxNorm: "clipGradNorm",
  max_grad_norm: "clipGradNorm",
  global_clipnorm: "clipGradNorm",
  globalClipnorm: "clipGradNorm",
  schedule: "lr",
  lr_schedule: "lr",
  lrSchedule: "lr",
  sync_period: "k",
  syncPeriod: "k",
  la_steps: "k",
  slow_step_size: "alpha",
  slowStepSize: "alpha",
  la_alpha: "alpha",
  use_gc: "gc",
  N_sma_threshhold: "threshold",
};

/**
 * Keras's names of the moving average's settings (and their camelCase), which the TensorFlow.js
 * adapter takes in its option `ema`: what each is there, and how it is written.
 */
const KERAS_EMA: Readonly<Record<string, readonly [string, string]>> = {
  use_ema: ["ema", "ema: true, or ema: { momentum, overwriteFrequency }"],
  useEma: ["ema", "ema: true, or ema: { momentum, overwriteFrequency }"],
  ema_momentum: ["ema's momentum", "ema: { momentum }"],
  emaMomentum: ["ema's momentum", "ema: { momentum }"],
  ema_overwrite_frequency: ["ema's overwriteFrequency", "ema: { overwriteFrequency }"],
  emaOverwriteFrequency: ["ema's overwriteFrequency", "ema: { overwriteFrequency }"],
};

/** The option `key` names here: this library's name of another's, else `key` in camelCase. */
function ownName(key: string): string {
  if (Object.hasOwn(OTHER_NAMES, key)) return OTHER_NAMES[key];
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * What to add to the error for an unknown option `key` that is the name, in another library or
 * in snake_case, of one of `known`: which one it is here.
 *
 * @example
 * ```ts
 * import { renamedHint } from "./_option_names.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(renamedHint("learningRate", ["lr"]), " (learningRate is lr here)");
 * assert.equal(renamedHint("weight_decay", ["weightDecay"]), " (weight_decay is weightDecay here)");
 * assert.equal(renamedHint("ema_momentum", ["ema"]), " (ema_momentum is ema's momentum here: ema: { momentum })");
 * assert.equal(renamedHint("lrr", ["lr"]), "");
 * ```
 */
export function renamedHint(key: string, known: readonly string[]): string {
  if (Object.hasOwn(KERAS_EMA, key) && known.includes("ema")) {
    const [what, write] = KERAS_EMA[key];
    return ` (${key} is ${what} here: ${write})`;
  }
  const name = ownName(key);
  if (name === key || !known.includes(name)) return "";
  if (PER_TENSOR_CLIPPING.includes(key)) {
    return ` (${key}, Keras's, clips each tensor's gradient by its own norm, which this library ` +
      "does not: clipGradNorm clips all the gradients together by their global norm, as Keras's " +
      "global_clipnorm and PyTorch's clip_grad_norm_ do; to clip each by its own, scale it " +
      "before the step)";
  }
  return name === "betas" ? ` (${key} is in betas here: [β1, β2])` : ` (${key} is ${name} here)`;
}

/**
 * Keras's name (and its camelCase) of clipping each tensor's gradient by its own norm, which
 * this library's `clipGradNorm` does not: it clips them all by their global norm, as Keras's
 * `global_clipnorm` does. An error that points to `clipGradNorm` for either says so.
 */
const PER_TENSOR_CLIPPING: readonly string[] = ["clipnorm", "clipNorm"];

/** What an error that points to `clipGradNorm` for `key` adds where `key` is Keras's `clipnorm`. */
function globalNote(key: string): string {
  return PER_TENSOR_CLIPPING.includes(key)
    ? ", which clips all the gradients together by their global norm (Keras's global_clipnorm), " +
      "not each tensor's by its own as Keras's clipnorm does"
    : "";
}

/** Keras's name (and its camelCase) of clipping each gradient's elements to [−v, v]. */
const CLIPPING_BY_VALUE: readonly string[] = ["clipvalue", "clipValue"];

/**
 * What to add to the error for an unknown option `key` where it is Keras's `clipvalue` (or
 * `clipValue`): that this library has no clipping by value, only `clipGradNorm`'s by the global
 * norm, and what to do instead. Else empty.
 *
 * @example
 * ```ts
 * import { clipValueHint } from "./_option_names.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(clipValueHint("clipvalue"), /^ \(clipvalue, Keras's, clips each gradient's /);
 * assert.match(clipValueHint("clipValue"), /clamp each gradient's elements to \[−v, v\] before/);
 * assert.equal(clipValueHint("clipnorm"), "");
 * ```
 */
export function clipValueHint(key: string): string {
  if (!CLIPPING_BY_VALUE.includes(key)) return "";
  return ` (${key}, Keras's, clips each gradient's elements to [−v, v], which this library does ` +
    "not: its only clipping is clipGradNorm, of all the gradients together by their global " +
    "norm; to clip by value, clamp each gradient's elements to [−v, v] before the step, " +
    "g[i] = Math.min(v, Math.max(-v, g[i])))";
}

/**
 * What to add to the error for an unknown option `key` given beside an optimizer already made
 * (to its `init`, to `lookahead`, to `tfOptimizer`) where `key`, or another library's name of
 * it, is an option of that optimizer's factory (one of `factoryKeys`): that it goes there, in
 * the call `call` writes with the option (named as here); for Keras's `clipvalue`,
 * {@linkcode clipValueHint}'s. Else empty.
 *
 * @example
 * ```ts
 * import { factoryOptionHint } from "./_option_names.ts";
 * import assert from "node:assert/strict";
 *
 * const call = (option: string) => `radam({ ${option} })`;
 * assert.equal(
 *   factoryOptionHint("backend", ["lr", "backend"], call),
 *   " (backend is an option of the optimizer: radam({ backend }))",
 * );
 * assert.equal(
 *   factoryOptionHint("learningRate", ["lr"], call),
 *   " (learningRate is an option of the optimizer, lr there: radam({ lr }))",
 * );
 * assert.equal(factoryOptionHint("devise", ["lr"], call), "");
 * ```
 */
export function factoryOptionHint(
  key: string,
  factoryKeys: readonly string[],
  call: (option: string) => string,
): string {
  const name = ownName(key);
  if (!factoryKeys.includes(name)) return clipValueHint(key);
  const there = name === key ? "" : `, ${name} there`;
  return ` (${key} is an option of the optimizer${there}: ${call(name)}${globalNote(key)})`;
}

/**
 * What to add to the error for an unknown option `key` of a function whose options (`known`)
 * are not an optimizer's (a store's, a training loop's): another name of one of `known`, as
 * {@linkcode renamedHint} says; else, for a learning rate (`lr`) or another library's name of
 * an optimizer's option (`learningRate`, `beta1`, `epsilon`…), that it is the optimizer's, to
 * be given to its factory (LookAhead's `k` and `alpha` to `lookahead`; as the option
 * `optimizer`, where `known` has it). Else empty.
 *
 * @example
 * ```ts
 * import { misplacedHint } from "./_option_names.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   misplacedHint("lr", ["optimizer", "init"]),
 *   " (lr is an option of the optimizer: optimizer: radam({ lr }))",
 * );
 * assert.equal(
 *   misplacedHint("learningRate", ["model"]),
 *   " (learningRate is an optimizer's option, lr there, as in radam({ lr }): not one of these)",
 * );
 * assert.equal(misplacedHint("learningRate", ["lr"]), " (learningRate is lr here)");
 * assert.equal(
 *   misplacedHint("sync_period", ["optimizer"]),
 *   " (sync_period is an option of the optimizer, k there: optimizer: lookahead(radam(), { k }))",
 * );
 * assert.equal(misplacedHint("modle", ["model"]), "");
 * ```
 */
export function misplacedHint(key: string, known: readonly string[]): string {
  const renamed = renamedHint(key, known);
  if (renamed !== "") return renamed;
  const name = ownName(key);
  if (name !== "lr" && !Object.hasOwn(OTHER_NAMES, key)) return "";
  const there = name === key ? "" : `, ${name} there`;
  // (LookAhead's k and alpha are ranger's or lookahead's: radam({ k }) is unknown.)
  const example = name === "lr"
    ? "radam({ lr })"
    : name === "k" || name === "alpha"
    ? `lookahead(radam(), { ${name} })`
    : "";
  return known.includes("optimizer")
    ? ` (${key} is an option of the optimizer${there}: optimizer: ${example || "radam({ … })"}${
      globalNote(key)
    })`
    : ` (${key} is an optimizer's option${there}${
      example ? `, as in ${example}` : ""
    }: not one of these${globalNote(key)})`;
}

/**
 * What to add to the error for an unknown option `key` given to an optimizer's factory where it
 * is an option of `init` (`device`, as the README's WebGPU example passes it, or `from`): that it
 * goes there, and for `device` that under `tfOptimizer` TensorFlow.js's own device is used. Else
 * empty.
 *
 * @example
 * ```ts
 * import { initOptionHint } from "./_option_names.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(initOptionHint("device", "radam"), /^ \(device is an option of init: /);
 * assert.match(initOptionHint("from", "adam"), /adam\(\{ … \}\)\.init\(params, \{ from: state \}\)/);
 * assert.equal(initOptionHint("devise", "radam"), "");
 * ```
 */
export function initOptionHint(key: string, name: string): string {
  if (key === "from") {
    return ` (from is an option of init: ${name}({ … }).init(params, { from: state }))`;
  }
  if (key !== "device") return "";
  return ` (device is an option of init: ${name}({ … }).init(params, { device }); ` +
    'under tfOptimizer, the steps run on TensorFlow.js\'s own device, tf.setBackend("webgpu"))';
}

/**
 * What to add to the error for an unknown option `key` (given `value`) of the factory `name`,
 * where `key` is LookAhead's `k` or `alpha`, or another library's name of one (optax's and
 * TensorFlow Addons' `sync_period` and `slow_step_size`, Ranger's `la_steps` and `la_alpha`),
 * and that factory does not wrap its optimizer in LookAhead: the call that does, `lookahead`'s,
 * and for `radam` `ranger`'s (RAdam in LookAhead, with gradient centralization), each with the
 * other options given (`options`, all those the factory was given: the factory's own in its
 * call, LookAhead's in `lookahead`'s). Else empty.
 * A bare `alpha` is also the learning rate as the Adam paper (its step size α) and Chainer's
 * `Adam(alpha=…)` name it, which LookAhead's `alpha` would take as well (0.001 keeps the slow
 * weights all but still): that hint names `lr` first.
 *
 * @example
 * ```ts
 * import { lookaheadOptionHint } from "./_option_names.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   lookaheadOptionHint("sync_period", "adam", 6),
 *   " (sync_period is LookAhead's k, an option of lookahead, which wraps an optimizer: " +
 *     "lookahead(adam(), { k: 6 }))",
 * );
 * assert.match(
 *   lookaheadOptionHint("sync_period", "radam", 6, { lr: 1e-3, sync_period: 6 }),
 *   /: lookahead\(radam\(\{ lr: 0\.001 \}\), \{ k: 6 \}\), or ranger\(\{ lr: 0\.001, k: 6 \}\), /,
 * );
 * assert.match(lookaheadOptionHint("k", "radam", 6), /, or ranger\(\{ k: 6 \}\), Ranger: RAdam in/);
 * assert.match(lookaheadOptionHint("alpha", "adam", 1e-3), /^ \(alpha, .* is lr here: adam\(\{ lr: 0\.001 \}\);/);
 * assert.equal(lookaheadOptionHint("beta", "adam", 6), "");
 * ```
 */
export function lookaheadOptionHint(
  key: string,
  name: string,
  value: unknown,
  options?: Readonly<Record<string, unknown>>,
): string {
  const option = ownName(key);
  if ((option !== "k" && option !== "alpha") || !/^\w+$/.test(name)) return "";
  const entries: [string, unknown][] = Object.entries(options ?? { [key]: value });
  const isLookahead = ([k]: [string, unknown]) => ownName(k) === "k" || ownName(k) === "alpha";
  const own = entries.filter((e) => !isLookahead(e));
  const lookahead = entries.filter(isLookahead).map(([k, v]): [string, unknown] => [ownName(k), v]);
  const given = objectText(lookahead);
  const ranger = name === "radam"
    ? `, or ranger(${objectText([...own, ...lookahead])}), Ranger: RAdam in LookAhead with ` +
      "gradient centralization"
    : "";
  const wrap = `an option of lookahead, which wraps an optimizer: ` +
    `lookahead(${name}(${own.length === 0 ? "" : objectText(own)}), ${given})`;
  if (key === "alpha") {
    const lr = objectText([["lr", value], ...own.filter(([k]) => k !== "lr")]);
    return ` (alpha, where it is the learning rate, as the Adam paper's step size α and Chainer's ` +
      `Adam(alpha) are, is lr here: ${name}(${lr}); LookAhead's alpha is ${wrap}${ranger})`;
  }
  const what = option === key ? "" : `LookAhead's ${option}, `;
  return ` (${key} is ${what}${wrap}${ranger})`;
}

/**
 * Options as a hint writes them in a call: `{ lr: 0.001, k: 6 }`; a value other than a finite
 * number, a boolean or a short list of numbers by its name alone (`{ lr }`), and past three
 * options `…` for the rest.
 */
function objectText(entries: readonly (readonly [string, unknown])[]): string {
  const shown = entries.slice(0, 3).map(([key, value]) => {
    const short = (typeof value === "number" && Number.isFinite(value)) ||
      typeof value === "boolean" ||
      (Array.isArray(value) && value.length <= 4 &&
        value.every((x) => typeof x === "number" && Number.isFinite(x)));
    const text = Array.isArray(value) ? `[${value.join(", ")}]` : String(value);
    return /^\w+$/.test(key) ? (short ? `${key}: ${text}` : key) : "…";
  });
  if (entries.length > 3) shown.push("…");
  return `{ ${shown.join(", ")} }`;
}

/**
 * PyTorch's optimizer options with no counterpart here, and Keras's `decay` (a schedule here), by
 * what to say of each.
 */
const PYTORCH_ONLY: Readonly<Record<string, string>> = {
  amsgrad: "AMSGrad is not implemented here: Adam and AdamW are PyTorch's with amsgrad=False",
  foreach:
    "PyTorch's choice of kernel: here every step is one fused kernel over all tensors; drop it",
  fused:
    "PyTorch's choice of kernel: here every step is one fused kernel over all tensors; drop it",
  capturable: "a flag of PyTorch's CUDA graphs, with no counterpart here; drop it",
  differentiable: "a flag of PyTorch's autograd, with no counterpart here; drop it",
  params: "the parameters go to init: NAME({ lr }).init(params)",
  // (Keras's, of its optimizers before Keras 3: a decay of the learning rate, not a weight decay)
  decay: "Keras's decay of the learning rate, lr / (1 + decay·iterations), is a schedule here " +
    "of the 1-based step t, NAME({ lr: (t) => lr0 / (1 + decay * (t - 1)) }); a weight decay " +
    "is the option weightDecay",
};

/**
 * What to add to the error for an unknown option `key` of an optimizer's factory that is one of
 * PyTorch's optimizer options with no counterpart here (`amsgrad`, `foreach`, `fused`, …, and
 * `params`, a param group's key), or Keras's `decay` of the learning rate, for the factory
 * `name`: what it is, and what to do. Else empty.
 *
 * @example
 * ```ts
 * import { pytorchOptionHint } from "./_option_names.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(pytorchOptionHint("foreach", "adam"), /one fused kernel over all tensors; drop it/);
 * assert.equal(pytorchOptionHint("params", "adam"), " (the parameters go to init: adam({ lr }).init(params))");
 * assert.equal(pytorchOptionHint("lrr", "adam"), "");
 * ```
 */
export function pytorchOptionHint(key: string, name: string): string {
  return Object.hasOwn(PYTORCH_ONLY, key) ? ` (${PYTORCH_ONLY[key].replace("NAME", name)})` : "";
}

/**
 * What to add to the error for an unknown option `key` of the factory `name` that is an option
 * of the TensorFlow.js adapter (`gradientAccumulationSteps`, `ema`), or Keras's name of one
 * (Keras's optimizers take `gradient_accumulation_steps` and `use_ema`): that it goes to
 * `tfOptimizer`, in the call to write (the optimizer as `call` writes it, by default `name`'s
 * factory). Else empty.
 *
 * @example
 * ```ts
 * import { adapterOptionHint } from "./_option_names.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   adapterOptionHint("use_ema", "adam"),
 *   " (use_ema is an option of tfOptimizer, ema there: tfOptimizer(adam({ … }), { ema: true }))",
 * );
 * assert.equal(adapterOptionHint("lrr", "adam"), "");
 * ```
 */
export function adapterOptionHint(
  key: string,
  name: string,
  call: string = `${name}({ … })`,
): string {
  const ema = Object.hasOwn(KERAS_EMA, key) ? KERAS_EMA[key] : undefined;
  const here = ema ? ema[0] : ownName(key);
  if (ema === undefined && here !== "gradientAccumulationSteps" && here !== "ema") return "";
  const write = ema ? (key === "use_ema" || key === "useEma" ? "ema: true" : ema[1]) : here;
  const there = here === key ? "" : `, ${here} there`;
  return ` (${key} is an option of tfOptimizer${there}: tfOptimizer(${call}, { ${write} }))`;
}
