/**
 * The figures of a bench/compare.ts run and the Markdown tables made of them: throughput per
 * contender and size, ratios between contenders, the many-tensor layouts, the power-of-two
 * sizes.
 *
 * @module
 */
import {
  CLIFF_SKEW,
  type CliffKind,
  compactRatioRows,
  type RatioRow,
  ruleRatioRows,
} from "./contenders.ts";
import type { Contender, Measure, Size } from "./timing.ts";

/** The power-of-two section of a run. */
export interface Cliff {
  /** The powers of two, each timed against itself × {@linkcode CLIFF_SKEW}. */
  sizes: Size[];
  kinds: CliffKind[];
  /** Per size label: `<kind>@pow2` and `<kind>@skew` measures. */
  measures: Map<string, Map<string, Measure>>;
}

/** Everything a run measured. */
export interface Results {
  /** The sizes of the throughput table, in order. */
  sizes: Size[];
  /** The thread count of the threaded rows. */
  threads: number;
  /** The rows of the throughput table. */
  contenders: Contender[];
  /** Per size label, each contender's measure by key. */
  table: Map<string, Map<string, Measure>>;
  /** The many-tensor layouts, all at `manySize` parameters. */
  many: Contender[];
  manySize: number;
  manyMeasures: Map<string, Measure>;
  /** The power-of-two section, where it ran. */
  cliff?: Cliff;
}

/** Parameters per second of `m` at `n` parameters. */
export const rate = (m: Measure | undefined, n: number): number | undefined =>
  m?.seconds ? n / m.seconds : undefined;

/** A rate as `1.23 G` or `456.7 M` (parameters per second). */
export const fmtRate = (r: number | undefined): string =>
  r === undefined ? "—" : r >= 1e9 ? `${(r / 1e9).toFixed(2)} G` : `${(r / 1e6).toFixed(1)} M`;

/** `a / b` as `1.23×`. */
export const fmtRatio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined ? "—" : `${(a / b).toFixed(2)}×`;

/** The rate of contender `key` at size `label` (`n` parameters). */
export function rateOf(r: Results, label: string, n: number, key: string): number | undefined {
  return rate(r.table.get(label)?.get(key), n);
}

/** The rates of contenders `a` and `b` at size `label`. */
export function ratioOf(
  r: Results,
  label: string,
  n: number,
  a: string,
  b: string,
): readonly [number | undefined, number | undefined] {
  return [rateOf(r, label, n, a), rateOf(r, label, n, b)];
}

/** The head of a table with one column per size. */
function head(title: string, sizes: Size[]): string[] {
  return [
    `| ${title} | ` + sizes.map(([l]) => l).join(" | ") + " |",
    "|---|" + sizes.map(() => "---:").join("|") + "|",
  ];
}

/** Parameters per second of every contender at every size. */
export function throughputTable(r: Results): string {
  const lines = head("contender", r.sizes);
  for (const c of r.contenders) {
    const cells = r.sizes.map(([label, n]) => {
      const m = r.table.get(label)?.get(c.key);
      return m?.seconds ? fmtRate(rate(m, n)) : `— (${m?.note ?? "n/a"})`;
    });
    lines.push(`| ${c.name} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** The rows of the ratio table on `threads` threads. */
function ratioRows(threads: number): RatioRow[] {
  const skip = 'wasm default nonFinite ("skip") / "propagate"';
  return [
    ["wasm / C -msse4.2", "wasm", "c-sse"],
    ["wasm / C -march=native", "wasm", "c-native"],
    ["wasm copied-in / C -msse4.2", "wasm-copy", "c-sse"],
    [`${skip}, zero-copy`, "wasm-skip", "wasm"],
    [`${skip}, copied-in`, "wasm-copy-skip", "wasm-copy"],
    [
      `wasm ${threads} threads default nonFinite ("skip") / "propagate"`,
      "wasm-threads-skip",
      "wasm-threads",
    ],
    ["wasm / js", "wasm", "js"],
    ["wasm / TensorFlow.js wasm", "wasm", "tfjs-wasm"],
    ["wasm / TensorFlow.js cpu", "wasm", "tfjs-cpu"],
    [
      "C -march=native / TensorFlow.js wasm (the most any kernel could lead by)",
      "c-native",
      "tfjs-wasm",
    ],
    ["wasm / C OpenMP (all cores)", "wasm", "c-omp"],
    [`wasm ${threads} threads / C OpenMP ${threads} threads`, "wasm-threads", "c-omp"],
    [`wasm ${threads} threads / wasm 1 thread`, "wasm-threads", "wasm"],
    ...ruleRatioRows(),
    ...compactRatioRows(threads),
  ];
}

/** Ratios of rates between contenders at every size. */
export function ratioTable(r: Results): string {
  const lines = head("ratio (params/s)", r.sizes);
  for (const [title, a, b] of ratioRows(r.threads)) {
    const cells = r.sizes.map(([label, n]) => fmtRatio(...ratioOf(r, label, n, a, b)));
    lines.push(`| ${title} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** The rate of many-tensor contender `key`. */
export function manyRate(r: Results, key: string): number | undefined {
  return rate(r.manyMeasures.get(key), r.manySize);
}

/** Each many-tensor layout's rate, and its ratio to one tensor (copied-in to copied-in). */
export function manyTable(r: Results): string {
  return [
    "| layout | params/s | ratio to one tensor |",
    "|---|---:|---:|",
    ...r.many.map((c) => {
      const base = c.key.endsWith("copy") ? "one-copy" : "one";
      return `| ${c.name} | ${fmtRate(manyRate(r, c.key))} | ${
        fmtRatio(manyRate(r, c.key), manyRate(r, base))
      } |`;
    }),
  ].join("\n");
}

/** The rates of one kind at the power of two `n` (size `label`) and at `n` × the skew. */
export function cliffRates(
  cliff: Cliff,
  label: string,
  n: number,
  key: string,
): readonly [number | undefined, number | undefined] {
  const m = cliff.measures.get(label);
  const a = rate(m?.get(`${key}@pow2`), n);
  const b = rate(m?.get(`${key}@skew`), Math.round(n * CLIFF_SKEW));
  return [a, b];
}

/** Each kind's rate at every power of two, at it × the skew, and their ratio. */
export function cliffTable(cliff: Cliff): string {
  const lines = [
    `| size | ${
      cliff.kinds.map(({ name }) => `${name}: 2^k | × ${CLIFF_SKEW} | ratio`).join(" | ")
    } |`,
    "|---|" + cliff.kinds.map(() => "---:|---:|---:").join("|") + "|",
  ];
  for (const [label, n] of cliff.sizes) {
    const cells = cliff.kinds.map(({ key }) => {
      const [a, b] = cliffRates(cliff, label, n, key);
      return `${fmtRate(a)} | ${fmtRate(b)} | ${fmtRatio(a, b)}`;
    });
    lines.push(`| ${label} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}
