/**
 * What the hand-written SVG figures of the demo (examples/demo/figure_svg.ts) and of the study
 * (examples/study/) share: escaping, coordinates, text, broken paths, wrapped sentences and the
 * learning-rate axis.
 *
 * @module
 */
import { formatLr } from "./demo/summary.ts";

/** Escapes text for use in SVG element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

/** A coordinate rounded to 0.1. */
export const num = (x: number): string => (Math.round(x * 10) / 10).toString();

/** A text element at (`x`, `y`) with extra attributes `attrs`. */
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

/**
 * The labels under a panel whose x axis is the learning rate (log scale): each of `lrs` at
 * `xOf(lr)`, and the axis's name centred under the panel from `left`, `width` wide, whose
 * bottom edge is at `bottom`.
 */
export function lrAxisLabels(
  lrs: readonly number[],
  xOf: (lr: number) => number,
  left: number,
  width: number,
  bottom: number,
): string[] {
  const attrs = 'text-anchor="middle" fill="#444"';
  return [
    ...lrs.map((lr) => text(xOf(lr), bottom + 16, formatLr(lr), attrs)),
    text(left + width / 2, bottom + 34, "learning rate (log)", attrs),
  ];
}
