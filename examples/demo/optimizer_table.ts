/**
 * The optimizers the demo compares: one row each. Every one is built through the library's
 * public API (`../../mod.ts`); adding a row adds it to the sweep, the table and the figure. Each
 * row also runs in the formats of `--states` (`FORMATS`): its moments in 8 bits, or a control.
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
  /** How the optimizer holds its moments (option `states`; default 32-bit). */
  readonly states?: lib.StatesFormat;
}

/** One optimizer of the comparison. */
export interface OptimizerEntry {
  /** Short id, used in files and flags (`<row>@<format>` for a format other than 32-bit). */
  readonly id: string;
  /** Name shown in the table and the figure. */
  readonly label: string;
  /** Line colour in the figure. */
  readonly color: string;
  /** Dash pattern of its lines in the figure (SVG `stroke-dasharray`), if any. */
  readonly dash?: string;
  /**
   * Whether `init` gets each tensor as `{ data, shape }` (so that gradient centralization
   * knows the weight matrices) instead of a bare Float32Array.
   */
  readonly shapedParams: boolean;
  /** Left out of the comparison unless `--optimizers` names it. */
  readonly optional?: boolean;
  /** Builds the optimizer; absent when this library build lacks it (see `missing`). */
  readonly make?: (run: RunSettings) => Optimizer;
  /** Why the row is skipped, when `make` is absent. */
  readonly missing?: string;
}

const backendOf = (run: RunSettings) => run.backend as lib.BackendChoice;

/** The comparison: RAdam against Adam without and with warmup, and Ranger; Lion on request. */
export const OPTIMIZERS: readonly OptimizerEntry[] = [
  {
    id: "radam",
    label: "RAdam",
    color: "#d62728",
    shapedParams: false,
    make: (run) => lib.radam({ lr: run.lr, backend: backendOf(run), states: run.states }),
  },
  {
    id: "adam",
    label: "Adam",
    color: "#1f77b4",
    shapedParams: false,
    make: (run) => lib.adam({ lr: run.lr, backend: backendOf(run), states: run.states }),
  },
  {
    id: "adam-warmup",
    label: "Adam + warmup",
    color: "#2ca02c",
    shapedParams: false,
    make: ({ lr, warmupSteps, ...run }) =>
      lib.adam({
        lr: warmupSteps > 0 ? lib.linearWarmup(lr, { warmupSteps }) : lr,
        backend: backendOf({ lr, warmupSteps, ...run }),
        states: run.states,
      }),
  },
  {
    id: "ranger",
    label: "Ranger",
    color: "#9467bd",
    shapedParams: true,
    make: (run) => lib.ranger({ lr: run.lr, backend: backendOf(run), states: run.states }),
  },
  {
    // Lion's steps are of size lr in every coordinate: its authors advise a learning rate 3–10×
    // smaller than Adam's. It runs at a tenth of the sweep's (as `deno task study` does).
    id: "lion",
    label: "Lion (lr ÷ 10)",
    color: "#8c564b",
    shapedParams: false,
    optional: true,
    make: (run) => lib.lion({ lr: run.lr / 10, backend: backendOf(run), states: run.states }),
  },
];

/** How a row runs in a format of `--states`, besides the 32-bit one. */
interface Format {
  readonly suffix: string;
  readonly dash: string;
  readonly states?: lib.StatesFormat;
  readonly lrScale?: number;
}

/**
 * The formats a row runs in (`--states`): `32bit`, as the row is; `8bit`, its moments in 8
 * bits (option `states: "8bit"`); `control`, 32-bit with the learning rate scaled by 1 + 2^-20,
 * a change of no consequence whose results show how far two runs differ by chance alone (the
 * noise of a comparison between formats).
 */
export const FORMATS: Readonly<Record<string, Format | undefined>> = {
  "32bit": undefined,
  "8bit": { suffix: " 8-bit", dash: "6 3", states: "8bit" },
  control: { suffix: " (control)", dash: "2 3", lrScale: 1 + 2 ** -20 },
};

/** The rows that can run in this build (the optional ones only when `ids` names them). */
export function availableOptimizers(ids?: readonly string[]): OptimizerEntry[] {
  return OPTIMIZERS.filter((entry) =>
    entry.make !== undefined && (ids ? ids.includes(entry.id) : !entry.optional)
  );
}

/** The id of row `id` in `format`. */
export function variantId(id: string, format: string): string {
  return format === "32bit" ? id : `${id}@${format}`;
}

/** The row `id` (`<row>` or `<row>@<format>`): a row of the table, or its variant in a format. */
export function optimizerById(id: string): OptimizerEntry {
  const [base, format = "32bit"] = id.split("@");
  const entry = OPTIMIZERS.find((e) => e.id === base && e.make !== undefined);
  if (!entry || !Object.hasOwn(FORMATS, format)) {
    throw new RangeError(`No available optimizer with id ${JSON.stringify(id)}`);
  }
  const variant = FORMATS[format];
  if (variant === undefined) return entry;
  const make = entry.make!;
  return {
    ...entry,
    id,
    label: entry.label + variant.suffix,
    dash: variant.dash,
    make: (run) =>
      make({ ...run, lr: run.lr * (variant.lrScale ?? 1), states: variant.states ?? run.states }),
  };
}
