/**
 * Option schemas: a list of option specs (key, default, check, how a checkpoint stores it) that
 * drives validation, defaults, the unknown-key check and checkpoint serialization alike, for a
 * rule's hyperparameters and for the options every rule shares.
 *
 * @module
 */
import { described, optionError } from "./_errors.ts";
import { scheduleMakerHint, scheduleStandInHint } from "./_call_hints.ts";
import { renamedHint } from "./_option_names.ts";
import type { LearningRate } from "./options.ts";

/** How a checkpoint holds an option. */
export type Stored =
  /** Always written, and a checkpoint lacking it is refused. */
  | "required"
  /** Always written; a checkpoint lacking it gets the default (options added later). */
  | "always"
  /** Written only when it differs from the default. */
  | "unlessDefault"
  /** Not written (how the state runs, not what it computes). */
  | "never";

/** One option: its key, default, validation and checkpoint storage. */
export interface OptionSpec {
  /** The key, as passed to the factory. */
  readonly key: string;
  /** The value when the option is not given (a factory may override it). */
  readonly default: unknown;
  /**
   * Validates a given value (TypeError/RangeError naming the option) and returns it resolved;
   * `resolved` holds the fields of the options before it in the schema.
   */
  readonly check: (value: unknown, resolved: Readonly<Record<string, unknown>>) => unknown;
  /** How a checkpoint holds it. */
  readonly stored: Stored;
  /** The resolved fields it sets (default `{ [key]: value }`; `betas` sets beta1 and beta2). */
  readonly fields?: (value: unknown) => Record<string, unknown>;
  /** Its checkpoint value from the resolved fields (default: the field named `key`). */
  readonly store?: (resolved: Readonly<Record<string, unknown>>) => unknown;
}

/** A schema: option specs in validation order. */
export type Schema = readonly OptionSpec[];

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null;
}

/**
 * The largest finite f32, 3.4028234663852886e38: the kernels read every number option (and the
 * per-step scalars computed from them) as an f32, which would round a larger one to Infinity.
 */
export const F32_MAX = 3.4028234663852886e38;

/**
 * Returns `value` if it is a finite number inside the given bounds (−0 as 0: a checkpoint's JSON
 * holds it as 0, so that a state run on −0 would resume on another value); else throws a
 * TypeError (not a number) or a RangeError (not finite, or out of bounds) naming the option.
 */
export function checkNumber(
  name: string,
  value: unknown,
  min: number,
  max: number,
  maxInclusive: boolean,
): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw optionError(name, "a finite number", value);
  }
  const above = maxInclusive ? value > max : value >= max;
  // f32's range, the kernels' and not the option's own, is named only where it is passed.
  if (max === F32_MAX && above) throw optionError(name, `≤ ${max} (the largest f32)`, value);
  if (value < min || above) {
    const upper = max === Infinity || max === F32_MAX
      ? ""
      : ` and ${maxInclusive ? "≤" : "<"} ${max}`;
    throw optionError(name, `≥ ${min}${upper}`, value);
  }
  return value + 0;
}

/**
 * Validates a learning rate value (number ≥ 0, or schedule): a TypeError for a schedule maker
 * given uncalled, or a stand-in for a schedule that was not stored (`checkpointInfo`'s), which
 * would throw at the first step.
 */
export function checkLearningRate(value: unknown): LearningRate {
  if (typeof value === "function") {
    const hint = scheduleMakerHint(value) || scheduleStandInHint(value);
    if (hint !== "") {
      throw new TypeError(`Option lr must be a number or a schedule (t) => lr, got ${hint}`);
    }
    return value as (t: number) => number;
  }
  return checkNumber("lr", value, 0, Infinity, true);
}

/** Returns `value` if it is a boolean; else throws a TypeError naming the option. */
export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw optionError(name, "a boolean", value, false);
  return value;
}

/**
 * A number option in `[min, max]` (or `[min, max)` when `maxInclusive` is false); a
 * hyperparameter the kernels read takes `max` {@linkcode F32_MAX}.
 */
export function numberOption(
  key: string,
  fallback: number | undefined,
  stored: Stored,
  min = 0,
  max = Infinity,
  maxInclusive = true,
): OptionSpec {
  return {
    key,
    default: fallback,
    stored,
    check: (v) => checkNumber(key, v, min, max, maxInclusive),
  };
}

/** A boolean option. */
export function booleanOption(key: string, fallback: boolean, stored: Stored): OptionSpec {
  return { key, default: fallback, stored, check: (value) => checkBoolean(key, value) };
}

/** An option taking one of `values`. */
export function choiceOption(
  key: string,
  values: readonly string[],
  fallback: string,
  stored: Stored,
): OptionSpec {
  return {
    key,
    default: fallback,
    stored,
    check(value) {
      if (!values.includes(value as string)) {
        throw optionError(key, `one of ${values.join(", ")}`, value, typeof value === "string");
      }
      return value;
    },
  };
}

/**
 * The learning rate, `lr`: a number ≥ 0 or a schedule; a checkpoint stores a schedule as null.
 */
export function lrOption(fallback: number): OptionSpec {
  return {
    key: "lr",
    default: fallback,
    stored: "required",
    check: checkLearningRate,
    store: (h) => typeof h.lr === "function" ? null : h.lr,
  };
}

/** `betas: [β1, β2]`, each in [0, 1), resolved as the fields `beta1` and `beta2`. */
export function betasOption(fallback: readonly [number, number]): OptionSpec {
  return {
    key: "betas",
    default: fallback,
    stored: "required",
    check(value) {
      if (!Array.isArray(value) || value.length !== 2) {
        throw optionError("betas", "an array of two numbers [β1, β2]", value, false);
      }
      return [
        checkNumber("betas[0]", value[0], 0, 1, false),
        checkNumber("betas[1]", value[1], 0, 1, false),
      ];
    },
    fields: (v) => ({ beta1: (v as number[])[0], beta2: (v as number[])[1] }),
    store: (h) => [h.beta1, h.beta2],
  };
}

/** The keys of `schema`. */
export function keysOf(schema: Schema): string[] {
  return schema.map((s) => s.key);
}

/**
 * Throws a TypeError unless `options` is an object (or undefined) whose keys are all in
 * `known`; returns it (an empty object for undefined). `numberHint` says, of a number given for
 * the options (`adam(1e-3)`, as `tf.train.adam(1e-3)` is written), how it is passed: e.g. "pass a
 * learning rate as adam({ lr: 0.001 })", put in parentheses after the error. `elsewhere` says where an
 * unknown key that is no other name of one of `known` goes instead, given the key and its value
 * (empty: nowhere known).
 */
export function checkKeys(
  options: unknown,
  known: readonly string[],
  owner: string,
  numberHint?: (value: number) => string,
  elsewhere?: (key: string, value: unknown) => string,
): Record<string, unknown> {
  if (options === undefined) return {};
  if (!isObject(options) || Array.isArray(options)) {
    const hint = typeof options === "number" && numberHint !== undefined
      ? ` (${numberHint(options)})`
      : "";
    throw new TypeError(`Options of ${owner} must be an object, got ${described(options)}${hint}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(
        `Unknown option ${key} for ${owner}; expected one of ${known.join(", ")}${
          renamedHint(key, known) || (elsewhere?.(key, options[key]) ?? "")
        }`,
      );
    }
  }
  return options;
}

/**
 * Resolves `options` (already key-checked) through `schema`: each given value checked, each
 * missing one taken from `defaults` (a factory's) or the spec's default. Returns the fields.
 * Checks see `context` (fields resolved by another schema) and the fields before them.
 */
export function resolveSchema(
  schema: Schema,
  options: Readonly<Record<string, unknown>>,
  defaults: Readonly<Record<string, unknown>> = {},
  context: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of schema) {
    const given = options[spec.key];
    const value = given === undefined
      ? (Object.hasOwn(defaults, spec.key) ? defaults[spec.key] : spec.default)
      : spec.check(given, { ...context, ...out });
    Object.assign(out, spec.fields ? spec.fields(value) : { [spec.key]: value });
  }
  return out;
}

/** The options a checkpoint stores of resolved fields `resolved`, by the schema's rules. */
export function storeSchema(
  schema: Schema,
  resolved: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of schema) {
    if (spec.stored === "never") continue;
    const value = spec.store ? spec.store(resolved) : resolved[spec.key];
    if (spec.stored === "unlessDefault" && value === spec.default) continue;
    out[spec.key] = value;
  }
  return out;
}

/** The keys a checkpoint must hold. */
export function requiredKeys(schema: Schema): string[] {
  return schema.filter((s) => s.stored === "required").map((s) => s.key);
}
