/**
 * Small helpers for the study's hand-written SVG figures.
 *
 * @module
 */
import { escapeXml } from "../demo/figure_svg.ts";

export { escapeXml };

/** A coordinate rounded to 0.1. */
export const num = (x: number): string => (Math.round(x * 10) / 10).toString();

/** A text element. */
export function text(x: number, y: number, content: string, attrs = ""): string {
  return `<text x="${num(x)}" y="${num(y)}"${attrs ? " " + attrs : ""}>${
    escapeXml(content)
  }</text>`;
}

/** Path data through the points, broken where a value is not finite. */
export function pathData(points: readonly (readonly [number, number])[]): string {
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

/** Splits `sentence` into lines of at most `width` characters, at spaces. */
export function wrap(sentence: string, width: number): string[] {
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
