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
import type { ParamGroup } from "../base/options.ts";
import { checkSavableNames } from "./checkpoint_tensors.ts";
import { momentsOf } from "./origins.ts";
import { checkTensorNames, SINGLE_TENSOR_NAME } from "../base/tensors.ts";

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
  return names.map((name) => 1 + groups.findIndex((g) => accepts(g.match, name)));
}

/** Whether a group's `match` accepts the tensor name `name` (a RegExp from its start each time). */
function accepts(match: ParamGroup["match"], name: string): boolean {
  return match instanceof RegExp ? (match.lastIndex = 0, match.test(name)) : match(name);
}

/** How many tensor names {@linkcode checkGroupsMatch}'s error lists. */
const LISTED_NAMES = 5;

/** A group's `match` as an error shows it: the RegExp's source, or the function's name. */
function matchText(match: ParamGroup["match"]): string {
  if (match instanceof RegExp) return String(match);
  // (An arrow function written in the group takes the property's name, `match`.)
  return match.name && match.name !== "match" ? `the function ${match.name}` : "a function";
}

/**
 * Throws a TypeError naming the first parameter group (by its index in option `groups` and its
 * `match`) that takes none of the tensors `names` (a state's, at `init`): its `match` accepts
 * none of them, or only tensors an earlier group takes. Such a group does nothing, so a typo in
 * its pattern would silently train every tensor at the optimizer's own settings (PyTorch refuses
 * an empty parameter group too). The error lists the tensors' names. Not called where a state's
 * tensors are a part of a model's (the TensorFlow.js adapter: a step's variables, frozen layers
 * left out), nor for a checkpoint (`loadState`): the adapter's checkpoints hold such a group, to
 * apply once its variables train again, and a file's groups take the tensors its map gives them,
 * with no `match` to mistype.
 *
 * @example
 * ```ts
 * import { adamw } from "@optim/radam";
 * import assert from "node:assert/strict";
 * await assert.rejects(
 *   () => adamw({ groups: [{ match: /\.bais$/, weightDecay: 0 }] }).init({
 *     "fc.weight": new Float32Array(4),
 *     "fc.bias": new Float32Array(2),
 *   }),
 *   TypeError,
 * );
 * ```
 */
export function checkGroupsMatch(config: Settings<unknown>, names: readonly string[]): void {
  const groups = config.loop.groups;
  const of = groupsOf(config, names);
  if (of === undefined) return;
  const taken = new Set(of);
  const empty = groups.findIndex((_, g) => !taken.has(g + 1));
  if (empty < 0) return;
  const { match } = groups[empty];
  const shadowed = names.some((name) => accepts(match, name));
  const shown = names.slice(0, LISTED_NAMES).map((name) => JSON.stringify(name)).join(", ");
  const more = names.length > LISTED_NAMES ? ` and ${names.length - LISTED_NAMES} more` : "";
  throw new TypeError(
    `Option groups[${empty}] (match ${matchText(match)}) takes no tensor: ${
      shadowed
        ? "each tensor it matches is taken by an earlier group (a tensor takes the first group that matches it)"
        : names.length === 1 && names[0] === SINGLE_TENSOR_NAME
        ? 'it does not match "", the name of params given as a bare Float32Array (give them as a record of named tensors, { "fc.weight": w })'
        : `it matches none of the tensors' names (${shown}${more})`
    }; such a group does nothing, and the tensors it was meant for train at the optimizer's own settings (check its match, or remove the group)`,
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
 * from `names`' (base/arena_compact.ts). Throws, as `init` does, where a name is one no
 * checkpoint can hold (`checkTensorNames`: longer than a tensor's name may be, which
 * `loadState` refuses, or `"__proto__"`), or where two of its tensors' would collide
 * (`checkSavableNames`): a state planned here (the TensorFlow.js adapter's, at its step) can be
 * saved and loaded back.
 */
export function planState(
  config: Settings<unknown>,
  names: readonly string[],
  lengths: readonly number[],
): ArenaLayout {
  checkTensorNames(names);
  return planNamedState(config, names, lengths);
}

/**
 * {@linkcode planState} of `names` that `checkTensorNames` has checked already (`init`'s params,
 * a checkpoint's `tensor_order`, a state's order): the same arena, the names not measured again.
 *
 * @example
 * ```ts
 * import { planNamedState, planState } from "./plan.ts";
 * import { radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const config = radam().settings;
 * assert.deepEqual(planNamedState(config, ["w", "b"], [4, 2]), planState(config, ["w", "b"], [4, 2]));
 * ```
 */
export function planNamedState(
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
