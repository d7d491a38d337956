/**
 * The scalar block: the per-step scalars of a rule, computed once per step on the host in
 * float64 (docs/SPEC.md), then rounded to f32 into a block of {@linkcode BLOCK_WORDS} 32-bit
 * words that every kernel reads: the wasm kernel from its memory, the threaded one from the
 * control block the workers share, the TypeScript backend from the same words, and WebGPU from
 * its ring (a tag, then the blocks). A block's layout is a table of (name, type), defined once
 * per rule: the words every rule shares ({@linkcode HEADER_FIELDS}), then the rule's own. The
 * AssemblyScript word offsets (assembly/layout.generated.ts) and the WGSL accessors are
 * generated from the same tables.
 *
 * With parameter groups, the host writes one block per group (block 0: the optimizer's own
 * settings), back to back, and each row of the segment table names the block its run uses.
 *
 * @module
 */

/** The type of a word of a scalar block. */
export type WordType = "f32" | "u32";

/** One word of a scalar block: its name (a field of the rule's scalars record) and type. */
export type ScalarField = readonly [name: string, type: WordType];

/** 32-bit words of every scalar block (rules use a prefix; the rest is padding). */
export const BLOCK_WORDS = 16;
/** Bytes of a scalar block. */
export const BLOCK_BYTES = BLOCK_WORDS * 4;

/**
 * The words every rule's block starts with: the kernel's rule tag (which element loop), the
 * gradient scale (−1 with `maximize`, times the clipping factor) and LookAhead's `sync` flag
 * and `alpha` (the wrapper's, fused into the inner rule's loop).
 */
export const HEADER_FIELDS: readonly ScalarField[] = [
  ["rule", "u32"],
  ["gradScale", "f32"],
  ["sync", "u32"],
  ["alpha", "f32"],
];

/** The scalars of one step, by field name (host side, float64). */
export type StepScalars = Record<string, number>;

/** A block layout: its fields in word order, and each field's word. */
export interface ScalarLayout {
  readonly fields: readonly ScalarField[];
  readonly word: Readonly<Record<string, number>>;
}

/** The layout of a rule's block: the header, then `fields`. Throws if it exceeds a block. */
export function scalarLayout(fields: readonly ScalarField[]): ScalarLayout {
  const all = [...HEADER_FIELDS, ...fields];
  if (all.length > BLOCK_WORDS) {
    throw new RangeError(`A scalar block holds ${BLOCK_WORDS} words; this one needs ${all.length}`);
  }
  const word: Record<string, number> = {};
  all.forEach(([name], i) => word[name] = i);
  return Object.freeze({ fields: Object.freeze(all), word: Object.freeze(word) });
}

/** The words of the header (the same in every layout). */
export const HEADER: Readonly<Record<string, number>> = scalarLayout([]).word;

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
    const [name, type] = fields[i];
    if (type === "f32") f32[base + i] = scalars[name];
    else u32[base + i] = scalars[name] >>> 0;
  }
}

/** A fresh scalars record with every field of `layout` at 0. */
export function zeroScalars(layout: ScalarLayout): StepScalars {
  const out: StepScalars = {};
  for (const [name] of layout.fields) out[name] = 0;
  return out;
}

/** The snake_case WGSL name of a field (`gradScale` → `grad_scale`). */
export function wgslName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * WGSL of a struct holding the block's fields, and a function reading one from a `u32` array
 * at a word offset: `struct <name> {...}` and `fn load_<snake name>(base: u32) -> <name>`. The
 * array is named `source`; `array<u32>` storage is assumed.
 */
export function wgslBlock(layout: ScalarLayout, name: string, source: string): string {
  const members = layout.fields.map(([field, type]) => `  ${wgslName(field)}: ${type},`);
  const loads = layout.fields.map(([, type], i) =>
    type === "f32" ? `bitcast<f32>(${source}[base + ${i}u])` : `${source}[base + ${i}u]`
  );
  return `struct ${name} {\n${members.join("\n")}\n}\n` +
    `fn load${wgslName(name)}(base: u32) -> ${name} {\n  return ${name}(\n    ${
      loads.join(",\n    ")
    },\n  );\n}\n`;
}

/**
 * AssemblyScript constants of the byte offset of each field (`<PREFIX>_<NAME>`), for
 * assembly/layout.generated.ts.
 */
export function asOffsets(layout: ScalarLayout, prefix: string, skip = 0): string {
  return layout.fields.slice(skip).map(([field], i) =>
    `export const ${prefix}_${wgslName(field).toUpperCase()}: usize = ${(i + skip) * 4};`
  ).join("\n");
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
