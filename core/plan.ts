/**
 * Laying out a state's arena for its settings: the parameter group of each tensor, the format
 * of the moments (32-bit: base/arena.ts `planArena`; 8-bit: base/arena_compact.ts, which may put
 * the tensors in another order than given), LookAhead's slow weights.
 *
 * @module
 */
import { type ArenaLayout, planArena, type PlanOptions } from "../base/arena.ts";
import { planCompactArena } from "../base/arena_compact.ts";
import type { Settings } from "../base/settings.ts";
import { checkSavableNames } from "./checkpoint_tensors.ts";
import { momentsOf } from "./origins.ts";

/**
 * The group (0: none, else 1 + index into `config.groups`) of each tensor: the first group
 * whose `match` accepts its name. Undefined when the configuration has no groups.
 */
export function groupsOf(
  config: Settings<unknown>,
  names: readonly string[],
): number[] | undefined {
  const groups = config.loop.groups;
  if (groups.length === 0) return undefined;
  return names.map((name) =>
    1 +
    groups.findIndex((g) =>
      g.match instanceof RegExp ? (g.match.lastIndex = 0, g.match.test(name)) : g.match(name)
    )
  );
}

/**
 * The options of an arena plan for a configuration (slow weights, parameter groups, the rule's
 * moments and which are non-negative), on any backend: the CPU's (`planState`) and the GPU's.
 */
export function planOptionsOf(config: Settings<unknown>, names: readonly string[]): PlanOptions {
  const moments = momentsOf(config);
  return {
    slow: config.lookahead !== undefined,
    groups: groupsOf(config, names),
    moments: moments.length,
    nonNegative: moments.map((m) => m.nonNegative),
  };
}

/**
 * Lays out the arena a configuration needs (slow weights, parameter groups, the format of its
 * moments). With 8-bit states the layout's order of the tensors (`layout.names`) may differ
 * from `names`' (base/arena_compact.ts).
 */
export function planState(
  config: Settings<unknown>,
  names: readonly string[],
  lengths: readonly number[],
): ArenaLayout {
  const options = planOptionsOf(config, names);
  const layout = config.run.states === "8bit"
    ? planCompactArena(names, lengths, options)
    : planArena(names, lengths, options);
  checkSavableNames(config, layout);
  return layout;
}

/**
 * The index in `layout.names` of each of `names` (the order given to `init`, or a checkpoint's
 * `tensor_order`), in their order.
 */
export function layoutIndices(layout: ArenaLayout, names: readonly string[]): number[] {
  const at = new Map(layout.names.map((name, i) => [name, i]));
  return names.map((name) => at.get(name)!);
}

/** `values` (one per name of `names`) in the order of `layout.names`. */
export function inLayoutOrder<T>(
  layout: ArenaLayout,
  names: readonly string[],
  values: readonly T[],
): T[] {
  const byName = new Map(names.map((name, i) => [name, values[i]]));
  return layout.names.map((name) => byName.get(name)!);
}
