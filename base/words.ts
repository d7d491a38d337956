/**
 * Word tables: a layout of 32-bit words defined once, as a table of named words (name → type,
 * in word order), from which the host writes a buffer and the WGSL structs and AssemblyScript
 * offsets that read it are generated. Used for the scalar blocks (base/scalars.ts), the arena
 * descriptor and segment rows (base/arena.ts) and the GPU's control, ring and constants (gpu/).
 *
 * @module
 */

/** A WGSL scalar type of a 32-bit word. */
export type WordType = "f32" | "u32";

/** A table of named 32-bit words, in word order. */
export type WordTable = Readonly<Record<string, WordType>>;

/**
 * The WGSL struct of a table of named 32-bit words, in the table's order (word k of the table
 * is field k of the struct).
 *
 * @example
 * ```ts
 * import { wgslStruct } from "./words.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(wgslStruct("Shape", { rows: "u32", cols: "u32" }), "struct Shape { rows: u32, cols: u32 }");
 * ```
 */
export function wgslStruct(name: string, fields: WordTable): string {
  const body = Object.entries(fields).map(([field, type]) => `${field}: ${type}`).join(", ");
  return `struct ${name} { ${body} }`;
}

/**
 * The word of each field of a table of named 32-bit words (its index in the table).
 *
 * @example
 * ```ts
 * import { wordsOf } from "./words.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(wordsOf({ rows: "u32", cols: "u32" }).cols, 1);
 * ```
 */
export function wordsOf<K extends string>(
  fields: Readonly<Record<K, WordType>>,
): Readonly<Record<K, number>> {
  const words = {} as Record<K, number>;
  (Object.keys(fields) as K[]).forEach((field, k) => words[field] = k);
  return Object.freeze(words);
}

/**
 * AssemblyScript constants of the byte offset of each word of `fields` from word `skip` on
 * (`<PREFIX>_<SNAKE_NAME>: usize`), for assembly/layout.generated.ts.
 *
 * @example
 * ```ts
 * import { asOffsets } from "./words.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(asOffsets({ rows: "u32", segmentCount: "u32" }, "SHAPE"),
 *   "export const SHAPE_ROWS: usize = 0;\nexport const SHAPE_SEGMENT_COUNT: usize = 4;");
 * ```
 */
export function asOffsets(fields: WordTable, prefix: string, skip = 0): string {
  return Object.keys(fields).slice(skip).map((field, i) =>
    `export const ${prefix}_${field.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}: usize = ${
      (i + skip) * 4
    };`
  ).join("\n");
}
