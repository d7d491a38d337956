/**
 * The optimizers the demo compares: one row each. Every one is built through the library's
 * public API (`../../mod.ts`); adding a row adds it to the sweep, the table and the figure.
 *
 * @module
 */
import * as lib from "../../mod.ts";
import type { Optimizer } from "../../mod.ts";

/** What a row needs to build its optimizer for one run. */
export interface RunSettings {
  /** Peak learning rate of this run. */
  readonly lr: number;
  /** Backend requested ("auto", "wasm", "js", or any other the library accepts). */
  readonly backend: string;
  /** Steps of linear warmup, for the rows that warm up. */
  readonly warmupSteps: number;
}

/** One optimizer of the comparison. */
export interface OptimizerEntry {
  /** Short id, used in files and flags. */
  readonly id: string;
  /** Name shown in the table and the figure. */
  readonly label: string;
  /** Line colour in the figure. */
  readonly color: string;
  /**
   * Whether `init` gets each tensor as `{ data, shape }` (so that gradient centralization
   * knows the weight matrices) instead of a bare Float32Array.
   */
  readonly shapedParams: boolean;
  /** Builds the optimizer; absent when this library build lacks it (see `missing`). */
  readonly make?: (run: RunSettings) => Optimizer;
  /** Why the row is skipped, when `make` is absent. */
  readonly missing?: string;
}

/** The comparison: RAdam against Adam without and with warmup, and Ranger. */
export const OPTIMIZERS: readonly OptimizerEntry[] = [
  {
    id: "radam",
    label: "RAdam",
    color: "#d62728",
    shapedParams: false,
    make: ({ lr, backend }) => lib.radam({ lr, backend: backend as lib.BackendChoice }),
  },
  {
    id: "adam",
    label: "Adam",
    color: "#1f77b4",
    shapedParams: false,
    make: ({ lr, backend }) => lib.adam({ lr, backend: backend as lib.BackendChoice }),
  },
  {
    id: "adam-warmup",
    label: "Adam + warmup",
    color: "#2ca02c",
    shapedParams: false,
    make: ({ lr, backend, warmupSteps }) =>
      lib.adam({
        lr: warmupSteps > 0 ? lib.linearWarmup(lr, { warmupSteps }) : lr,
        backend: backend as lib.BackendChoice,
      }),
  },
  {
    id: "ranger",
    label: "Ranger",
    color: "#9467bd",
    shapedParams: true,
    make: ({ lr, backend }) => lib.ranger({ lr, backend: backend as lib.BackendChoice }),
  },
];

/** The rows that can run in this build. */
export function availableOptimizers(): OptimizerEntry[] {
  return OPTIMIZERS.filter((entry) => entry.make !== undefined);
}
