/**
 * The study's sweep figures, as hand-written SVG: the final score of every optimizer against
 * the learning rate, one panel per task (`study.svg`), and the training-loss curves at every
 * learning rate (`study_curves.svg`).
 *
 * @module
 */
import { formatLr } from "../demo/summary.ts";
import type { TaskName } from "./models.ts";
import type { StudyOptimizer } from "./optimizers.ts";
import { type Cell, cellAt, optimizersIn, SCORES } from "./summary.ts";
import { escapeXml, legend, lrAxisLabels, num, pathData, svgOpen, text, wrap } from "./svg.ts";

/** What the figures show. */
export interface SweepFigureInput {
  readonly cells: readonly Cell[];
  readonly tasks: readonly TaskName[];
  readonly lrs: readonly number[];
  readonly title: string;
  /** Lines under the title (the setup). */
  readonly subtitle: readonly string[];
  /** Sentences under the panels (the outcome). */
  readonly notes?: readonly string[];
}

const PANEL_W = 420, PANEL_H = 260, LEFT = 64, GAP = 90;

/** The axes of one task's score panel: x of a learning rate, y of a score, and the range. */
interface ScoreAxes {
  readonly lo: number;
  readonly hi: number;
  readonly xOf: (lr: number) => number;
  readonly yOf: (score: number) => number;
}

/**
 * The axes of the panel at (`x0`, `y0`) of one task's `cells`: the range of the scores over the
 * seeds, padded by 5% (the image task's at least 5 points); the learning rate on a log scale.
 */
function scoreAxes(
  cells: readonly Cell[],
  task: TaskName,
  lrs: readonly number[],
  x0: number,
  y0: number,
): ScoreAxes {
  const values = cells.flatMap((c) => [c.low, c.high]).filter(Number.isFinite);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (task === "image") lo = Math.max(0, Math.min(lo, hi - 5));
  if (!(hi > lo)) hi = lo + 1;
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const lrMin = Math.log10(Math.min(...lrs)), lrMax = Math.log10(Math.max(...lrs));
  const xOf = (lr: number) =>
    x0 + (lrMax > lrMin ? PANEL_W * (Math.log10(lr) - lrMin) / (lrMax - lrMin) : PANEL_W / 2);
  const yOf = (v: number) => y0 + PANEL_H * (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo));
  return { lo, hi, xOf, yOf };
}

/** A score panel's title, frame, grid lines with their scores, and learning-rate labels. */
function scoreFrame(
  task: TaskName,
  lrs: readonly number[],
  axes: ScoreAxes,
  x0: number,
  y0: number,
): string[] {
  const { lo, hi, xOf, yOf } = axes;
  const { name, unit, higherIsBetter } = SCORES[task];
  const out = [
    text(
      x0,
      y0 - 12,
      `${task}: final ${name} (${unit}; ${higherIsBetter ? "higher" : "lower"} is better)`,
      'font-weight="bold"',
    ),
    `<rect x="${x0}" y="${y0}" width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="#999"/>`,
  ];
  for (let k = 0; k <= 5; k++) {
    const v = lo + (hi - lo) * k / 5;
    out.push(
      `<line x1="${x0}" y1="${num(yOf(v))}" x2="${x0 + PANEL_W}" y2="${
        num(yOf(v))
      }" stroke="#eee"/>`,
      text(
        x0 - 6,
        yOf(v) + 4,
        task === "image" ? `${v.toFixed(0)}` : v.toFixed(2),
        'text-anchor="end" fill="#444"',
      ),
    );
  }
  out.push(...lrAxisLabels(lrs, xOf, x0, PANEL_W, y0 + PANEL_H));
  return out;
}

/**
 * The scores of optimizer `o`, the `k`th of a panel (drawn a little sideways, so that the seeds'
 * ranges stay apart): its line, and per learning rate the range over the seeds and the mean, or
 * a cross on the panel's worse edge where it diverged.
 */
function scoreSeries(
  cells: readonly Cell[],
  task: TaskName,
  lrs: readonly number[],
  axes: ScoreAxes,
  o: StudyOptimizer,
  k: number,
  y0: number,
): string[] {
  const { xOf, yOf } = axes;
  const dx = (k - 3) * 3;
  const points = lrs.map((lr) =>
    [xOf(lr) + dx, cellAt(cells, task, o.id, lr)?.score ?? NaN] as const
  );
  const out = [
    `<path class="score" data-optimizer="${escapeXml(o.id)}" d="${
      pathData(points.map(([x, v]) => [x, Number.isFinite(v) ? yOf(v) : NaN]))
    }" fill="none" stroke="${o.color}" stroke-width="2"><title>${
      escapeXml(o.label)
    }</title></path>`,
  ];
  const worseEdge = y0 + (SCORES[task].higherIsBetter ? PANEL_H - 4 : 12);
  for (const lr of lrs) {
    const c = cellAt(cells, task, o.id, lr);
    if (!c) continue;
    const x = xOf(lr) + dx;
    if (Number.isFinite(c.low) && Number.isFinite(c.high)) {
      out.push(
        `<line x1="${num(x)}" y1="${num(yOf(c.low))}" x2="${num(x)}" y2="${
          num(yOf(c.high))
        }" stroke="${o.color}" stroke-width="1"/>`,
      );
    }
    if (Number.isFinite(c.score)) {
      out.push(`<circle cx="${num(x)}" cy="${num(yOf(c.score))}" r="3" fill="${o.color}"/>`);
    } else {
      out.push(text(x, worseEdge, "×", `text-anchor="middle" fill="${o.color}"`));
    }
  }
  return out;
}

/** One task's panel: the score of every optimizer against the learning rate. */
function scorePanel(input: SweepFigureInput, task: TaskName, x0: number, y0: number): string[] {
  const { lrs } = input;
  const mine = input.cells.filter((c) => c.task === task);
  const axes = scoreAxes(mine, task, lrs, x0, y0);
  return [
    `<g class="score-panel" data-task="${task}">`,
    ...scoreFrame(task, lrs, axes, x0, y0),
    ...optimizersIn(mine).flatMap((o, k) => scoreSeries(mine, task, lrs, axes, o, k, y0)),
    "</g>",
  ];
}

/**
 * The head of a sweep figure `width` wide: the SVG's opening (its height from where the panels
 * start), the title, the subtitle's lines and the legend of the optimizers; and where the panels
 * start.
 */
function figureHead(
  input: SweepFigureInput,
  width: number,
  height: (panelsTop: number) => number,
): { svg: string[]; panelsTop: number } {
  const top = 36 + 16 * input.subtitle.length;
  const leg = legend(optimizersIn(input.cells), LEFT, top + 8, width - LEFT - 20);
  const panelsTop = top + leg.height + 30;
  return {
    svg: [
      svgOpen(width, height(panelsTop)),
      text(LEFT, 24, input.title, 'font-size="16" font-weight="bold"'),
      ...input.subtitle.map((s, i) => text(LEFT, 42 + 16 * i, s, 'fill="#444"')),
      ...leg.svg,
    ],
    panelsTop,
  };
}

/** `study.svg`: the score against the learning rate, a panel per task. */
export function renderScoreFigure(input: SweepFigureInput): string {
  const width = LEFT + input.tasks.length * (PANEL_W + GAP);
  const notes = (input.notes ?? []).flatMap((n) => wrap(n, Math.floor((width - LEFT) / 6.6)));
  const { svg: out, panelsTop: y0 } = figureHead(
    input,
    width,
    (y0) => y0 + PANEL_H + 60 + notes.length * 16,
  );
  input.tasks.forEach((task, i) =>
    out.push(...scorePanel(input, task, LEFT + i * (PANEL_W + GAP), y0))
  );
  notes.forEach((line, i) => out.push(text(LEFT, y0 + PANEL_H + 60 + 16 * i, line, 'fill="#222"')));
  out.push("</svg>", "");
  return out.join("\n");
}

const CURVE_W = 190, CURVE_H = 150, CURVE_GAP = 22;

/** Averages of `window` consecutive values (NaN windows stay NaN). */
function smooth(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < values.length; i += window) {
    const part = values.slice(i, i + window);
    out.push(part.reduce((a, b) => a + b, 0) / part.length);
  }
  return out;
}

/** `study_curves.svg`: training loss against the step, a row per task, a panel per lr. */
export function renderCurvesFigure(input: SweepFigureInput): string {
  const { cells, lrs, tasks } = input;
  const optimizers = optimizersIn(cells);
  const width = Math.max(760, LEFT + lrs.length * (CURVE_W + CURVE_GAP) + 10);
  const rowH = CURVE_H + 70;
  const { svg: out, panelsTop: y00 } = figureHead(
    input,
    width,
    (y00) => y00 + tasks.length * rowH + 10,
  );
  tasks.forEach((task, row) => {
    const mine = cells.filter((c) => c.task === task);
    const steps = Math.max(1, ...mine.map((c) => c.curve.length));
    const window = Math.max(1, Math.round(steps / 50));
    const values = mine.flatMap((c) => smooth(c.curve, window)).filter((v) =>
      Number.isFinite(v) && v > 0
    );
    const yMax = Math.min(20, Math.max(...values)), yMin = Math.max(1e-3, Math.min(...values));
    const lMin = Math.log10(yMin), lMax = Math.log10(yMax) + 1e-9;
    const y0 = y00 + row * rowH;
    const yOf = (v: number) =>
      y0 + CURVE_H * (1 - (Math.log10(Math.min(yMax, Math.max(yMin, v))) - lMin) / (lMax - lMin));
    out.push(
      text(
        LEFT,
        y0 - 22,
        `${task}: training loss (mean of the seeds, log scale)`,
        'font-weight="bold"',
      ),
    );
    lrs.forEach((lr, p) => {
      const x0 = LEFT + p * (CURVE_W + CURVE_GAP);
      out.push(
        `<g class="curves" data-task="${task}" data-lr="${lr}">`,
        `<rect x="${x0}" y="${y0}" width="${CURVE_W}" height="${CURVE_H}" fill="none" stroke="#999"/>`,
        text(x0 + CURVE_W / 2, y0 - 6, `lr = ${formatLr(lr)}`, 'text-anchor="middle"'),
        text(x0, y0 + CURVE_H + 14, "0", 'fill="#444"'),
        text(x0 + CURVE_W, y0 + CURVE_H + 14, `${steps} steps`, 'text-anchor="end" fill="#444"'),
      );
      if (p === 0) {
        for (const t of [0.1, 0.3, 1, 2, 3, 5]) {
          if (t < yMin || t > yMax) continue;
          out.push(text(x0 - 6, yOf(t) + 4, String(t), 'text-anchor="end" fill="#444"'));
        }
      }
      for (const o of optimizers) {
        const c = cellAt(mine, task, o.id, lr);
        if (!c) continue;
        const pts = smooth(c.curve, window).map((v, i) =>
          [
            x0 + CURVE_W * Math.min(steps, (i + 0.5) * window) / steps,
            v > 0 ? yOf(v) : NaN,
          ] as const
        );
        out.push(
          `<path class="loss" data-optimizer="${escapeXml(o.id)}" d="${
            pathData(pts)
          }" fill="none" stroke="${o.color}" stroke-width="1.3"/>`,
        );
      }
      out.push("</g>");
    });
  });
  out.push("</svg>", "");
  return out.join("\n");
}
