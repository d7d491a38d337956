/**
 * The call an optimizer factory given its options as positional arguments should have been
 * (`radam(0.001, 0.9)`, as tfjs's `tf.train.adam(lr, beta1, beta2, epsilon)` or PyTorch's
 * `Adam(params, lr, betas, eps, weight_decay)` take them), and lookahead's (`lookahead(opt, 5,
 * 0.5)`): its options object, each argument under the name it has there.
 *
 * @module
 */
import { described } from "../base/_errors.ts";
import { keysOf } from "../base/schema.ts";
import type { Origin } from "./origins.ts";

/**
 * The options each factory's positional arguments after `lr` stand for, in order, where another
 * library takes them so: PyTorch's (and tfjs's, whose β1 and β2 come as two numbers, then ε);
 * lucidrains' Lion's; Ranger's own (alpha, k, threshold, then Adam's); PyTorch's SGD (tfjs's
 * `momentum(lr, momentum, useNesterov)`: a boolean second is `nesterov`).
 */
const POSITIONAL: Readonly<Record<string, readonly string[]>> = {
  radam: ["betas", "eps", "weightDecay"],
  adam: ["betas", "eps", "weightDecay"],
  adamw: ["betas", "eps", "weightDecay"],
  lion: ["betas", "weightDecay"],
  ranger: ["alpha", "k", "threshold", "betas", "eps", "weightDecay"],
  sgd: ["momentum", "dampening", "weightDecay", "nesterov"],
};

/**
 * The call of `origin`'s factory with `lr` and the positional arguments that followed it
 * (`rest`) as one options object, by name: `radam(0.001, 0.9)` is `radam({ lr: 0.001, betas:
 * [0.9, 0.999] })` (β2 its default, as the other library's), `adam(0.001, 0.9, 0.99, 1e-7)` is
 * `adam({ lr: 0.001, betas: [0.9, 0.99], eps: 1e-7 })`. Arguments it cannot place (more than
 * the other library takes, or of another type) are said to go by name too.
 */
function positionalCall(origin: Origin, lr: number, rest: readonly unknown[]): string {
  const given = rest.slice(0, lastDefined(rest) + 1);
  const { fields, left } = placed(orderOf(origin, given), given, origin);
  return `${origin.name}({ ${[`lr: ${lr}`, ...fields].join(", ")} })${left}`;
}

/** The options `origin`'s positional arguments after `lr`, `given`, stand for, in order. */
function orderOf(origin: Origin, given: readonly unknown[]): string[] {
  const known = keysOf(origin.options);
  if (origin.lookahead) known.push("k", "alpha");
  if (origin.name === "sgd" && typeof given[1] === "boolean") return ["momentum", "nesterov"];
  return (POSITIONAL[origin.name] ?? []).filter((key) => known.includes(key));
}

/**
 * The message for arguments (`rest`) given after an options object (`adam({ lr: 1e-3 }, 0.9)`:
 * they would be ignored) to `origin`'s factory, or to lookahead's where `origin` is undefined:
 * that options go in the one object, with those of `rest` it can place by name. Empty where
 * each is undefined, or where they are the index and the array `map` passes. After undefined,
 * a lone whole number may be the index `Array.from({ length: n }, adam)` passes, or the first
 * positional option (`sgd(undefined, 0)`, the momentum): the message says what to write for each
 * (a β1 only for a number in [0, 1), Ranger's alpha in [0, 1]: `adam(undefined, 2)` can only be
 * an index).
 *
 * @example
 * ```ts
 * import { extraArgumentsMessage } from "./positional.ts";
 * import REGISTRY from "./registry.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   extraArgumentsMessage(REGISTRY.optimizers.adam, {}, [0.9]),
 *   "Options of adam go in one object, got 0.9 after it (adam({ ...options, betas: [0.9, 0.999] }))",
 * );
 * assert.equal(extraArgumentsMessage(REGISTRY.optimizers.adam, {}, [undefined]), "");
 * ```
 */
export function extraArgumentsMessage(
  origin: Origin | undefined,
  options: unknown,
  rest: readonly unknown[],
): string {
  const given = rest.slice(0, lastDefined(rest) + 1);
  if (given.length === 0 || mapped(options, rest)) return "";
  const name = origin?.name ?? "lookahead";
  const got = `Options of ${name} go in one object, got ${
    described(given.find((x) => x !== undefined))
  } after ${options === undefined ? "undefined" : "it"}`;
  const order = origin === undefined ? ["alpha"] : orderOf(origin, given);
  const { fields } = placed(order, given, origin);
  if (origin !== undefined && indexed(options, rest)) {
    // (`sgd(undefined, 0)` is written as Array.from's call is: the number may be either; the
    // option only where it can be one, else the call offered would throw)
    const what = order[0] === "betas" ? "β1" : order[0];
    const index = `as Array.from({ length: n }, ${name}) passes one: make each in a function ` +
      `of your own, Array.from({ length: n }, () => ${name}({ … }))`;
    const range = BOUNDED[order[0]];
    if (range !== undefined && !range.holds(rest[0] as number)) {
      return `${got} (${rest[0]} is no ${what}, which ${name}'s second argument would be, ` +
        `${range.text}: if it is an index, ${index})`;
    }
    const option = fields.length === 0 ? "" : `if it is the ${what}, ${name}({ ${fields[0]} }); `;
    return `${got} (${option}if it is an index, ${index})`;
  }
  const call = origin === undefined ? "lookahead(optimizer, " : `${name}(`;
  // (the options given, spread; none given, the options the arguments stand for alone)
  const spread = options === undefined ? [] : ["...options"];
  const hint = fields.length === 0
    ? options === undefined ? `name it in the options, ${call}{ … })` : "name it in that object"
    : `${call}{ ${[...spread, ...fields].join(", ")} })`;
  return `${got} (${hint})`;
}

/**
 * The first positional options whose range a whole number of Array.from's indices can leave (the
 * β1 of `betas`, Ranger's `alpha`): such an index is offered as the option only within it.
 */
const BOUNDED: Readonly<Record<string, { text: string; holds: (n: number) => boolean }>> = {
  betas: { text: "in [0, 1)", holds: (n) => n < 1 },
  alpha: { text: "in [0, 1]", holds: (n) => n <= 1 },
};

/**
 * Whether `rest`, given after `options` undefined, is what `Array.from`'s map function is given
 * after the element of an array-like without elements (`Array.from({ length: n }, adam)`): an
 * index alone.
 */
function indexed(options: unknown, rest: readonly unknown[]): boolean {
  const [index] = rest;
  return options === undefined && rest.length === 1 && Number.isSafeInteger(index) &&
    (index as number) >= 0;
}

/**
 * The hint of a number (`first`) given for lookahead's options, and the arguments after it
 * (`rest`), as one options object: PyTorch's `Lookahead(optimizer, k, alpha)` where `first` can
 * be a step count (`lookahead(opt, 5, 0.5)`), else Ranger's own `Lookahead(optimizer, alpha, k)`
 * (`lookahead(opt, 0.5, 6)`).
 *
 * @example
 * ```ts
 * import { lookaheadHint } from "./positional.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   lookaheadHint(5, [0.5]),
 *   "k is an option: lookahead(optimizer, { k: 5, alpha: 0.5 })",
 * );
 * assert.equal(
 *   lookaheadHint(0.5, [6]),
 *   "alpha is an option: lookahead(optimizer, { alpha: 0.5, k: 6 })",
 * );
 * ```
 */
export function lookaheadHint(first: number, rest: readonly unknown[]): string {
  const order = fits("k", first) ? ["k", "alpha"] : ["alpha", "k"];
  const given = [first, ...rest.slice(0, lastDefined(rest) + 1)];
  const { fields, left } = placed(order, given);
  return `${order[0]} is an option: lookahead(optimizer, { ${fields.join(", ")} })${left}`;
}

/**
 * The options of `given` under the names of `order`, in turn (an undefined argument left out),
 * up to the first that cannot be one (`left`: then to name the rest too). `betas` takes a pair
 * of numbers, or two places of numbers, tfjs's β1 and β2 (`origin`'s default for one left
 * undefined).
 */
function placed(
  order: readonly string[],
  given: readonly unknown[],
  origin?: Origin,
): { fields: string[]; left: string } {
  const fields: string[] = [];
  let at = 0;
  for (const key of order) {
    if (at >= given.length) break;
    const value = given[at];
    if (key === "betas" && origin !== undefined) {
      // Not a pair: tfjs's β1 and β2, two places, either left undefined (PyTorch passes none).
      const next = given[at + 1];
      const two = !Array.isArray(value) && (next === undefined || typeof next === "number");
      if (value !== undefined || (two && next !== undefined)) {
        const betas = betasOf(origin, value, next);
        if (betas === undefined) break;
        fields.push(`betas: [${betas.join(", ")}]`);
      }
      at += two ? 2 : 1;
      continue;
    }
    if (value !== undefined && !fits(key, value)) break;
    if (value !== undefined) fields.push(`${key}: ${value}`);
    at++;
  }
  return { fields, left: at < given.length ? "; name the other arguments too" : "" };
}

/**
 * The hint of a number given for `origin`'s options (`radam(0.001)`: how a learning rate is
 * passed), and of the positional arguments after it (`rest`: the options object they stand for,
 * `positionalCall`; none where they are an array's index and the array, as `map` passes
 * them).
 *
 * @example
 * ```ts
 * import { positionalHint } from "./positional.ts";
 * import REGISTRY from "./registry.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   positionalHint(REGISTRY.optimizers.sgd, 0.1, [0.9, true]),
 *   "options go in one object, by name, not in order: sgd({ lr: 0.1, momentum: 0.9, nesterov: true })",
 * );
 * ```
 */
export function positionalHint(origin: Origin, lr: number, rest: readonly unknown[]): string {
  const given = mapped(lr, rest) ? [] : rest;
  const call = positionalCall(origin, lr, given);
  return lastDefined(given) < 0
    ? `pass a learning rate as ${call}`
    : `options go in one object, by name, not in order: ${call}`;
}

/**
 * Whether `rest` is what `Array.prototype.map` (and `forEach`, `filter`…) passes after `element`
 * (a learning rate or an options object) of the array: its index and the array
 * (`[0.001, 0.0003].map(radam)`, `[{ lr: 1e-3 }].map(adam)`), no options.
 */
function mapped(element: unknown, rest: readonly unknown[]): boolean {
  const [index, array] = rest;
  return rest.length === 2 && Array.isArray(array) && Number.isSafeInteger(index) &&
    (index as number) >= 0 && (index as number) < array.length &&
    array[index as number] === element;
}

/** Whether `value` can be option `key`'s: `nesterov` a boolean, `k` a step count, else a number. */
function fits(key: string, value: unknown): boolean {
  if (key === "nesterov") return typeof value === "boolean";
  if (key === "k") return Number.isSafeInteger(value) && (value as number) >= 1;
  return typeof value === "number";
}

/** The index of the last argument of `args` that is not undefined (−1: none). */
function lastDefined(args: readonly unknown[]): number {
  for (let i = args.length - 1; i >= 0; i--) if (args[i] !== undefined) return i;
  return -1;
}

/**
 * `betas` of `value` (PyTorch's pair, of two numbers) or of `value` and `next` (tfjs's β1 and
 * β2 numbers; either the factory's default where it is not given); undefined where `value` is
 * neither.
 */
function betasOf(origin: Origin, value: unknown, next: unknown): unknown[] | undefined {
  if (Array.isArray(value)) {
    return value.length === 2 && value.every((b) => typeof b === "number") ? value : undefined;
  }
  if (value !== undefined && typeof value !== "number") return undefined;
  const spec = origin.options.find((s) => s.key === "betas");
  const fallback =
    (Object.hasOwn(origin.defaults, "betas")
      ? origin.defaults.betas
      : spec?.default) as readonly number[];
  return [value ?? fallback[0], typeof next === "number" ? next : fallback[1]];
}

/**
 * The hint of what was given for `origin`'s options where a learning rate was meant, not as a
 * number: a number as text (`adam(Deno.env.get("LR"))`: to convert it, and the call
 * {@linkcode positionalHint} writes with it), or a function (Keras's `Adam(schedule)`: that a
 * schedule is the option `lr`). Else empty.
 *
 * @example
 * ```ts
 * import { bareOptionsHint } from "./positional.ts";
 * import REGISTRY from "./registry.ts";
 * import assert from "node:assert/strict";
 *
 * const adam = REGISTRY.optimizers.adam;
 * assert.match(bareOptionsHint(adam, "0.01", []), /adam\(\{ lr: 0\.01 \}\)\)$/);
 * assert.match(bareOptionsHint(adam, () => 0.01, []), /adam\(\{ lr: schedule \}\)\)$/);
 * assert.equal(bareOptionsHint(adam, {}, []), "");
 * ```
 */
export function bareOptionsHint(
  origin: Origin,
  options: unknown,
  rest: readonly unknown[],
): string {
  if (typeof options === "function") {
    return ` (a learning-rate schedule, (t) => number, is the option lr: ${origin.name}({ lr: ` +
      "schedule }))";
  }
  if (typeof options !== "string" || options.trim() === "") return "";
  const lr = Number(options);
  if (!Number.isFinite(lr)) return "";
  return ` (a number as text: convert it, Number(value), and ${positionalHint(origin, lr, rest)})`;
}
