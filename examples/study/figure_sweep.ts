/**
 * The study's sweep figures, as hand-written SVG: the final score of every optimizer against
 * the learning rate, one panel per task (`study.svg`), and the training-loss curves at every
 * learning rate (`study_curves.svg`).
 *
 * @module
 */
import { formatLr } from "../demo/summary.ts";
import type { TaskName } from "./models.ts";
import { STUDY_OPTIMIZERS } from "./optimizers.ts";
import { type Cell, cellAt, SCORES } from "./summary.ts";
import { escapeXml, legend, num, pathData, svgOpen, text, wrap } from "./svg.ts";

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

function optimizersIn(cells: readonly Cell[]) {
  return STUDY_OPTIMIZERS.filter((o) => cells.some((c) => c.optimizer === o.id));
}

function scorePanel(input: SweepFigureInput, task: TaskName, x0: number, y0: number): string[] {
  const { cells, lrs } = input;
  const mine = cells.filter((c) => c.task === task);
  const values = mine.flatMap((c) => [c.low, c.high]).filter(Number.isFinite);
  const higher = SCORES[task].higherIsBetter;
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
  const { name, unit } = SCORES[task];
  const out = [
    `<g class="score-panel" data-task="${task}">`,
    text(
      x0,
      y0 - 12,
      `${task}: final ${name} (${unit}; ${higher ? "higher" : "lower"} is better)`,
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
  for (const lr of lrs) {
    out.push(text(xOf(lr), y0 + PANEL_H + 16, formatLr(lr), 'text-anchor="middle" fill="#444"'));
  }
  out.push(
    text(
      x0 + PANEL_W / 2,
      y0 + PANEL_H + 34,
      "learning rate (log)",
      'text-anchor="middle" fill="#444"',
    ),
  );
  optimizersIn(mine).forEach((o, k) => {
    // a small sideways offset per optimizer keeps the seed ranges apart
    const dx = (k - 3) * 3;
    const points = lrs.map((lr) =>
      [xOf(lr) + dx, cellAt(mine, task, o.id, lr)?.score ?? NaN] as const
    );
    out.push(
      `<path class="score" data-optimizer="${escapeXml(o.id)}" d="${
        pathData(points.map(([x, v]) => [x, Number.isFinite(v) ? yOf(v) : NaN]))
      }" fill="none" stroke="${o.color}" stroke-width="2"><title>${
        escapeXml(o.label)
      }</title></path>`,
    );
    for (const lr of lrs) {
      const c = cellAt(mine, task, o.id, lr);
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
        out.push(
          text(x, y0 + (higher ? PANEL_H - 4 : 12), "×", `text-anchor="middle" fill="${o.color}"`),
        );
      }
    }
  });
  out.push("</g>");
  return out;
}

/** `study.svg`: the score against the learning rate, a panel per task. */
export function renderScoreFigure(input: SweepFigureInput): string {
  const optimizers = optimizersIn(input.cells);
  const width = LEFT + input.tasks.length * (PANEL_W + GAP);
  const top = 36 + 16 * input.subtitle.length;
  const leg = legend(optimizers, LEFT, top + 8, width - LEFT - 20);
  const y0 = top + leg.height + 30;
  const notes = (input.notes ?? []).flatMap((n) => wrap(n, Math.floor((width - LEFT) / 6.6)));
  const height = y0 + PANEL_H + 60 + notes.length * 16;
  const out = [
    svgOpen(width, height),
    text(LEFT, 24, input.title, 'font-size="16" font-weight="bold"'),
    ...input.subtitle.map((s, i) => text(LEFT, 42 + 16 * i, s, 'fill="#444"')),
    ...leg.svg,
  ];
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
  const top = 36 + 16 * input.subtitle.length;
  const leg = legend(optimizers, LEFT, top + 8, width - LEFT - 20);
  const rowH = CURVE_H + 70;
  const y00 = top + leg.height + 30;
  const out = [
    svgOpen(width, y00 + tasks.length * rowH + 10),
    text(LEFT, 24, input.title, 'font-size="16" font-weight="bold"'),
    ...input.subtitle.map((s, i) => text(LEFT, 42 + 16 * i, s, 'fill="#444"')),
    ...leg.svg,
  ];
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
