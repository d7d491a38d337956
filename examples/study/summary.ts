/**
 * Aggregates the runs over seeds and renders the tables of the study: per task, the final
 * score of every optimizer at every learning rate, and how each holds up over the sweep.
 *
 * @module
 */
import { formatLr } from "../demo/summary.ts";
import type { TaskName } from "./models.ts";
import { STUDY_OPTIMIZERS } from "./optimizers.ts";
import type { RunResult } from "./train.ts";

/** The runs of one optimizer at one learning rate of one task, over the seeds. */
export interface Cell {
  readonly task: TaskName;
  readonly optimizer: string;
  readonly lr: number;
  readonly runs: number;
  /** Mean score over the seeds (see {@linkcode scoreOf}); NaN if any seed diverged. */
  readonly score: number;
  /** Lowest and highest score over the seeds. */
  readonly low: number;
  readonly high: number;
  /** Mean training loss of the last tenth of the steps, mean over the seeds. */
  readonly finalLoss: number;
  /** Mean training loss of the first tenth of the steps. */
  readonly firstLoss: number;
  /** Seeds whose loss stopped being finite. */
  readonly diverged: number;
  /** Mean training loss at every step, over the seeds. */
  readonly curve: number[];
}

/** What a task is scored by. */
export const SCORES: Record<TaskName, { name: string; unit: string; higherIsBetter: boolean }> = {
  image: { name: "test accuracy", unit: "%", higherIsBetter: true },
  language: { name: "validation loss", unit: "bits/char", higherIsBetter: false },
};

/** A run's score: test accuracy in % (image), validation bits per character (language). */
export function scoreOf(r: RunResult): number {
  return r.job.task === "image" ? 100 * r.evalAccuracy : r.evalLoss / Math.LN2;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Mean of the first or last tenth of a run's losses. */
export function tenth(losses: readonly number[], last: boolean): number {
  const n = Math.max(1, Math.floor(losses.length / 10));
  return mean(last ? losses.slice(-n) : losses.slice(0, n));
}

/** Groups results by task, optimizer and learning rate. */
export function aggregate(results: readonly RunResult[]): Cell[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    if (r.job.traceSteps > 0) continue;
    const key = `${r.job.task}|${r.job.optimizer}|${r.job.lr}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(r);
  }
  return [...groups.values()].map((runs) => {
    const scores = runs.map(scoreOf);
    const steps = Math.max(...runs.map((r) => r.losses.length));
    return {
      task: runs[0].job.task,
      optimizer: runs[0].job.optimizer,
      lr: runs[0].job.lr,
      runs: runs.length,
      score: mean(scores),
      low: Math.min(...scores),
      high: Math.max(...scores),
      finalLoss: mean(runs.map((r) => tenth(r.losses, true))),
      firstLoss: mean(runs.map((r) => tenth(r.losses, false))),
      diverged: runs.filter((r) => r.diverged).length,
      curve: Array.from({ length: steps }, (_, i) => mean(runs.map((r) => r.losses[i]))),
    };
  });
}

/** The cell of `optimizer` at `lr` in `task`. */
export function cellAt(cells: readonly Cell[], task: TaskName, optimizer: string, lr: number) {
  return cells.find((c) => c.task === task && c.optimizer === optimizer && c.lr === lr);
}

/** A score as the tables print it. */
export function formatScore(task: TaskName, score: number): string {
  if (!Number.isFinite(score)) return "diverged";
  return task === "image" ? `${score.toFixed(1)}%` : score.toFixed(3);
}

const better = (task: TaskName, a: number, b: number) =>
  SCORES[task].higherIsBetter ? a > b : a < b;

function optimizersIn(cells: readonly Cell[]) {
  return STUDY_OPTIMIZERS.filter((o) => cells.some((c) => c.optimizer === o.id));
}

/** Markdown: one row per learning rate, one column per optimizer; `*` best of the row. */
export function scoreTable(cells: readonly Cell[], task: TaskName, lrs: readonly number[]): string {
  const mine = cells.filter((c) => c.task === task);
  const optimizers = optimizersIn(mine);
  const lines = [
    `| lr | ${optimizers.map((o) => o.label).join(" | ")} |`,
    `| ---- | ${optimizers.map(() => "---:").join(" | ")} |`,
  ];
  for (const lr of lrs) {
    const row = optimizers.map((o) => cellAt(mine, task, o.id, lr));
    const finite = row.filter((c) => c && Number.isFinite(c.score)) as Cell[];
    const best = finite.reduce<Cell | undefined>(
      (b, c) => (!b || better(task, c.score, b.score) ? c : b),
      undefined,
    );
    const texts = row.map((c) => {
      if (!c) return "";
      const div = c.diverged > 0 ? ` (${c.diverged}/${c.runs} diverged)` : "";
      return `${formatScore(task, c.score)}${c === best ? " *" : ""}${div}`;
    });
    lines.push(`| ${formatLr(lr)} | ${texts.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** What each optimizer's sweep amounts to. */
export interface Robustness {
  readonly optimizer: string;
  readonly best: Cell;
  readonly worst: Cell;
  /** Learning rates whose score is within the task's margin of the best score of the task. */
  readonly nearBest: number;
}

/** Margin of "as good as the best": 1 point of accuracy, 0.05 bits per character. */
export const MARGIN: Record<TaskName, number> = { image: 1, language: 0.05 };

/** Per optimizer: its best and worst learning rate, and how many come near the task's best. */
export function robustness(cells: readonly Cell[], task: TaskName): Robustness[] {
  const mine = cells.filter((c) => c.task === task);
  const sign = SCORES[task].higherIsBetter ? 1 : -1;
  const value = (c: Cell) => Number.isFinite(c.score) ? sign * c.score : -Infinity;
  const top = Math.max(...mine.map(value));
  return optimizersIn(mine).map((o) => {
    const own = mine.filter((c) => c.optimizer === o.id);
    const sorted = [...own].sort((a, b) => value(b) - value(a));
    return {
      optimizer: o.id,
      best: sorted[0],
      worst: sorted[sorted.length - 1],
      nearBest: own.filter((c) => value(c) >= top - MARGIN[task]).length,
    };
  });
}

/** Markdown: the robustness of every optimizer in `task`. */
export function robustnessTable(cells: readonly Cell[], task: TaskName): string {
  const lines = [
    `| optimizer | best (lr) | worst (lr) | lrs within ${MARGIN[task]}${
      task === "image" ? " point" : " bits/char"
    } of the task's best |`,
    "| --- | ---: | ---: | ---: |",
  ];
  for (const r of robustness(cells, task)) {
    const label = STUDY_OPTIMIZERS.find((o) => o.id === r.optimizer)!.label;
    lines.push(
      `| ${label} | ${formatScore(task, r.best.score)} (${formatLr(r.best.lr)}) | ${
        formatScore(task, r.worst.score)
      } (${formatLr(r.worst.lr)}) | ${r.nearBest} of ${
        cells.filter((c) => c.task === task && c.optimizer === r.optimizer).length
      } |`,
    );
  }
  return lines.join("\n");
}

/** Plain sentences of who won where in `task`, from the numbers. */
export function verdict(cells: readonly Cell[], task: TaskName, lrs: readonly number[]): string[] {
  const out: string[] = [];
  const score = (id: string, lr: number) => cellAt(cells, task, id, lr)?.score ?? NaN;
  const label = (id: string) => STUDY_OPTIMIZERS.find((o) => o.id === id)!.label;
  const warmups = STUDY_OPTIMIZERS.filter((o) =>
    o.warmupSteps > 0 && cells.some((c) => c.optimizer === o.id)
  );
  const name = SCORES[task].name;
  const winsAdam: string[] = [], winsWarmup: string[] = [];
  let compared = 0;
  for (const lr of lrs) {
    const r = score("radam", lr), a = score("adam", lr);
    const w = warmups.map((o) => score(o.id, lr)).filter(Number.isFinite);
    if (!Number.isFinite(r)) continue;
    compared++;
    if (!Number.isFinite(a) || better(task, r, a)) winsAdam.push(formatLr(lr));
    if (w.length && w.every((x) => better(task, r, x))) winsWarmup.push(formatLr(lr));
  }
  const at = (list: string[]) => list.length ? ` (${list.join(", ")})` : "";
  if (compared > 0) {
    out.push(
      `${task}: RAdam's ${name} beats Adam without warmup at ${winsAdam.length} of ${compared} ` +
        `learning rates${at(winsAdam)}, and every Adam + warmup at ${winsWarmup.length}` +
        `${at(winsWarmup)}.`,
    );
  }
  const robust = robustness(cells, task);
  if (robust.length > 0) {
    const sign = SCORES[task].higherIsBetter ? 1 : -1;
    const value = (c: Cell) => Number.isFinite(c.score) ? sign * c.score : -Infinity;
    const top = robust.reduce((b, r) => value(r.best) > value(b.best) ? r : b);
    const floor = robust.reduce((b, r) => value(r.worst) > value(b.worst) ? r : b);
    const radam = robust.find((r) => r.optimizer === "radam");
    out.push(
      `${task}: best ${name} ${formatScore(task, top.best.score)} (${label(top.optimizer)}, ` +
        `lr ${formatLr(top.best.lr)})` +
        (radam
          ? `; RAdam's best ${formatScore(task, radam.best.score)} (lr ${formatLr(radam.best.lr)})`
          : "") +
        `; the best worst case over the sweep: ${label(floor.optimizer)} ` +
        `(${formatScore(task, floor.worst.score)} at lr ${formatLr(floor.worst.lr)}).`,
    );
  }
  return out;
}
