/**
 * Helpers of the WGSL kernels (private to gpu/): structs and bindings generated from tables,
 * so that the TypeScript that fills a buffer and the WGSL that reads it share one definition,
 * and the indexing every vec4 kernel shares.
 *
 * @module
 */

/** Invocations per workgroup. */
export const WORKGROUP_SIZE = 64;

import { wgslStruct, wordsOf } from "../base/words.ts";

export { wgslStruct, wordsOf, type WordType } from "../base/words.ts";

/** How a kernel binds a buffer: its WebGPU buffer binding type. */
export type BindingKind = GPUBufferBindingType;

/** One binding of a kernel (group 0, binding = its index): WGSL name and type, and its kind. */
export interface Binding {
  /** The WGSL variable. */
  readonly name: string;
  /** Its WGSL type. */
  readonly type: string;
  /** Its binding type (the WGSL address space follows from it). */
  readonly kind: BindingKind;
}

const ADDRESS_SPACE: Readonly<Record<BindingKind, string>> = {
  "storage": "storage, read_write",
  "read-only-storage": "storage, read",
  "uniform": "uniform",
};

/**
 * The WGSL declarations of a kernel's bindings, `@binding(k)` for the k-th; the bind-group
 * layout of the kernel is made from the same list (see pipelines.ts).
 *
 * @example
 * ```ts
 * import { declareBindings } from "./_wgsl.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   declareBindings([{ name: "x", type: "array<f32>", kind: "storage" }]),
 *   "@group(0) @binding(0) var<storage, read_write> x: array<f32>;",
 * );
 * ```
 */
export function declareBindings(bindings: readonly Binding[]): string {
  return bindings
    .map((b, k) => `@group(0) @binding(${k}) var<${ADDRESS_SPACE[b.kind]}> ${b.name}: ${b.type};`)
    .join("\n");
}

/** A compute kernel: its WGSL, entry point and bindings (one bind group). */
export interface Kernel {
  /** WGSL source (its bindings declared by {@linkcode declareBindings}). */
  readonly code: string;
  /** Entry point. */
  readonly entryPoint: string;
  /** Bindings, in binding order. */
  readonly bindings: readonly Binding[];
}

/** The builtins of an entry point over a 2-D grid of workgroups (see `vector_index`). */
export const GRID_ARGS = `@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,`;

/** Fields of a chunk's uniform (`Chunk` in the WGSL): an element range of the sections. */
export const CHUNK_FIELDS = {
  count: "u32",
  start: "u32",
  // The first partial of the norm's first pass this chunk writes.
  partial_base: "u32",
  pad0: "u32",
} as const;

/** Words of a chunk's uniform. */
export const CHUNK_WORD = wordsOf(CHUNK_FIELDS);

/** Bytes of a chunk's uniform. */
export const CHUNK_BYTES = 4 * Object.keys(CHUNK_FIELDS).length;

/** WGSL of a chunk of an arena section, and the indexing every vec4 kernel shares. */
export const CHUNK_WGSL = /* wgsl */ `
${wgslStruct("Chunk", CHUNK_FIELDS)}

// This invocation's vec4 in a 2-D grid of workgroups.
fn vector_index(wid: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * groups.x + wid.x) * ${WORKGROUP_SIZE}u + lid;
}

// The lanes of vec4 i (below ceil(count / 4)) at or past the count: they keep their values.
fn past_count(count: u32, i: u32) -> vec4<bool> {
  return vec4<u32>(0u, 1u, 2u, 3u) >= vec4<u32>(min(count - i * 4u, 4u));
}
`;

/**
 * A 2-D workgroup grid covering `groups` workgroups with at most `maxPerDimension` per side.
 *
 * @example
 * ```ts
 * import { dispatchGrid } from "./_wgsl.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(dispatchGrid(70000, 65535), [35000, 2]);
 * ```
 */
export function dispatchGrid(groups: number, maxPerDimension: number): [number, number] {
  if (groups <= maxPerDimension) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / maxPerDimension);
  if (y > maxPerDimension) {
    throw new RangeError(
      `A dispatch of ${groups} workgroups exceeds ${maxPerDimension}² workgroups`,
    );
  }
  return [Math.ceil(groups / y), y];
}
