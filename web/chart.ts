/**
 * The live loss chart: one SVG path per optimizer (an exponential moving average of the
 * minibatch loss, log scale), redrawn as steps come in.
 *
 * @module
 */
/// <reference lib="dom" />

const W = 820, H = 310, LEFT = 50, RIGHT = 12, TOP = 30, BOTTOM = 34;
const SVG_NS = "http://www.w3.org/2000/svg";

/** One line of the chart. */
export interface Series {
  readonly label: string;
  readonly color: string;
  /** Smoothed loss at each step so far. */
  readonly values: number[];
}

function el(name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Draws `series` over `steps` steps into `host` (replacing what was there). */
export function drawChart(host: HTMLElement, series: readonly Series[], steps: number): void {
  const values = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  const hi = Math.max(0.1, ...values), lo = Math.max(1e-3, Math.min(hi / 10, ...values));
  const lHi = Math.log10(hi), lLo = Math.log10(lo);
  const x = (i: number) => LEFT + (W - LEFT - RIGHT) * (i + 1) / Math.max(1, steps);
  const y = (v: number) =>
    TOP + (H - TOP - BOTTOM) * (lHi - Math.log10(Math.min(hi, Math.max(lo, v)))) / (lHi - lLo || 1);
  const svg = el("svg", {
    width: W,
    height: H,
    viewBox: `0 0 ${W} ${H}`,
    "font-size": 11,
    "font-family": "sans-serif",
  });
  svg.append(
    el("rect", {
      x: LEFT,
      y: TOP,
      width: W - LEFT - RIGHT,
      height: H - TOP - BOTTOM,
      fill: "none",
      stroke: "#999",
    }),
  );
  for (const t of [0.01, 0.03, 0.1, 0.3, 1, 3, 10]) {
    if (t < lo || t > hi) continue;
    svg.append(
      el("line", { x1: LEFT, x2: W - RIGHT, y1: y(t), y2: y(t), stroke: "#eee" }),
      el("text", { x: LEFT - 5, y: y(t) + 4, "text-anchor": "end", fill: "#444" }, String(t)),
    );
  }
  svg.append(
    el("text", { x: LEFT, y: H - 12, fill: "#444" }, "0"),
    el("text", { x: W - RIGHT, y: H - 12, "text-anchor": "end", fill: "#444" }, `${steps} steps`),
    el(
      "text",
      { x: (W + LEFT) / 2, y: H - 12, "text-anchor": "middle", fill: "#444" },
      "training loss (moving average, log scale)",
    ),
  );
  series.forEach((s, k) => {
    let d = "";
    s.values.forEach((v, i) => {
      if (Number.isFinite(v) && v > 0) d += `${d ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    const path = el("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, class: "loss" });
    path.dataset.optimizer = s.label;
    path.dataset.points = String(s.values.length);
    svg.append(path);
    // the legend, above the plot
    svg.append(
      el("line", {
        x1: LEFT + 110 * k,
        x2: LEFT + 24 + 110 * k,
        y1: 14,
        y2: 14,
        stroke: s.color,
        "stroke-width": 3,
      }),
    );
    svg.append(el("text", { x: LEFT + 28 + 110 * k, y: 18 }, s.label));
  });
  host.replaceChildren(svg);
}
