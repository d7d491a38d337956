/**
 * Small helpers for the study's hand-written SVG figures.
 *
 * @module
 */
import { text } from "../_svg.ts";

export { escapeXml, lrAxisLabels, num, pathData, text, wrap } from "../_svg.ts";

/** The opening of a standalone SVG document with a white background. */
export function svgOpen(width: number, height: number): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">\n` +
    `<rect width="${width}" height="${height}" fill="white"/>`;
}

/** A legend row: a coloured line and a label per entry, from `x` at height `y`. */
export function legend(
  entries: readonly { label: string; color: string }[],
  x: number,
  y: number,
  maxWidth: number,
): { svg: string[]; height: number } {
  const svg: string[] = [];
  let lx = x, ly = y;
  for (const e of entries) {
    const w = 40 + e.label.length * 7;
    if (lx + w > x + maxWidth) {
      lx = x;
      ly += 18;
    }
    svg.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 24}" y2="${
        ly - 4
      }" stroke="${e.color}" stroke-width="3"/>`,
      text(lx + 30, ly, e.label),
    );
    lx += w;
  }
  return { svg, height: ly - y + 18 };
}
