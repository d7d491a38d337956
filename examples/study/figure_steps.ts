/**
 * `study_steps.svg`: the article's mechanism. For each task and each traced optimizer, the
 * distribution of the size of every parameter's step, `|lr · m̂ / (√v̂ + ε)|` (RAdam: the step it
 * takes), over the first iterations, as histograms of log₁₀ of it stacked along the iterations
 * (the first at the top), in the style of the article's figure of the distorted distributions.
 *
 * @module
 */
import { formatLr } from "../demo/summary.ts";
import type { TaskName } from "./models.ts";
import { studyOptimizer } from "./optimizers.ts";
import { HIST_BINS, HIST_MAX, HIST_MIN } from "./step_sizes.ts";
import type { TraceRow } from "./train.ts";
import { escapeXml, num, svgOpen, text, wrap } from "./svg.ts";

/** The traced steps of one optimizer in one task. */
export interface Trace {
  readonly task: TaskName;
  readonly optimizer: string;
  readonly lr: number;
  readonly rows: readonly TraceRow[];
}

/** The iterations drawn, where traced. */
export const SHOWN_STEPS = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 50, 70, 100, 150, 200];

const PANEL_W = 300, RIDGE = 15, PEAK = 34, LEFT = 70, GAP = 40;

function ridgePanel(trace: Trace, x0: number, y0: number, lo: number, hi: number): string[] {
  const row = studyOptimizer(trace.optimizer);
  const rows = SHOWN_STEPS.map((t) => trace.rows.find((r) => r.t === t)).filter((r) =>
    r !== undefined
  );
  const xOf = (log: number) => x0 + PANEL_W * (log - lo) / (hi - lo);
  const binLog = (b: number) => HIST_MIN + (b + 0.5) * (HIST_MAX - HIST_MIN) / HIST_BINS;
  const height = PEAK + RIDGE * rows.length;
  const out = [
    `<g class="steps" data-task="${trace.task}" data-optimizer="${escapeXml(trace.optimizer)}">`,
    text(x0, y0 - 10, `${row.label}`, 'font-weight="bold"'),
    `<rect x="${x0}" y="${y0}" width="${PANEL_W}" height="${
      height + 6
    }" fill="none" stroke="#ccc"/>`,
  ];
  // the learning rate: every step of Adam's first iteration has exactly this size
  const lrX = xOf(Math.log10(trace.lr));
  out.push(
    `<line x1="${num(lrX)}" y1="${y0}" x2="${num(lrX)}" y2="${
      y0 + height + 6
    }" stroke="#999" stroke-dasharray="3,3"/>`,
  );
  rows.forEach((r, i) => {
    const base = y0 + PEAK + RIDGE * i;
    const peak = Math.max(1, ...r.histogram);
    const pts: string[] = [`${num(xOf(lo))},${num(base)}`];
    r.histogram.forEach((count, b) => {
      const log = binLog(b);
      if (log < lo || log > hi) return;
      pts.push(`${num(xOf(log))},${num(base - PEAK * count / peak)}`);
    });
    pts.push(`${num(xOf(hi))},${num(base)}`);
    out.push(
      `<polygon class="ridge" data-t="${r.t}" points="${
        pts.join(" ")
      }" fill="${row.color}" fill-opacity="0.55" stroke="${row.color}" stroke-width="0.8"><title>step ${r.t}: median ${
        r.median.toExponential(2)
      }, lr ${r.lr.toExponential(2)}</title></polygon>`,
      `<line x1="${num(xOf(Math.log10(r.median)))}" y1="${num(base - 4)}" x2="${
        num(xOf(Math.log10(r.median)))
      }" y2="${num(base + 2)}" stroke="black" stroke-width="1.5"/>`,
    );
    if (x0 === LEFT) out.push(text(x0 - 8, base, `t = ${r.t}`, 'text-anchor="end" fill="#444"'));
  });
  for (let e = Math.ceil(lo); e <= hi; e++) {
    out.push(text(xOf(e), y0 + height + 20, `1e${e}`, 'text-anchor="middle" fill="#444"'));
  }
  out.push("</g>");
  return out;
}

/** Renders the figure; `notes` go under it. */
export function renderStepsFigure(
  traces: readonly Trace[],
  tasks: readonly TaskName[],
  title: string,
  notes: readonly string[],
): string {
  const optimizers = [...new Set(traces.map((t) => t.optimizer))];
  // x range: every bin with data, in whole decades
  let lo = HIST_MAX, hi = HIST_MIN;
  for (const t of traces) {
    for (const r of t.rows) {
      r.histogram.forEach((c, b) => {
        if (c === 0) return;
        const log = HIST_MIN + b * (HIST_MAX - HIST_MIN) / HIST_BINS;
        lo = Math.min(lo, Math.floor(log));
        hi = Math.max(hi, Math.ceil(log + (HIST_MAX - HIST_MIN) / HIST_BINS));
      });
    }
  }
  if (!(hi > lo)) [lo, hi] = [HIST_MIN, HIST_MAX];
  const shown = Math.max(
    1,
    ...traces.map((t) => SHOWN_STEPS.filter((s) => t.rows.some((r) => r.t === s)).length),
  );
  const panelH = PEAK + RIDGE * shown + 6;
  const rowH = panelH + 70;
  const width = LEFT + optimizers.length * (PANEL_W + GAP);
  const wrapped = notes.flatMap((n) => wrap(n, Math.floor((width - LEFT) / 6.6)));
  const top = 40 + 16 * wrapped.length;
  const out = [
    svgOpen(width, top + tasks.length * rowH + 20),
    text(LEFT, 24, title, 'font-size="16" font-weight="bold"'),
    ...wrapped.map((s, i) => text(LEFT, 44 + 16 * i, s, 'fill="#444"')),
  ];
  tasks.forEach((task, ti) => {
    const y0 = top + 40 + ti * rowH;
    const lr = traces.find((t) => t.task === task)?.lr;
    out.push(
      text(
        LEFT,
        y0 - 26,
        `${task} model, lr = ${
          lr === undefined ? "?" : formatLr(lr)
        }: log₁₀ |step| of every parameter (black tick: median; dashed: lr)`,
        'font-weight="bold" fill="#222"',
      ),
    );
    optimizers.forEach((id, oi) => {
      const trace = traces.find((t) => t.task === task && t.optimizer === id);
      if (trace) out.push(...ridgePanel(trace, LEFT + oi * (PANEL_W + GAP), y0, lo, hi));
    });
  });
  out.push("</svg>", "");
  return out.join("\n");
}
