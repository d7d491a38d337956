/**
 * The kinds of weight the optimizer keeps per variable, as tfjs names them: its rule's moments
 * (`<variable>/m`, `<variable>/v`, as tfjs names Adam's; another rule's by the library's name),
 * then LookAhead's slow weights (`<variable>/slow`).
 *
 * @module
 */
import { EXP_AVG, SLOW } from "../base/arena.ts";
import type { Settings } from "../base/settings.ts";
import { momentsOf } from "../core/origins.ts";

/** The tfjs weight-name suffix of each state section, as tfjs names Adam's (`/m`, `/v`). */
const MOMENT_SUFFIX: Readonly<Record<string, string>> = { exp_avg: "m", exp_avg_sq: "v" };
export const SLOW_SUFFIX = "slow";

/** One kind of weight: its name suffix, arena section, and the library's moment name. */
export interface WeightKind {
  readonly suffix: string;
  readonly section: number;
  /** The moment's name in `readMoments`; undefined for the slow weights. */
  readonly moment?: string;
  /** Whether the moment is never negative (its codes are unsigned). */
  readonly nonNegative?: boolean;
}

/** The weights `config` keeps per variable: its rule's moments, then LookAhead's slow weights. */
export function weightKinds(config: Settings): WeightKind[] {
  const kinds: WeightKind[] = momentsOf(config).map((m, k) => ({
    suffix: MOMENT_SUFFIX[m.name] ?? m.name,
    section: EXP_AVG + k,
    moment: m.name,
    nonNegative: m.nonNegative,
  }));
  if (config.lookahead) kinds.push({ suffix: SLOW_SUFFIX, section: SLOW });
  return kinds;
}
