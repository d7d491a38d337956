/**
 * The targets of bench/compare.ts and whether a run met them: each a bound on ratios between
 * contenders, at the sizes it names (a size the run did not time is not measured).
 *
 * @module
 */
import { CLIFF_SKEW, stepKey } from "./contenders.ts";
import { type Cliff, cliffRates, manyRate, rateOf, ratioOf, type Results } from "./tables.ts";

/** A target, whether it was met (`undefined`: not measured), and the ratios behind it. */
export interface Verdict {
  target: string;
  met: boolean | undefined;
  detail: string;
}

/** A ratio to check: at size `label` (`n` parameters), contender `a`'s rate over `b`'s. */
type Pair = [label: string, n: number, a: string, b: string];

/** The verdict of `target`: every pair's ratio ≥ `bound`. */
function check(r: Results, target: string, pairs: Pair[], bound: number): Verdict {
  const values = pairs.map(([label, n, a, b]) => {
    const [x, y] = ratioOf(r, label, n, a, b);
    return { label, ratio: x !== undefined && y !== undefined ? x / y : undefined };
  });
  const known = values.filter((v) => v.ratio !== undefined);
  return {
    target,
    met: known.length === 0 ? undefined : known.every((v) => v.ratio! >= bound),
    detail: values.map((v) => `${v.label} ${v.ratio?.toFixed(2) ?? "—"}×`).join(", "),
  };
}

/** The pairs `a` over `b` at the run's sizes that `keep` picks. */
function pairs(r: Results, keep: (label: string, n: number) => boolean, a: string, b: string) {
  return r.sizes.filter(([l, n]) => keep(l, n)).map(([l, n]): Pair => [l, n, a, b]);
}

/** The wasm step against the C builds (one thread, then the threads against OpenMP). */
function againstC(r: Results): Verdict[] {
  const threads = check(
    r,
    `wasm on ${r.threads} threads ≥ 0.85× C OpenMP on ${r.threads} threads at 16M and 64M (4M reported)`,
    pairs(r, (l) => l === "16M" || l === "64M", "wasm-threads", "c-omp"),
    0.85,
  );
  const at4m = r.sizes.find(([l]) => l === "4M");
  if (at4m) {
    const [x, y] = ratioOf(r, "4M", at4m[1], "wasm-threads", "c-omp");
    threads.detail += `; 4M ${x !== undefined && y !== undefined ? (x / y).toFixed(2) : "—"}×`;
  }
  return [
    check(
      r,
      "wasm ≥ 0.9× C -msse4.2 at every size ≥ 256K",
      pairs(r, (_, n) => n >= 262_144, "wasm", "c-sse"),
      0.9,
    ),
    check(
      r,
      "wasm ≥ 0.9× C -march=native where memory is the bound (64M)",
      pairs(r, (l) => l === "64M", "wasm", "c-native"),
      0.9,
    ),
    threads,
  ];
}

/**
 * The default's rows, each with the bound of a separate read pass from this run's own figures:
 * step / (step + check).
 */
function defaultCheck(r: Results): Verdict[] {
  const at = r.sizes.filter(([l]) => l === "4M" || l === "64M");
  const bound = (label: string, n: number, key: string, checkKey: string) => {
    const stepRate = rateOf(r, label, n, key);
    const checkRate = rateOf(r, label, n, checkKey);
    if (stepRate === undefined || checkRate === undefined) return "—";
    return `${(checkRate / (stepRate + checkRate)).toFixed(2)}×`;
  };
  // [target, default's key, "propagate" key, check pass key, how the bound is introduced]
  const rows: [string, string, string, string, string][] = [
    [
      'default nonFinite ("skip") ≥ 0.9× "propagate" at 4M and 64M (wasm zero-copy, 1 thread)',
      "wasm-skip",
      "wasm",
      "check-pass",
      "bound of a read pass before the step, this run",
    ],
    [
      "the same, copied-in gradients",
      "wasm-copy-skip",
      "wasm-copy",
      "check-pass",
      "the same bound",
    ],
    [
      `the same, ${r.threads} threads (zero-copy)`,
      "wasm-threads-skip",
      "wasm-threads",
      "check-pass-threads",
      `the bound on ${r.threads} threads, from their own check pass`,
    ],
  ];
  return rows.map(([target, skipKey, key, checkKey, intro]) => {
    const verdict = check(r, target, at.map(([l, n]) => [l, n, skipKey, key]), 0.9);
    verdict.detail += ` (${intro}: ${
      at.map(([l, n]) => `${l} ${bound(l, n, key, checkKey)}`).join(", ")
    })`;
    return verdict;
  });
}

/**
 * The speed targets of 8-bit states (issue #23), each with the bounds of any 8-bit step here: the
 * rule's step with its moments as bytes and no codec, on as many threads as the target, over the
 * 32-bit step's rate; for RAdam on one thread, also its divide and square root alone (no state
 * format can make a step faster than that).
 */
function compactStates(r: Results): Verdict[] {
  const big = (l: string) => l === "4M" || l === "16M" || l === "64M";
  const targets: [string, (l: string) => boolean, string, number, boolean][] = [
    ["8-bit RAdam ≥ 1.4× the 32-bit step at 4M, 16M and 64M (1 thread)", big, "radam", 1.4, false],
    [
      "8-bit RAdam ≥ 0.8× the 32-bit step at 256K (1 thread)",
      (l) => l === "256K",
      "radam",
      0.8,
      false,
    ],
    [
      "8-bit Lion ≥ 1.25× the 32-bit step at 64M (1 thread)",
      (l) => l === "64M",
      "lion",
      1.25,
      false,
    ],
    [`8-bit RAdam ≥ 1.4× at 4M, 16M, 64M on ${r.threads} threads`, big, "radam", 1.4, true],
    [`8-bit Lion ≥ 1.25× at 64M on ${r.threads} threads`, (l) => l === "64M", "lion", 1.25, true],
  ];
  return targets.map(([target, keep, name, bound, threads]) => {
    const verdict = check(
      r,
      target,
      pairs(r, keep, stepKey(name, threads, true), stepKey(name, threads, false)),
      bound,
    );
    const bounds = (label: string, key: string, base: string) =>
      `${label}: ${
        pairs(r, keep, key, base).map(([l, n, a, b]) => {
          const [x, y] = ratioOf(r, l, n, a, b);
          return `${l} ${x !== undefined && y !== undefined ? (x / y).toFixed(2) : "—"}×`;
        }).join(", ")
      }`;
    const base = stepKey(name, threads, false);
    const bytesKey = `bound-${name}-bytes${threads ? "-threads" : ""}`;
    const found = [
      bounds("bound of bytes with no codec", bytesKey, base),
      bounds("of bytes and block scales", bytesKey.replace("-bytes", "-scaled"), base),
    ];
    if (name === "radam" && !threads) {
      found.push(bounds("of div + sqrt alone", "bound-divsqrt", base));
    }
    verdict.detail += ` (${found.join("; ")})`;
    return verdict;
  });
}

/** The 200-tensor model against one tensor of the same size. */
function manyTensors(r: Results): Verdict {
  const ratio = manyRate(r, "many")! / manyRate(r, "one")!;
  return {
    target: "200-tensor model within 1.1× of one tensor of the same size (zero-copy)",
    met: Number.isFinite(ratio) ? ratio >= 1 / 1.1 : undefined,
    detail: `${ratio.toFixed(2)}× the one-tensor rate (copied-in: ${
      (manyRate(r, "many-copy")! / manyRate(r, "one-copy")!).toFixed(2)
    }×)`,
  };
}

/** No cliff: every power of two at ≥ 0.9× the size {@linkcode CLIFF_SKEW} × it. */
function noCliff(cliff: Cliff, threads: number): Verdict {
  const values = cliff.sizes.flatMap(([label, n]) =>
    cliff.kinds.map((kind) => {
      const [a, b] = cliffRates(cliff, label, n, kind.key);
      return { what: `${label} ${kind.threads}T`, ratio: a && b ? a / b : undefined };
    })
  );
  const known = values.filter((v) => v.ratio !== undefined);
  return {
    target:
      `no cliff: wasm at 2^k ≥ 0.9× wasm at 2^k × ${CLIFF_SKEW} (16M, 32M, 64M; 1 and ${threads} threads)`,
    met: known.length === 0 ? undefined : known.every((v) => v.ratio! >= 0.9),
    detail: values.map((v) => `${v.what} ${v.ratio?.toFixed(2) ?? "—"}×`).join(", "),
  };
}

/** Every target's verdict, in the order of the report. */
export function verdicts(r: Results): Verdict[] {
  return [
    ...againstC(r),
    ...defaultCheck(r),
    check(
      r,
      "wasm ≥ 10× TensorFlow.js Adam (wasm backend) at every size",
      pairs(r, () => true, "wasm", "tfjs-wasm"),
      10,
    ),
    manyTensors(r),
    ...compactStates(r),
    ...(r.cliff ? [noCliff(r.cliff, r.threads)] : []),
  ];
}

/** The verdicts as a Markdown table. */
export function verdictTable(list: Verdict[]): string {
  return [
    "| target | met | ratios |",
    "|---|---|---|",
    ...list.map((v) =>
      `| ${v.target} | ${
        v.met === undefined ? "not measured" : v.met ? "yes" : "**no**"
      } | ${v.detail} |`
    ),
  ].join("\n");
}
