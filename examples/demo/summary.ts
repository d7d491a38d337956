/**
 * Aggregates the runs of a sweep over seeds and renders the results as text: the table the
 * demo prints (and writes as Markdown), and a plain statement of who won where.
 *
 * @module
 */
import type { OptimizerEntry } from "./optimizer_table.ts";
import type { RunResult } from "./train.ts";

/** The runs of one optimizer at one learning rate, over the seeds. */
export interface Cell {
  readonly optimizer: string;
  readonly lr: number;
  readonly runs: readonly RunResult[];
  /** Mean final training loss over the seeds that did not diverge (NaN if all did). */
  readonly trainLoss: number;
  /** Mean test accuracy over all seeds. */
  readonly testAccuracy: number;
  /** Seeds whose loss stopped being finite. */
  readonly diverged: number;
  /** Mean loss curve over the seeds (pointwise, over the runs that reached each point). */
  readonly curve: number[];
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Groups `results` by optimizer and learning rate and averages over the seeds. */
export function aggregate(results: readonly RunResult[]): Cell[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const key = `${r.optimizer}@${r.lr}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(r);
  }
  return [...groups.values()].map((runs) => {
    const finite = runs.filter((r) => !r.diverged);
    const length = Math.max(...runs.map((r) => r.curve.length));
    const curve: number[] = [];
    for (let i = 0; i < length; i++) {
      const points = runs.filter((r) => i < r.curve.length).map((r) => r.curve[i]);
      curve.push(mean(points));
    }
    return {
      optimizer: runs[0].optimizer,
      lr: runs[0].lr,
      runs,
      trainLoss: finite.length ? mean(finite.map((r) => r.trainLoss)) : NaN,
      testAccuracy: mean(runs.map((r) => r.testAccuracy)),
      diverged: runs.length - finite.length,
      curve,
    };
  });
}

/** The cell of `optimizer` at `lr`. */
export function cellAt(cells: readonly Cell[], optimizer: string, lr: number): Cell | undefined {
  return cells.find((c) => c.optimizer === optimizer && c.lr === lr);
}

/** A learning rate as people write it: 1e-3, 3e-2, 0.1 → "1e-1". */
export function formatLr(lr: number): string {
  return lr.toExponential().replace(/\.?0+e/, "e").replace("e+", "e");
}

function formatCell(cell: Cell | undefined): string {
  if (!cell) return "–";
  const acc = `${(100 * cell.testAccuracy).toFixed(1)}%`;
  const loss = Number.isFinite(cell.trainLoss) ? cell.trainLoss.toFixed(3) : "diverged";
  const note = cell.diverged > 0 && Number.isFinite(cell.trainLoss)
    ? ` (${cell.diverged} diverged)`
    : "";
  return `${loss} / ${acc}${note}`;
}

/**
 * The results as a table: one row per learning rate, one column per optimizer, each cell
 * "final training loss / test accuracy" (means over seeds); the best accuracy of each row is
 * marked with `*`. `markdown` gives a Markdown table, else aligned plain text.
 */
export function resultsTable(
  cells: readonly Cell[],
  optimizers: readonly OptimizerEntry[],
  lrs: readonly number[],
  markdown = false,
): string {
  const header = ["lr", ...optimizers.map((o) => o.label)];
  const rows = lrs.map((lr) => {
    const row = optimizers.map((o) => cellAt(cells, o.id, lr));
    const best = Math.max(...row.map((c) => c?.testAccuracy ?? -1));
    return [
      formatLr(lr),
      ...row.map((c) => formatCell(c) + (c && c.testAccuracy === best ? " *" : "")),
    ];
  });
  return table(header, rows, markdown);
}

/**
 * Plain sentences on the outcome, computed from the numbers: the winner at each learning rate,
 * and each optimizer's best and worst test accuracy over the sweep (its robustness to lr).
 */
export function verdict(
  cells: readonly Cell[],
  optimizers: readonly OptimizerEntry[],
  lrs: readonly number[],
): string[] {
  const lines: string[] = [];
  const winners = lrs.map((lr) => {
    const row = optimizers
      .map((o) => ({ o, c: cellAt(cells, o.id, lr) }))
      .filter((x) => x.c !== undefined);
    row.sort((a, b) => b.c!.testAccuracy - a.c!.testAccuracy);
    return `${formatLr(lr)}: ${row[0]?.o.label ?? "–"}`;
  });
  lines.push(`Best test accuracy at each lr: ${winners.join("; ")}.`);
  const spreads = optimizers.map((o) => {
    const accs = lrs.map((lr) => cellAt(cells, o.id, lr)?.testAccuracy ?? NaN)
      .filter(Number.isFinite);
    return { o, worst: Math.min(...accs), best: Math.max(...accs) };
  });
  spreads.sort((a, b) => b.worst - a.worst);
  lines.push(
    "Test accuracy over the whole lr range (worst … best), most robust first: " +
      spreads.map((s) =>
        `${s.o.label} ${(100 * s.worst).toFixed(1)}% … ${(100 * s.best).toFixed(1)}%`
      ).join("; ") + ".",
  );
  return lines;
}

/** The comparison of each format with 32-bit (`--states` with more than one). */
export interface FormatComparison {
  readonly title: string;
  /** Aligned plain text, and the same as Markdown. */
  readonly text: string;
  readonly markdown: string;
  /** What it shows, against the criterion. */
  readonly verdict: string;
}

/** Test accuracy a format may lose against 32-bit where 32-bit reaches `FLOOR` (issue #23). */
const MARGIN = 0.005;
const FLOOR = 0.8;

/**
 * Each format of `formats` other than `32bit` against `32bit`, per optimizer (rows `bases`) and
 * learning rate: test accuracy (mean of the seeds) of both and the difference, `✗` where the
 * format loses more than 0.5 points at a learning rate where 32-bit reaches 80 %.
 */
export function formatComparison(
  cells: readonly Cell[],
  bases: readonly OptimizerEntry[],
  formats: readonly string[],
  lrs: readonly number[],
): FormatComparison {
  const others = formats.filter((f) => f !== "32bit");
  const header = ["lr", ...others.flatMap((f) => bases.map((b) => `${b.label}: ${f}`))];
  const misses: string[] = [];
  let checked = 0;
  const rows = lrs.map((lr) => [
    formatLr(lr),
    ...others.flatMap((format) =>
      bases.map((b) => {
        const wide = cellAt(cells, b.id, lr), other = cellAt(cells, `${b.id}@${format}`, lr);
        if (!wide || !other) return "–";
        const d = other.testAccuracy - wide.testAccuracy;
        const judged = wide.testAccuracy >= FLOOR;
        const miss = judged && d < -MARGIN;
        if (judged) checked++;
        if (miss) misses.push(`${b.label} ${format} at ${formatLr(lr)} (${points(d)})`);
        return `${pct(wide.testAccuracy)} → ${pct(other.testAccuracy)} (${points(d)})${
          miss ? " ✗" : ""
        }`;
      })
    ),
  ]);
  const seeds = cells[0]?.runs.length ?? 0;
  return {
    title: `Test accuracy, 32-bit → each format (difference in points), mean of ${seeds} seeds ` +
      `(✗: more than ${100 * MARGIN} points lost where 32-bit reaches ${100 * FLOOR} %):`,
    text: table(header, rows, false),
    markdown: table(header, rows, true),
    verdict:
      `${checked - misses.length} of ${checked} comparisons where 32-bit reaches ${
        100 * FLOOR
      } % are within ${100 * MARGIN} points` +
      (misses.length ? `; not: ${misses.join(", ")}.` : "."),
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const points = (d: number) => `${d >= 0 ? "+" : "−"}${Math.abs(100 * d).toFixed(2)}`;

/** Rows under a header, as Markdown or aligned plain text. */
function table(header: string[], rows: string[][], markdown: boolean): string {
  if (markdown) {
    const line = (cols: string[]) => `| ${cols.join(" | ")} |`;
    return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cols: string[]) => cols.map((c, i) => c.padEnd(widths[i])).join("   ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
