/**
 * The demo's figure, as hand-written SVG: a row of panels with the training-loss curves of
 * every optimizer at each learning rate, and below them the final test accuracy against the
 * learning rate, one line per optimizer.
 *
 * @module
 */
import type { OptimizerEntry } from "./optimizer_table.ts";
import { escapeXml, lrAxisLabels, num, pathData, text, wrap } from "../_svg.ts";
import { type Cell, cellAt, formatLr } from "./summary.ts";

/** What the figure shows. */
export interface FigureInput {
  readonly cells: readonly Cell[];
  readonly optimizers: readonly OptimizerEntry[];
  readonly lrs: readonly number[];
  /** Optimizer steps per point of the loss curves. */
  readonly stepsPerPoint: number;
  /** Optimizer steps of a run (the end of the step axis). */
  readonly totalSteps: number;
  /** Heading of the figure. */
  readonly title: string;
  /** A line under the heading (the setup). */
  readonly subtitle: string;
  /** Sentences shown beside the accuracy chart (the outcome). */
  readonly notes?: readonly string[];
}

const PANEL_W = 200, PANEL_H = 170, GAP = 28, LEFT = 56, TOP = 100;
/** The loss axis ends at most here; a curve above it is drawn on the edge and its peak marked. */
const LOSS_CAP = 10;
/** Head room above the highest loss, as a factor (so that a peak is not drawn on the frame). */
const HEAD_ROOM = 1.5;
/**
 * A curve's peak is marked when it is this many times the median first point of all curves (the
 * loss a run usually starts from: the runs start from the same few initializations).
 */
const JUMP = 1.5;

/** The loss axis: its range and the y of a loss (log scale, clamped to the range). */
interface LossAxis {
  readonly min: number;
  readonly max: number;
  readonly y: (loss: number) => number;
}

function lossAxis(values: readonly number[]): LossAxis {
  const max = Math.min(LOSS_CAP, Math.max(3, ...values) * HEAD_ROOM);
  const min = Math.max(1e-3, Math.min(1, ...values) * 0.8);
  const logMin = Math.log10(min), logMax = Math.log10(max);
  const y = (v: number) =>
    TOP +
    PANEL_H * (1 - (Math.log10(Math.min(Math.max(v, min), max)) - logMin) / (logMax - logMin));
  return { min, max, y };
}

/** A loss for a label: two significant digits. */
function formatLoss(loss: number): string {
  return String(Number(loss.toPrecision(2)));
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Marks of the jumps in one panel: for each curve whose highest point is at least `jump` (see
 * {@link JUMP}), a dot there and its value; a peak above the axis is drawn on the top edge, with
 * an arrow up and its true value.
 */
function peakMarks(
  curves: readonly { readonly entry: OptimizerEntry; readonly curve: readonly number[] }[],
  x: (i: number) => number,
  axis: LossAxis,
  right: number,
  steps: (i: number) => string,
  jump: number,
): string[] {
  const out: string[] = [];
  for (const { entry, curve } of curves) {
    let peak = -Infinity, at = -1;
    curve.forEach((v, i) => {
      if (Number.isFinite(v) && v > peak) [peak, at] = [v, i];
    });
    if (at < 0 || !(peak >= jump)) continue;
    const px = x(at), py = axis.y(peak), clipped = peak > axis.max;
    const label = `${clipped ? "↑ " : ""}${formatLoss(peak)} (${steps(at)})`;
    const leftward = px + 8 + 7 * label.length > right;
    out.push(
      `<g class="peak" data-optimizer="${escapeXml(entry.id)}" data-loss="${peak}">`,
      `<circle cx="${num(px)}" cy="${num(py)}" r="3.5" fill="${entry.color}"/>`,
      text(
        leftward ? px - 7 : px + 7,
        clipped ? py + 14 : Math.max(py + 4, TOP + 14),
        label,
        `text-anchor="${leftward ? "end" : "start"}" fill="${entry.color}" font-weight="bold"`,
      ),
      "</g>",
    );
  }
  return out;
}

/** The row of loss panels, one per learning rate. */
function lossPanels(input: FigureInput, width: number): string[] {
  const { cells, optimizers, lrs, stepsPerPoint } = input;
  const shown = cells.filter((c) => optimizers.some((o) => o.id === c.optimizer));
  const positive = (v: number) => Number.isFinite(v) && v > 0;
  const axis = lossAxis(shown.flatMap((c) => c.curve).filter(positive));
  const starts = shown.map((c) => c.curve[0]).filter(positive);
  const jump = starts.length > 0 ? JUMP * median(starts) : Infinity;
  const maxSteps = Math.max(1, input.totalSteps);
  const steps = (i: number) => {
    const first = i * stepsPerPoint + 1, last = Math.min(maxSteps, (i + 1) * stepsPerPoint);
    return first === last ? `step ${first}` : `steps ${first}–${last}`;
  };
  const ticks = [0.01, 0.03, 0.1, 0.3, 1, 3, 10].filter((t) => t >= axis.min && t <= axis.max);
  const out: string[] = [];
  lrs.forEach((lr, p) => {
    const x0 = LEFT + p * (PANEL_W + GAP);
    const xOf = (i: number) =>
      x0 + PANEL_W * Math.min(maxSteps, (i + 1) * stepsPerPoint) / maxSteps;
    out.push(
      `<g class="panel" data-lr="${lr}">`,
      `<rect x="${x0}" y="${TOP}" width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="#999"/>`,
      text(
        x0 + PANEL_W / 2,
        TOP - 8,
        `lr = ${formatLr(lr)}`,
        'text-anchor="middle" font-weight="bold"',
      ),
      text(x0 + PANEL_W / 2, TOP + PANEL_H + 30, "step", 'text-anchor="middle" fill="#444"'),
      text(x0, TOP + PANEL_H + 14, "0", 'text-anchor="start" fill="#444"'),
      text(x0 + PANEL_W, TOP + PANEL_H + 14, String(maxSteps), 'text-anchor="end" fill="#444"'),
    );
    for (const t of ticks) {
      const y = num(axis.y(t));
      out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + PANEL_W}" y2="${y}" stroke="#eee"/>`);
      if (p === 0) {
        out.push(text(x0 - 6, axis.y(t) + 4, String(t), 'text-anchor="end" fill="#444"'));
      }
    }
    const curves = optimizers.flatMap((entry) => {
      const cell = cellAt(cells, entry.id, lr);
      return cell ? [{ entry, curve: cell.curve }] : [];
    });
    for (const { entry, curve } of curves) {
      const d = pathData(curve.map((v, i) => [xOf(i), v > 0 ? axis.y(v) : NaN]));
      out.push(
        `<path class="loss" data-optimizer="${escapeXml(entry.id)}" d="${d}" fill="none" ` +
          `stroke="${entry.color}" stroke-width="1.5"${dashOf(entry)}><title>${
            escapeXml(entry.label)
          }, lr ${formatLr(lr)}</title></path>`,
      );
    }
    out.push(...peakMarks(curves, xOf, axis, x0 + PANEL_W, steps, jump), "</g>");
  });
  const mid = TOP + PANEL_H / 2;
  out.push(
    text(
      14,
      mid,
      "training loss (log)",
      `text-anchor="middle" fill="#444" transform="rotate(-90 14 ${mid})"`,
    ),
  );
  const caption =
    `Each point: the mean minibatch loss over ${stepsPerPoint} step${
      stepsPerPoint === 1 ? "" : "s"
    } and the seeds. A dot and its value mark a curve's peak where it reaches ${JUMP}× the ` +
    `median first point of all curves (↑: above the axis, drawn on its edge).`;
  wrap(caption, Math.floor((width - LEFT - 20) / 6)).forEach((line, i) => {
    out.push(text(LEFT, TOP + PANEL_H + 50 + 14 * i, line, 'fill="#444" font-size="11"'));
  });
  return out;
}

/** The final test accuracy against the learning rate, one line per optimizer. */
function accuracyChart(input: FigureInput, accTop: number, accW: number, accH: number): string[] {
  const { cells, optimizers, lrs } = input;
  const accs = cells.filter((c) => optimizers.some((o) => o.id === c.optimizer))
    .map((c) => c.testAccuracy).filter(Number.isFinite);
  const aMin = Math.max(0, Math.floor(10 * Math.min(1, ...accs)) / 10);
  const lrMin = Math.log10(Math.min(...lrs)), lrMax = Math.log10(Math.max(...lrs));
  const ax = (lr: number) =>
    LEFT + (lrMax > lrMin ? accW * (Math.log10(lr) - lrMin) / (lrMax - lrMin) : accW / 2);
  const ay = (a: number) => accTop + accH * (1 - (a - aMin) / (1 - aMin || 1));
  const out = [
    `<g class="accuracy-panel">`,
    text(LEFT, accTop - 14, "final test accuracy vs learning rate", 'font-weight="bold"'),
    `<rect x="${LEFT}" y="${accTop}" width="${accW}" height="${accH}" fill="none" stroke="#999"/>`,
  ];
  for (let a = aMin; a <= 1.0001; a += 0.1) {
    const y = num(ay(a));
    out.push(
      `<line x1="${LEFT}" y1="${y}" x2="${LEFT + accW}" y2="${y}" stroke="#eee"/>`,
      text(LEFT - 6, ay(a) + 4, `${Math.round(100 * a)}%`, 'text-anchor="end" fill="#444"'),
    );
  }
  out.push(...lrAxisLabels(lrs, ax, LEFT, accW, accTop + accH));
  for (const o of optimizers) {
    const points = lrs.map((lr) =>
      [ax(lr), ay(cellAt(cells, o.id, lr)?.testAccuracy ?? NaN)] as const
    );
    out.push(
      `<path class="accuracy" data-optimizer="${escapeXml(o.id)}" d="${pathData(points)}" ` +
        `fill="none" stroke="${o.color}" stroke-width="2"${dashOf(o)}><title>${
          escapeXml(o.label)
        }</title></path>`,
    );
    for (const [x, y] of points) {
      if (Number.isFinite(y)) {
        out.push(`<circle cx="${num(x)}" cy="${num(y)}" r="3.5" fill="${o.color}"/>`);
      }
    }
  }
  out.push("</g>");
  return out;
}

/** The dash attribute of a row's lines (variants in another format), or nothing. */
function dashOf(entry: OptimizerEntry): string {
  return entry.dash ? ` stroke-dasharray="${entry.dash}"` : "";
}

/** Renders the figure as a standalone SVG document. */
export function renderFigure(input: FigureInput): string {
  const { optimizers, lrs } = input;
  const width = Math.max(760, LEFT + lrs.length * (PANEL_W + GAP) + 20);
  const accTop = TOP + PANEL_H + 100, accH = 210, accW = Math.min(width - LEFT - 200, 560);
  const height = accTop + accH + 60;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    text(LEFT, 26, input.title, 'font-size="17" font-weight="bold"'),
    text(LEFT, 46, input.subtitle, 'fill="#444"'),
  );
  // legend (on a second line where the first is full)
  let lx = LEFT, ly = 66;
  for (const o of optimizers) {
    const w = 44 + o.label.length * 7;
    if (lx > LEFT && lx + w > width - 10) [lx, ly] = [LEFT, ly + 16];
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${o.color}" ` +
        `stroke-width="3"${dashOf(o)}/>`,
      text(lx + 30, ly + 4, o.label),
    );
    lx += w;
  }
  out.push(...lossPanels(input, width), ...accuracyChart(input, accTop, accW, accH));
  let ny = accTop + 4;
  for (const note of input.notes ?? []) {
    for (const line of wrap(note, Math.max(30, Math.floor((width - LEFT - accW - 50) / 6.6)))) {
      out.push(text(LEFT + accW + 30, ny += 16, line, 'fill="#222"'));
    }
    ny += 10;
  }
  out.push("</svg>", "");
  return out.join("\n");
}
