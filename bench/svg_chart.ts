/**
 * A log-log line chart as a standalone SVG string, written by hand (no dependency): one line
 * per series, decade grid lines, a legend on the right.
 *
 * @module
 */

/** One line of the chart. */
export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

/** Titles of the chart and of its axes. */
export interface ChartLabels {
  title: string;
  xLabel: string;
  yLabel: string;
}

const COLORS = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function siLabel(value: number): string {
  const units: [number, string][] = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]];
  for (const [scale, unit] of units) if (value >= scale) return `${value / scale}${unit}`;
  return String(value);
}

/** The chart of `series` on log-log axes, as SVG text. */
export function writeSvgChart(series: Series[], labels: ChartLabels): string {
  const width = 900, height = 480;
  const left = 80, right = 330, top = 40, bottom = 60;
  const plotW = width - left - right, plotH = height - top - bottom;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const x0 = Math.floor(Math.log10(Math.min(...xs)));
  const x1 = Math.ceil(Math.log10(Math.max(...xs)));
  const y0 = Math.floor(Math.log10(Math.min(...ys)));
  const y1 = Math.ceil(Math.log10(Math.max(...ys)));
  const px = (x: number) => left + (Math.log10(x) - x0) / (x1 - x0 || 1) * plotW;
  const py = (y: number) => top + plotH - (Math.log10(y) - y0) / (y1 - y0 || 1) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left + plotW / 2}" y="22" text-anchor="middle" font-size="16">${
      escapeXml(labels.title)
    }</text>`,
  );
  for (let e = x0; e <= x1; e++) {
    const x = px(10 ** e);
    out.push(
      `<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotH}" stroke="#ddd"/>`,
      `<text x="${x}" y="${top + plotH + 18}" text-anchor="middle">${siLabel(10 ** e)}</text>`,
    );
  }
  for (let e = y0; e <= y1; e++) {
    const y = py(10 ** e);
    out.push(
      `<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y + 4}" text-anchor="end">${siLabel(10 ** e)}</text>`,
    );
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${left + plotW / 2}" y="${height - 16}" text-anchor="middle">${
      escapeXml(labels.xLabel)
    }</text>`,
    `<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${
      escapeXml(labels.yLabel)
    }</text>`,
  );
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const path = s.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ");
    out.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of s.points) {
      out.push(
        `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${color}"/>`,
      );
    }
    const ly = top + 10 + k * 20;
    out.push(
      `<line x1="${left + plotW + 16}" y1="${ly}" x2="${left + plotW + 40}" y2="${ly}" ` +
        `stroke="${color}" stroke-width="2"/>`,
      `<text x="${left + plotW + 46}" y="${ly + 4}">${escapeXml(s.name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
