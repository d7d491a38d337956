/**
 * What an optimizer is made of: its definition in the registry (core/registry.ts: its rule, the
 * options it takes, its defaults) with its rule's tag, the place of the rule in the registry,
 * which the kernels dispatch on; and, for any settings value the library made, the definition it
 * was made from (so that a state, a checkpoint or the TensorFlow.js adapter given only settings
 * finds its rule).
 *
 * @module
 */
import type { Hyperparameters, Moment, Rule } from "../base/rule.ts";
import type { Schema } from "../base/schema.ts";
import type { Settings } from "../base/settings.ts";

/**
 * An optimizer of the registry: the rule it runs, the options it takes (default: the rule's own
 * schema), the defaults its factory sets (of the rule's options or the common ones, e.g. `gc`),
 * and whether LookAhead always wraps it (Ranger; its options then take `k` and `alpha` too).
 */
export interface OptimizerDefinition {
  // deno-lint-ignore no-explicit-any
  readonly rule: Rule<any>;
  readonly options?: Schema;
  readonly defaults?: Readonly<Record<string, unknown>>;
  readonly lookahead?: boolean;
}

/** An optimizer as registered: its name, definition (options resolved) and its rule's tag. */
export interface Origin {
  /** The optimizer's name, as its factory and checkpoints name it. */
  readonly name: string;
  readonly rule: Rule;
  /** The value of the scalar block's `rule` word: the rule's index in the registry's rules. */
  readonly tag: number;
  readonly options: Schema;
  readonly defaults: Readonly<Record<string, unknown>>;
  readonly lookahead: boolean;
}

/** The registry: every optimizer by name, and the rules they run, in tag order. */
export interface Registry<K extends string> {
  readonly optimizers: Readonly<Record<K, Origin>>;
  /** The rules, each once, in the order the table first names them: rule `i` has tag `i`. */
  readonly rules: readonly Rule[];
}

/**
 * The registry of a table of optimizers: each rule gets the tag of its first appearance, so tags
 * are unique by construction. Throws if two different rules share a name (their generated
 * kernel names would collide) or a name is not lower-case letters and digits.
 *
 * @example
 * ```ts
 * import { registryOf } from "./origins.ts";
 * import { ADAM } from "../rules/adam.ts";
 * import { LION } from "../rules/lion.ts";
 * import assert from "node:assert/strict";
 *
 * const registry = registryOf({ adam: { rule: ADAM }, lion: { rule: LION }, adamw: { rule: ADAM } });
 * assert.deepEqual(registry.rules.map((r) => r.name), ["adam", "lion"]);
 * assert.equal(registry.optimizers.adamw.tag, 0);
 * assert.throws(() => registryOf({ a: { rule: ADAM }, b: { rule: { ...ADAM } } }), /two rules/);
 * ```
 */
export function registryOf<K extends string>(
  table: Readonly<Record<K, OptimizerDefinition>>,
): Registry<K> {
  const rules: Rule[] = [];
  const optimizers = {} as Record<K, Origin>;
  for (const name of Object.keys(table) as K[]) {
    const definition = table[name];
    const rule = definition.rule as Rule;
    let tag = rules.indexOf(rule);
    if (tag < 0) {
      if (!/^[a-z][a-z0-9]*$/.test(rule.name)) {
        throw new Error(
          `Rule name ${JSON.stringify(rule.name)}: use lower-case letters and digits`,
        );
      }
      if (rules.some((r) => r.name === rule.name)) {
        throw new Error(`The registry has two rules named ${JSON.stringify(rule.name)}`);
      }
      tag = rules.push(rule) - 1;
    }
    optimizers[name] = Object.freeze({
      name,
      rule,
      tag,
      options: definition.options ?? rule.options,
      defaults: definition.defaults ?? {},
      lookahead: definition.lookahead ?? false,
    });
  }
  return Object.freeze({ optimizers: Object.freeze(optimizers), rules: Object.freeze(rules) });
}

/** The origin of each settings value the library made (see {@linkcode remember}). */
const ORIGINS = new WeakMap<object, Origin>();

/** Records that `settings` was made from `origin`; returns `settings`. */
export function remember<S extends Settings<unknown>>(settings: S, origin: Origin): S {
  ORIGINS.set(settings, origin);
  return settings;
}

/**
 * The optimizer `settings` was made from; a TypeError for settings this copy of the library did
 * not make (a copy, an object written by hand, or settings of another copy of the library).
 */
export function originOf(settings: Settings<unknown>): Origin {
  const origin = typeof settings === "object" && settings !== null
    ? ORIGINS.get(settings)
    : undefined;
  if (origin === undefined) {
    throw new TypeError(
      "Expected the settings of an optimizer made by this library (e.g. radam().settings), not a " +
        "copy, nor those of another copy of this library loaded beside this one (e.g. another " +
        "version: use one copy)",
    );
  }
  return origin;
}

/** The rule `settings` runs. */
export function ruleOf(settings: Settings<unknown>): Rule {
  return originOf(settings).rule;
}

/** The moments a state of `settings` keeps (its rule's, with its hyperparameters). */
export function momentsOf(settings: Settings<unknown>): readonly Moment[] {
  return ruleOf(settings).moments(settings.hyperparameters as Hyperparameters);
}
