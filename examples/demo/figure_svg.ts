/**
 * The demo's figure, as hand-written SVG: a row of panels with the training-loss curves of
 * every optimizer at each learning rate, and below them the final test accuracy against the
 * learning rate, one line per optimizer.
 *
 * @module
 */
import type { OptimizerEntry } from "./optimizer_table.ts";
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

/** Splits `sentence` into lines of at most `width` characters, at spaces. */
function wrap(sentence: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of sentence.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** Escapes text for use in SVG element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

const num = (x: number) => (Math.round(x * 10) / 10).toString();

/** A path through the points, broken where a value is not finite. */
function pathData(points: readonly (readonly [number, number])[]): string {
  let d = "", pen = false;
  for (const [x, y] of points) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${num(x)},${num(y)}`;
    pen = true;
  }
  return d;
}

function text(x: number, y: number, content: string, attrs = ""): string {
  return `<text x="${num(x)}" y="${num(y)}"${attrs ? " " + attrs : ""}>${
    escapeXml(content)
  }</text>`;
}

const PANEL_W = 200, PANEL_H = 170, GAP = 28, LEFT = 56, TOP = 100;

/** Renders the figure as a standalone SVG document. */
export function renderFigure(input: FigureInput): string {
  const { cells, optimizers, lrs, stepsPerPoint } = input;
  const curves = cells.filter((c) => optimizers.some((o) => o.id === c.optimizer));
  const values = curves.flatMap((c) => c.curve).filter((v) => Number.isFinite(v) && v > 0);
  const yMax = Math.min(10, Math.max(3, ...values));
  const yMin = Math.max(1e-3, Math.min(1, ...values) * 0.8);
  const maxSteps = Math.max(1, input.totalSteps);
  const width = Math.max(760, LEFT + lrs.length * (PANEL_W + GAP) + 20);
  const accTop = TOP + PANEL_H + 90, accH = 210, accW = Math.min(width - LEFT - 200, 560);
  const height = accTop + accH + 60;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    text(LEFT, 26, input.title, 'font-size="17" font-weight="bold"'),
    text(LEFT, 46, input.subtitle, 'fill="#444"'),
  );
  // legend
  let lx = LEFT;
  for (const o of optimizers) {
    out.push(
      `<line x1="${lx}" y1="66" x2="${lx + 24}" y2="66" stroke="${o.color}" stroke-width="3"/>`,
      text(lx + 30, 70, o.label),
    );
    lx += 44 + o.label.length * 7;
  }

  // loss curves, one panel per learning rate
  const logMin = Math.log10(yMin), logMax = Math.log10(yMax);
  const yOf = (v: number) =>
    TOP +
    PANEL_H * (1 - (Math.log10(Math.min(Math.max(v, yMin), yMax)) - logMin) / (logMax - logMin));
  const ticks = [0.01, 0.03, 0.1, 0.3, 1, 3, 10].filter((t) => t >= yMin && t <= yMax);
  lrs.forEach((lr, p) => {
    const x0 = LEFT + p * (PANEL_W + GAP);
    const xOf = (i: number) =>
      x0 + PANEL_W * Math.min(maxSteps, (i + 1) * stepsPerPoint) / maxSteps;
    out.push(`<g class="panel" data-lr="${lr}">`);
    out.push(
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
      const y = yOf(t);
      out.push(
        `<line x1="${x0}" y1="${num(y)}" x2="${x0 + PANEL_W}" y2="${num(y)}" stroke="#eee"/>`,
      );
      if (p === 0) out.push(text(x0 - 6, y + 4, String(t), 'text-anchor="end" fill="#444"'));
    }
    for (const o of optimizers) {
      const cell = cellAt(cells, o.id, lr);
      if (!cell) continue;
      const d = pathData(cell.curve.map((v, i) => [xOf(i), v > 0 ? yOf(v) : NaN]));
      out.push(
        `<path class="loss" data-optimizer="${escapeXml(o.id)}" d="${d}" fill="none" ` +
          `stroke="${o.color}" stroke-width="1.5"><title>${escapeXml(o.label)}, lr ${
            formatLr(lr)
          }</title></path>`,
      );
    }
    out.push("</g>");
  });
  out.push(
    text(
      14,
      TOP + PANEL_H / 2,
      "training loss (log)",
      `text-anchor="middle" fill="#444" transform="rotate(-90 14 ${TOP + PANEL_H / 2})"`,
    ),
  );

  // final test accuracy against the learning rate
  const accs = curves.map((c) => c.testAccuracy).filter(Number.isFinite);
  const aMin = Math.max(0, Math.floor(10 * Math.min(1, ...accs)) / 10);
  const lrMin = Math.log10(Math.min(...lrs)), lrMax = Math.log10(Math.max(...lrs));
  const ax = (lr: number) =>
    LEFT + (lrMax > lrMin ? accW * (Math.log10(lr) - lrMin) / (lrMax - lrMin) : accW / 2);
  const ay = (a: number) => accTop + accH * (1 - (a - aMin) / (1 - aMin || 1));
  out.push(
    `<g class="accuracy-panel">`,
    text(LEFT, accTop - 14, "final test accuracy vs learning rate", 'font-weight="bold"'),
    `<rect x="${LEFT}" y="${accTop}" width="${accW}" height="${accH}" fill="none" stroke="#999"/>`,
  );
  for (let a = aMin; a <= 1.0001; a += 0.1) {
    out.push(
      `<line x1="${LEFT}" y1="${num(ay(a))}" x2="${LEFT + accW}" y2="${
        num(ay(a))
      }" stroke="#eee"/>`,
      text(LEFT - 6, ay(a) + 4, `${Math.round(100 * a)}%`, 'text-anchor="end" fill="#444"'),
    );
  }
  for (const lr of lrs) {
    out.push(
      text(ax(lr), accTop + accH + 16, formatLr(lr), 'text-anchor="middle" fill="#444"'),
    );
  }
  out.push(
    text(
      LEFT + accW / 2,
      accTop + accH + 34,
      "learning rate (log)",
      'text-anchor="middle" fill="#444"',
    ),
  );
  for (const o of optimizers) {
    const points = lrs.map((lr) =>
      [ax(lr), ay(cellAt(cells, o.id, lr)?.testAccuracy ?? NaN)] as const
    );
    out.push(
      `<path class="accuracy" data-optimizer="${escapeXml(o.id)}" d="${pathData(points)}" ` +
        `fill="none" stroke="${o.color}" stroke-width="2"><title>${
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
