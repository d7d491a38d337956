/**
 * `deno task study`: the article's claims (Liu et al. 2019; Ranger; Lion) through the public
 * TensorFlow.js path: tfjs-layers models compiled with `tfOptimizer(...)` and trained with
 * `model.fit`, on real images and a real text corpus, over a learning-rate sweep and seeds,
 * and the size of the adaptive step over the first iterations. See `--help`.
 *
 * Needs read access (the project's sources for the workers, the npm packages' data and tfjs's
 * wasm binaries) and write access to the output folder.
 *
 * @module
 */
import os from "node:os";
import process from "node:process";
import { progressBar } from "../demo/progress_bar.ts";
import { renderStepsFigure, type Trace } from "./figure_steps.ts";
import { renderCurvesFigure, renderScoreFigure } from "./figure_sweep.ts";
import { HELP, parseFlags, type StudyFlags, UsageError } from "./flags.ts";
import { STUDY_OPTIMIZERS, WARMUP_LENGTHS } from "./optimizers.ts";
import { runJobs } from "./pool.ts";
import { renderReport, type RunInfo } from "./report.ts";
import { aggregate, verdict } from "./summary.ts";
import type { StepCheck } from "./step_sizes.ts";
import type { Job, RunResult } from "./train.ts";

/** The optimizers whose step sizes are traced. */
export const TRACED = ["adam", `adam-warmup-${WARMUP_LENGTHS[1]}`, "radam"];

/** Every run of the study: the traced ones, then the sweep, longest task first. */
export function studyJobs(flags: StudyFlags): Job[] {
  const jobs: Job[] = [];
  const base = { steps: flags.steps, batchSize: flags.batchSize };
  const tasks = [...flags.tasks].sort((a, b) => (a === "language" ? -1 : b === "language" ? 1 : 0));
  if (flags.traceSteps > 0) {
    for (const task of tasks) {
      for (const optimizer of TRACED) {
        jobs.push({
          ...base,
          task,
          optimizer,
          lr: flags.traceLr,
          seed: 1,
          steps: flags.traceSteps,
          traceSteps: flags.traceSteps,
        });
      }
    }
  }
  for (const task of tasks) {
    for (const lr of flags.lrs) {
      for (const o of STUDY_OPTIMIZERS) {
        for (let seed = 1; seed <= flags.seeds; seed++) {
          jobs.push({ ...base, task, optimizer: o.id, lr, seed, traceSteps: 0 });
        }
      }
    }
  }
  return jobs;
}

/** The CPU's model name (needs --allow-sys=cpus; "unknown CPU" without it). */
function cpuName(): string {
  try {
    return os.cpus()[0]?.model.trim() || "unknown CPU";
  } catch {
    return "unknown CPU";
  }
}

function fail(message: string, status: number): never {
  console.error(`error: ${message}`);
  Deno.exit(status);
}

/** Writes every output of the study into `flags.out`. */
async function writeOutputs(flags: StudyFlags, info: RunInfo, results: RunResult[]): Promise<void> {
  const cells = aggregate(results);
  const traces: Trace[] = results.filter((r) => r.trace).map((r) => ({
    task: r.job.task,
    optimizer: r.job.optimizer,
    lr: r.job.lr,
    rows: r.trace!.rows,
  }));
  const check: StepCheck = { compared: 0, outside: 0, worst: 0 };
  for (const r of results) {
    if (!r.trace) continue;
    check.compared += r.trace.check.compared;
    check.outside += r.trace.check.outside;
    check.worst = Math.max(check.worst, r.trace.check.worst);
  }
  const notes = flags.tasks.flatMap((t) => verdict(cells, t, flags.lrs));
  const subtitle = [
    `${flags.steps} steps of batch ${flags.batchSize} under model.fit with tfOptimizer(...), mean of ${flags.seeds} seed(s) ` +
    `(bars: lowest to highest seed), ${info.cpu}; × = diverged`,
  ];
  const title =
    "Adam, Adam + warmup, RAdam, Ranger and Lion in TensorFlow.js, over a learning-rate sweep";
  const input = { cells, tasks: flags.tasks, lrs: flags.lrs, title, subtitle, notes };
  await Deno.writeTextFile(`${flags.out}/study.svg`, renderScoreFigure(input));
  await Deno.writeTextFile(
    `${flags.out}/study_curves.svg`,
    renderCurvesFigure({
      ...input,
      title: "Training loss, mean of the seeds, every learning rate",
      notes: [],
    }),
  );
  if (traces.length > 0) {
    await Deno.writeTextFile(
      `${flags.out}/study_steps.svg`,
      renderStepsFigure(
        traces,
        flags.tasks,
        "The size of every parameter's step over the first iterations",
        [
          "Histograms of log₁₀ |lr · m̂ / (√v̂ + ε)| over all parameters at iteration t (top: t = 1), each scaled to its own peak; RAdam: the step it takes (momentum SGD, lr · |m̂|, until the rectifier switches on at t = 6, then r_t times the adaptive step). Computed from the optimizer's moments after each step and checked against the parameters' change.",
        ],
      ),
    );
  }
  await Deno.writeTextFile(
    `${flags.out}/results.md`,
    renderReport(flags, info, cells, traces, check) + "\n",
  );
  const compact = results.map((r) => ({
    ...r,
    losses: r.losses.map((x) => Number.isFinite(x) ? +x.toPrecision(4) : null),
  }));
  await Deno.writeTextFile(
    `${flags.out}/results.json`,
    JSON.stringify({ info: { ...info, renderedBy: undefined }, flags, results: compact }) + "\n",
  );
}

/** `--from FILE`: the outputs of an earlier run, rendered again from its results.json. */
async function rerender(flags: StudyFlags): Promise<void> {
  const saved = JSON.parse(await Deno.readTextFile(flags.from)) as {
    info: RunInfo;
    flags: StudyFlags;
    results: (Omit<RunResult, "losses"> & { losses: (number | null)[] })[];
  };
  const results: RunResult[] = saved.results.map((r) => ({
    ...r,
    losses: r.losses.map((x) => x ?? NaN),
  }));
  const info = { ...saved.info, renderedBy: ["deno task study", ...Deno.args].join(" ") };
  await writeOutputs({ ...saved.flags, out: flags.out, from: "" }, info, results);
  console.log(`Re-rendered ${flags.out}/ from ${flags.from} (${results.length} runs).`);
}

async function main(): Promise<void> {
  let flags: StudyFlags;
  try {
    flags = parseFlags(Deno.args);
  } catch (error) {
    if (error instanceof UsageError) fail(`${error.message}\nRun with --help to see the flags.`, 2);
    throw error;
  }
  if (flags.help) {
    console.log(HELP);
    return;
  }
  await Deno.mkdir(flags.out, { recursive: true });
  if (flags.from) {
    await rerender(flags);
    return;
  }
  const jobs = studyJobs(flags);
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  console.log(
    `${jobs.length} runs (${flags.tasks.join(" + ")}; ${STUDY_OPTIMIZERS.length} optimizers × ` +
      `${flags.lrs.length} learning rates × ${flags.seeds} seed(s), and ${
        jobs.filter((j) => j.traceSteps > 0).length
      } traced), ${flags.steps} steps each, ${flags.workers} thread(s), tfjs on wasm`,
  );
  const bar = progressBar(jobs.reduce((n, j) => n + j.steps, 0), "steps");
  let results: RunResult[];
  try {
    results = await runJobs(jobs, flags.workers, (n) => bar.advance(n));
  } catch (error) {
    bar.finish();
    fail(error instanceof Error ? error.message : String(error), 1);
  }
  bar.finish();
  const cpu = process.cpuUsage(cpuStart);
  const info: RunInfo = {
    command: ["deno task study", ...Deno.args].join(" "),
    date: new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC",
    cpu: cpuName(),
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    wallSeconds: (performance.now() - started) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    tfjsBackend: results[0].tfjsBackend,
    updateBackends: [...new Set(results.map((r) => r.updateBackend))],
    runs: results.length,
  };
  await writeOutputs(flags, info, results);
  const cells = aggregate(results);
  for (const task of flags.tasks) for (const s of verdict(cells, task, flags.lrs)) console.log(s);
  console.log(
    `\nWrote ${flags.out}/results.md, results.json, study.svg, study_curves.svg` +
      `${flags.traceSteps > 0 ? ", study_steps.svg" : ""} (${
        (info.wallSeconds / 60).toFixed(1)
      } min wall, ` +
      `${(info.cpuSeconds / 60).toFixed(1)} min CPU).`,
  );
}

if (import.meta.main) {
  await main();
}
