/**
 * The scalar block: the per-step scalars of a rule, computed once per step on the host in
 * float64 (docs/SPEC.md), then rounded to f32 into a block of {@linkcode BLOCK_WORDS} 32-bit
 * words that every kernel reads: the wasm kernel from its memory, the threaded one from the
 * control block the workers share, the TypeScript backend from the same words, and WebGPU from
 * its ring (a tag, then the blocks). A block's layout is a word table (name → type, base/words.ts),
 * defined once per rule: the words every rule shares ({@linkcode HEADER_FIELDS}), then the rule's
 * own. The AssemblyScript word offsets (assembly/layout.generated.ts) and the WGSL struct and
 * loader of the rule's GPU loop are generated from the same tables.
 *
 * With parameter groups, the host writes one block per group (block 0: the optimizer's own
 * settings), back to back, and each row of the segment table names the block its run uses.
 *
 * @module
 */
import { wgslStruct, wordsOf, type WordTable, type WordType } from "./words.ts";

/** 32-bit words of every scalar block (rules use a prefix; the rest is padding). */
export const BLOCK_WORDS = 16;
/** Bytes of a scalar block. */
export const BLOCK_BYTES = BLOCK_WORDS * 4;

/**
 * The words every rule's block starts with: the kernel's rule tag (which element loop), the
 * gradient scale (−1 with `maximize`, times the clipping factor) and LookAhead's `sync` flag
 * and `alpha` (the wrapper's, fused into the inner rule's loop).
 */
export const HEADER_FIELDS = {
  rule: "u32",
  gradScale: "f32",
  sync: "u32",
  alpha: "f32",
} as const satisfies WordTable;

/**
 * Words of the coefficients of two exponential moving averages (β1, 1 − β1, β2, 1 − β2), which
 * the blocks of rules with such moments include (RAdam/Adam's m and v, Lion's interpolation and
 * m); {@linkcode emaScalars} fills them.
 */
export const EMA_FIELDS = {
  beta1: "f32",
  oneMinusBeta1: "f32",
  beta2: "f32",
  oneMinusBeta2: "f32",
} as const satisfies WordTable;

/** The name of a word of every block ({@linkcode HEADER_FIELDS}). */
export type HeaderField = keyof typeof HEADER_FIELDS;

/**
 * The scalars of one block of a step (host side, float64), by word: the field at word `k` of
 * the rule's layout (`layout.word.stepSize`) is element `k` (the words past its fields are
 * unused), and element {@linkcode LR_WORD} is the learning rate they are computed at. A step
 * writes and reads these numbers in place, allocating nothing (a plain record boxed each float64
 * written into it).
 */
export type StepScalars = Float64Array;

/**
 * The element of a {@linkcode StepScalars} after its block's words: the step's learning rate
 * for the block (the schedule's value times the group's `lrScale`), which a rule's
 * `computeScalars` reads there. (Passed as an argument, a float64 is boxed, a heap allocation,
 * by every call V8 does not inline, as it does not a large `computeScalars`.)
 */
export const LR_WORD = BLOCK_WORDS;

/** A fresh scalars record, every element 0. */
export function zeroScalars(): StepScalars {
  return new Float64Array(LR_WORD + 1);
}

/**
 * Sets the {@linkcode EMA_FIELDS} of `out` from β1 and β2 (the complements in float64), each at
 * its word in `word` (the words of a layout that includes them).
 */
export function emaScalars(
  word: Readonly<Record<keyof typeof EMA_FIELDS, number>>,
  beta1: number,
  beta2: number,
  out: StepScalars,
): void {
  out[word.beta1] = beta1;
  out[word.oneMinusBeta1] = 1 - beta1;
  out[word.beta2] = beta2;
  out[word.oneMinusBeta2] = 1 - beta2;
}

/**
 * A block layout: its word table (the header, then the rule's words) and each field's word
 * (`K`: the names of the fields).
 */
export interface ScalarLayout<K extends string = string> {
  /** The word table, in word order. */
  readonly table: WordTable;
  /** The fields in word order, as [name, type] (what `writeBlock` walks). */
  readonly fields: readonly (readonly [string, WordType])[];
  /** The word of each field: where it is in a block, and in a {@linkcode StepScalars}. */
  readonly word: Readonly<Record<K, number>>;
}

/**
 * The layout of a rule's block: the header, then `fields`. Throws if it exceeds a block.
 *
 * @example
 * ```ts
 * import { HEADER, scalarLayout } from "./scalars.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = scalarLayout({ stepSize: "f32" });
 * assert.equal(layout.word.stepSize, Object.keys(HEADER).length);
 * ```
 */
export function scalarLayout<F extends WordTable>(
  fields: F,
): ScalarLayout<HeaderField | (keyof F & string)> {
  const table = Object.freeze({ ...HEADER_FIELDS, ...fields });
  const entries = Object.entries(table);
  if (entries.length > BLOCK_WORDS) {
    throw new RangeError(
      `A scalar block holds ${BLOCK_WORDS} words; this one needs ${entries.length}`,
    );
  }
  return Object.freeze({ table, fields: Object.freeze(entries), word: wordsOf(table) });
}

/** The words of the header (the same in every layout). */
export const HEADER: Readonly<Record<HeaderField, number>> = scalarLayout({}).word;

/**
 * Writes `scalars` as block `index` of the blocks viewed by `f32` and `u32` (two views of the
 * same words): each field rounded to f32, or as an unsigned integer.
 */
export function writeBlock(
  layout: ScalarLayout,
  scalars: StepScalars,
  f32: Float32Array,
  u32: Uint32Array,
  index: number,
): void {
  const base = index * BLOCK_WORDS;
  const fields = layout.fields;
  for (let i = 0; i < fields.length; i++) {
    if (fields[i][1] === "f32") f32[base + i] = scalars[i];
    else u32[base + i] = scalars[i] >>> 0;
  }
}

/**
 * WGSL of a rule's block: `struct <name>` (the fields of the layout's table, named as there)
 * and `fn load<Name>(base: u32) -> <name>`, which reads one from word `base` of the `u32`
 * storage array named `source`.
 *
 * @example
 * ```ts
 * import { scalarLayout, wgslBlock } from "./scalars.ts";
 * import assert from "node:assert/strict";
 *
 * const code = wgslBlock(scalarLayout({ stepSize: "f32" }), "SgdScalars", "ring");
 * assert.match(code, /fn loadSgdScalars\(base: u32\) -> SgdScalars/);
 * ```
 */
export function wgslBlock(layout: ScalarLayout, name: string, source: string): string {
  const loads = layout.fields.map(([, type], i) =>
    type === "f32" ? `bitcast<f32>(${source}[base + ${i}u])` : `${source}[base + ${i}u]`
  );
  return `${wgslStruct(name, layout.table)}\n` +
    `fn load${name}(base: u32) -> ${name} {\n  return ${name}(\n    ${
      loads.join(",\n    ")
    },\n  );\n}\n`;
}

/**
 * Scalar blocks an arena with these parameter-group runs needs: one per group up to the
 * largest a run uses (1 without groups: the optimizer's own).
 */
export function blockCount(segments: readonly { readonly group: number }[]): number {
  let count = 1;
  for (const s of segments) count = Math.max(count, s.group + 1);
  return count;
}
