/**
 * What the hand-written SVG figures of the demo (examples/demo/figure_svg.ts) and of the study
 * (examples/study/) share: escaping, coordinates, text, broken paths, wrapped sentences and the
 * learning-rate axis.
 *
 * @module
 */
import { formatLr } from "./demo/summary.ts";

/**
 * Escapes text for use in SVG element content and attribute values.
 *
 * @example
 * ```ts
 * import { escapeXml } from "./_svg.ts";
 * console.log(escapeXml(`a < "b"`)); // a &lt; &quot;b&quot;
 * ```
 */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

/**
 * A coordinate rounded to 0.1.
 *
 * @example
 * ```ts
 * import { num } from "./_svg.ts";
 * console.log(num(12.345)); // 12.3
 * ```
 */
export const num = (x: number): string => (Math.round(x * 10) / 10).toString();

/**
 * A text element at (`x`, `y`) with extra attributes `attrs`.
 *
 * @example
 * ```ts
 * import { text } from "./_svg.ts";
 * console.log(text(1, 2, "a & b", 'fill="#444"')); // <text x="1" y="2" fill="#444">a &amp; b</text>
 * ```
 */
export function text(x: number, y: number, content: string, attrs = ""): string {
  return `<text x="${num(x)}" y="${num(y)}"${attrs ? " " + attrs : ""}>${
    escapeXml(content)
  }</text>`;
}

/**
 * Path data through the points, broken where a value is not finite.
 *
 * @example
 * ```ts
 * import { pathData } from "./_svg.ts";
 * console.log(pathData([[0, 0], [1, 1], [2, NaN], [3, 3], [4, 4]])); // M0,0L1,1M3,3L4,4
 * ```
 */
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

/**
 * Splits `sentence` into lines of at most `width` characters, at spaces.
 *
 * @example
 * ```ts
 * import { wrap } from "./_svg.ts";
 * console.log(wrap("one two three", 8)); // ["one two", "three"]
 * ```
 */
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
 *
 * @example
 * ```ts
 * import { lrAxisLabels } from "./_svg.ts";
 * const labels = lrAxisLabels([1e-3, 1e-2], (lr) => 100 + 50 * Math.log10(lr / 1e-3), 80, 100, 200);
 * console.log(labels.length); // 3: one a learning rate, and the axis's name
 * ```
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
