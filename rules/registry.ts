/**
 * The optimizers by name: the rule each one runs and the defaults its factory sets. Factories
 * (mod.ts) and checkpoints (core/checkpoint.ts, the `optimizer` metadata) both read this table;
 * a new rule adds its line here.
 *
 * @module
 */
import type { Rule, RuleKind } from "../core/rule.ts";
import { ADAM, RADAM } from "./adam.ts";
import { LION } from "./lion.ts";

/** An optimizer: a rule and the defaults that differ from the rule's own. */
export interface OptimizerDefinition {
  readonly rule: Rule;
  /** Defaults of the rule's options or the common ones (e.g. `gc`), by key. */
  readonly defaults: Readonly<Record<string, unknown>>;
}

/** The rule of each kind. */
export const RULES: Readonly<Record<RuleKind, Rule>> = Object.freeze({
  radam: RADAM,
  adam: ADAM,
  lion: LION,
});

/** The rule a configuration runs. */
export function ruleOf(config: { readonly kind: RuleKind }): Rule {
  return RULES[config.kind];
}

/** Every optimizer a factory makes or a checkpoint may name (LookAhead wraps any of them). */
export const OPTIMIZERS: Readonly<Record<string, OptimizerDefinition>> = Object.freeze({
  radam: { rule: RADAM, defaults: {} },
  adam: { rule: ADAM, defaults: {} },
  adamw: { rule: ADAM, defaults: { weightDecay: 1e-2, decoupledWeightDecay: true } },
  ranger: {
    rule: RADAM,
    defaults: { betas: [0.95, 0.999], eps: 1e-5, decoupledWeightDecay: true, gc: true },
  },
  lion: { rule: LION, defaults: {} },
});
