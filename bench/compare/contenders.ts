/**
 * Who runs in bench/compare.ts, in table order: the library's rows (RAdam's variants, then one
 * row per other rule of the registry, then threads), the default check's read pass, TensorFlow.js
 * and the C builds; the many-tensor layouts; the kinds timed at powers of two.
 *
 * @module
 */
import { cContender, type CVariant, cVariants } from "./c_baseline.ts";
import { divSqrtContender, rmwContender } from "./bounds.ts";
import { bytesContender } from "./bytes_bounds.ts";
import { checkPassContender, libraryContender } from "./library.ts";
import { BASE_OPTIMIZER, bytesPerParameter, ruleRowNames } from "./rule_rows.ts";
import { tfContender } from "./tfjs.ts";
import { atSize, type Contender, type Size } from "./timing.ts";

/** Power-of-two totals, timed against 5% more (issue #15: sections 2^k bytes apart alias). */
export const CLIFF_SIZES: Size[] = [["16M", 2 ** 24], ["32M", 2 ** 25], ["64M", 2 ** 26]];
/** The power-of-two section times 2^k against 2^k × this. */
export const CLIFF_SKEW = 1.05;
/** The total size of the many-tensor model. */
export const MANY_SIZE = 4_194_304;

/** A row of the ratio table: its title, and the keys of the numerator and the denominator. */
export type RatioRow = [title: string, a: string, b: string];

/** One kind of step timed at 2^k parameters and at 2^k × the skew. */
export interface CliffKind {
  key: string;
  name: string;
  threads: number;
}

/** Every contender of the bench. */
export interface Lineup {
  /** The rows of the throughput table, timed at every size. */
  contenders: Contender[];
  /** The many-tensor model against one tensor of the same total size. */
  many: Contender[];
  /** The kinds timed at powers of two. */
  cliffKinds: CliffKind[];
}

/** One row per rule of the registry besides RAdam: its optimizer's step, wasm, zero-copy. */
function ruleContenders(): Contender[] {
  return ruleRowNames().map((name) =>
    libraryContender(`${name} wasm, zero-copy gradients`, `${name}-wasm`, {
      backend: "wasm",
      optimizer: name,
    })
  );
}

/** Each other rule's rate against RAdam's, beside the ratio of the bytes their steps move. */
export function ruleRatioRows(): RatioRow[] {
  const base = bytesPerParameter(BASE_OPTIMIZER);
  return ruleRowNames().map((name) => {
    const bytes = bytesPerParameter(name);
    return [
      `${name} wasm / ${BASE_OPTIMIZER} wasm (bytes moved: ${base} / ${bytes} = ${+(base / bytes)
        .toFixed(2)})`,
      `${name}-wasm`,
      "wasm",
    ];
  });
}

/** The optimizers whose 8-bit step has rows of its own (issue #23): RAdam's loop, and Lion's. */
export const COMPACT_OPTIMIZERS = ["radam", "lion"];

/** The key of optimizer `name`'s row on one thread (`threads`: on the threads) and format. */
export function stepKey(name: string, threads: boolean, compact: boolean): string {
  const base = name === BASE_OPTIMIZER ? "wasm" : `${name}-wasm`;
  return `${base}${threads ? "-threads" : ""}${compact ? "-8bit" : ""}`;
}

/**
 * The 8-bit states' rows: each optimizer of {@linkcode COMPACT_OPTIMIZERS} with 8-bit moments,
 * on one thread and on `threads` (and Lion's 32-bit step on the threads, to compare with), then
 * the bounds of any step on this machine (bench/compare/bounds.ts), the bytes' on the threads too.
 */
function compactContenders(threads: number): Contender[] {
  const rows: Contender[] = [];
  for (const optimizer of COMPACT_OPTIMIZERS) {
    rows.push(
      libraryContender(
        `${optimizer} wasm, 8-bit states (zero-copy)`,
        stepKey(optimizer, false, true),
        {
          backend: "wasm",
          optimizer,
          states: "8bit",
        },
      ),
    );
    if (optimizer !== BASE_OPTIMIZER) {
      rows.push(
        libraryContender(
          `${optimizer} wasm, ${threads} threads (zero-copy)`,
          stepKey(optimizer, true, false),
          {
            backend: "wasm",
            optimizer,
            threads,
          },
        ),
      );
    }
    rows.push(
      libraryContender(
        `${optimizer} wasm, ${threads} threads, 8-bit states`,
        stepKey(optimizer, true, true),
        { backend: "wasm", optimizer, threads, states: "8bit" },
      ),
    );
  }
  return [
    ...rows,
    divSqrtContender(),
    rmwContender(16),
    rmwContender(28),
    bytesContender("radam"),
    bytesContender("lion"),
    ...(["radam", "lion"] as const).flatMap((rule) => [
      bytesContender(rule, { threads }),
      bytesContender(rule, { scaled: true }),
      bytesContender(rule, { threads, scaled: true }),
    ]),
  ];
}

/**
 * Each 8-bit step's rate against the 32-bit step's of the same run (one thread, and on the
 * threads), and the 32-bit RAdam step against the bounds of any step here.
 */
export function compactRatioRows(threads: number): RatioRow[] {
  const rows: RatioRow[] = [];
  for (const optimizer of COMPACT_OPTIMIZERS) {
    for (const t of [false, true]) {
      rows.push([
        `${optimizer} wasm 8-bit / 32-bit${t ? `, ${threads} threads` : ""}`,
        stepKey(optimizer, t, true),
        stepKey(optimizer, t, false),
      ]);
    }
  }
  return [
    ...rows,
    ["bound: div + sqrt alone / radam wasm 32-bit", "bound-divsqrt", "wasm"],
    ["bound: RMW 16 bytes / radam wasm 8-bit", "bound-rmw16", "wasm-8bit"],
    ["bound: RMW 28 bytes / radam wasm 32-bit", "bound-rmw28", "wasm"],
    ["bound: bytes, no codec / radam wasm 32-bit", "bound-radam-bytes", "wasm"],
    ["bound: bytes, no codec / lion wasm 32-bit", "bound-lion-bytes", "lion-wasm"],
    ["bound: bytes and block scales / radam wasm 32-bit", "bound-radam-scaled", "wasm"],
    ["bound: bytes and block scales / lion wasm 32-bit", "bound-lion-scaled", "lion-wasm"],
    ...(["radam", "lion"] as const).flatMap((rule): RatioRow[] => {
      const base = stepKey(rule, true, false);
      return [
        [
          `bound: bytes, no codec / ${rule} wasm 32-bit, ${threads} threads`,
          `bound-${rule}-bytes-threads`,
          base,
        ],
        [
          `bound: bytes and block scales / ${rule} wasm 32-bit, ${threads} threads`,
          `bound-${rule}-scaled-threads`,
          base,
        ],
      ];
    }),
  ];
}

/** The rows of the throughput table, in order. */
function tableContenders(
  threads: number,
  variants: CVariant[],
  binaries: Map<string, string> | string,
): Contender[] {
  const skip = 'default nonFinite ("skip")';
  return [
    libraryContender("radam wasm, zero-copy gradients", "wasm", { backend: "wasm" }),
    libraryContender(`radam wasm, zero-copy, ${skip}`, "wasm-skip", {
      backend: "wasm",
      checked: true,
    }),
    libraryContender("radam wasm, copied-in gradients", "wasm-copy", {
      backend: "wasm",
      copied: true,
    }),
    libraryContender(`radam wasm, copied-in, ${skip}`, "wasm-copy-skip", {
      backend: "wasm",
      copied: true,
      checked: true,
    }),
    libraryContender("radam js", "js", { backend: "js" }),
    ...ruleContenders(),
    libraryContender(`radam wasm, ${threads} threads (zero-copy)`, "wasm-threads", {
      backend: "wasm",
      threads,
    }),
    libraryContender(`radam wasm, ${threads} threads, ${skip}`, "wasm-threads-skip", {
      backend: "wasm",
      threads,
      checked: true,
    }),
    ...compactContenders(threads),
    checkPassContender(),
    checkPassContender(threads),
    tfContender("wasm"),
    tfContender("cpu"),
    ...variants.map((variant) => cContender(variant, binaries)),
  ];
}

/** The 200-tensor model against one tensor, zero-copy and copied-in. */
function manyContenders(): Contender[] {
  const wasm = "wasm" as const;
  return [
    libraryContender("wasm, 1 tensor of 4M", "one", { backend: wasm }),
    libraryContender("wasm, 200 tensors totalling 4M", "many", { backend: wasm, tensors: 200 }),
    libraryContender("wasm copied-in, 1 tensor of 4M", "one-copy", { backend: wasm, copied: true }),
    libraryContender("wasm copied-in, 200 tensors totalling 4M", "many-copy", {
      backend: wasm,
      copied: true,
      tensors: 200,
    }),
  ];
}

/**
 * The contenders on `threads` threads with the C builds `variants` (`binaries`: their paths by
 * key, or why there are none); `only`: the keys to keep (the table's rows and the power-of-two
 * kinds), else all.
 */
export function lineup(
  threads: number,
  variants: CVariant[],
  binaries: Map<string, string> | string,
  only?: readonly string[],
): Lineup {
  const kept = (key: string) => only === undefined || only.includes(key);
  const cliffKinds: CliffKind[] = [
    { key: "wasm", name: "radam wasm, zero-copy, 1 thread", threads: 1 },
    { key: "wasm-threads", name: `radam wasm, zero-copy, ${threads} threads`, threads },
  ];
  return {
    contenders: tableContenders(threads, variants, binaries).filter((c) => kept(c.key)),
    many: manyContenders(),
    cliffKinds: cliffKinds.filter((kind) => kept(kind.key)),
  };
}

/** The keys of the table's rows on `threads` threads, in order (nothing is set up or built). */
export function contenderKeys(threads: number): string[] {
  return tableContenders(threads, cVariants(threads), "not built").map((c) => c.key);
}

/** The contender pair of `kind` at the power of two `n` and at `n` × {@linkcode CLIFF_SKEW}. */
export function cliffPair(kind: CliffKind, n: number): Contender[] {
  const skewed = Math.round(n * CLIFF_SKEW);
  const pair = (key: string) =>
    libraryContender(kind.name, key, { backend: "wasm", threads: kind.threads });
  return [atSize(pair(`${kind.key}@pow2`), n), atSize(pair(`${kind.key}@skew`), skewed)];
}
