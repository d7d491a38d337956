/**
 * The one place the bench reads the registry of optimizers (core/registry.ts): which optimizers get a
 * row of their own, what each moves per parameter, and the factory that makes each by name. A
 * rule added to the registry (and its factory to mod.ts) gets its row with no bench edit.
 *
 * @module
 */
import * as library from "../../mod.ts";
import REGISTRY from "../../core/registry.ts";

const OPTIMIZERS = REGISTRY.optimizers as Readonly<
  Record<string, (typeof REGISTRY.optimizers)[keyof typeof REGISTRY.optimizers]>
>;

/** The optimizer every other row of the bench times. */
export const BASE_OPTIMIZER = "radam";

/** An optimizer factory of mod.ts, for the options every rule takes. */
export type Factory = (options: library.CommonOptions) => library.Optimizer<unknown>;

/**
 * The optimizers with a row of their own besides RAdam's: one per element loop (kernel) in the
 * registry, named by the first optimizer that runs it. Optimizers of one loop (RAdam, Adam,
 * AdamW, Ranger) move the same bytes through the same code, so RAdam's rows stand for them all.
 */
export function ruleRowNames(): string[] {
  const timed = new Set([OPTIMIZERS[BASE_OPTIMIZER].rule]);
  const names: string[] = [];
  for (const [name, { rule }] of Object.entries(OPTIMIZERS)) {
    if (timed.has(rule)) continue;
    timed.add(rule);
    names.push(name);
  }
  return names;
}

/**
 * The bytes a step of optimizer `name` moves per parameter: it reads the parameter, the gradient
 * and each moment, and writes the parameter and each moment back, 4 bytes each.
 */
export function bytesPerParameter(name: string): number {
  const { hyperparameters } = factoryOf(name)({}).settings;
  const moments = OPTIMIZERS[name].rule.moments(hyperparameters).length;
  return 4 * ((2 + moments) + (1 + moments));
}

/** The factory of optimizer `name`: mod.ts exports one of each registry name. */
export function factoryOf(name: string): Factory {
  const factory = (library as Record<string, unknown>)[name];
  if (!Object.hasOwn(OPTIMIZERS, name) || typeof factory !== "function") {
    throw new TypeError(`"${name}" is not an optimizer of the registry with a factory in mod.ts`);
  }
  return factory as Factory;
}
