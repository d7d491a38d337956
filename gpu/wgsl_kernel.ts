/**
 * The WGSL kernels of the WebGPU backend, and their helpers' exports: the step (wgsl_step.ts),
 * the gradient norm (wgsl_norm.ts), and here gradient centralization (one workgroup per row)
 * and the copies (a plain vec4 copy, the benchmark's bandwidth limit, and the masked copy of a
 * tensor).
 *
 * @module
 */
import {
  type Binding,
  CHUNK_WGSL,
  declareBindings,
  GRID_ARGS,
  type Kernel,
  wgslStruct,
  wordsOf,
  WORKGROUP_SIZE,
} from "./_wgsl.ts";

export { dispatchGrid, WORKGROUP_SIZE } from "./_wgsl.ts";
export { DECIDE, SMALL_STEP_ELEMENTS, stepKernels } from "./wgsl_step.ts";
export { GRAD_NORM_PARTIAL, GRAD_NORM_TOTAL, NORM_ELEMENTS_PER_WORKGROUP } from "./wgsl_norm.ts";

/**
 * The shape uniform of the centralization kernel: `rows` rows of `cols` elements, the first at
 * element `first` of the binding (a binding starts at an aligned offset, a row anywhere).
 */
export const CENTRALIZE_SHAPE = { rows: "u32", cols: "u32", first: "u32", pad: "u32" } as const;

/** The word of each field of the centralization kernel's uniform. */
export const CENTRALIZE_WORD = wordsOf(CENTRALIZE_SHAPE);

/** Bytes of the uniform of the centralization kernel. */
export const CENTRALIZE_UNIFORM_BYTES = 4 * Object.keys(CENTRALIZE_SHAPE).length;

const CENTRALIZE_BINDINGS: readonly Binding[] = [
  { name: "x", type: "array<f32>", kind: "storage" },
  { name: "shape", type: "Shape", kind: "uniform" },
];

/**
 * Gradient centralization (entry point `centralize`): workgroup `r` subtracts from row `r` of
 * `rows × cols` elements (from element `first` of the binding) its f32 mean; a tensor larger
 * than a binding is centralized by several dispatches, each of whole rows. Each of the 64 invocations sums a strided part of the row,
 * then a tree reduction in workgroup memory gives the row sum (any summation tree of `cols`
 * terms stays within the `(cols − 1)` roundings the reference allows). Where that sum is not
 * finite (finite values whose f32 sum overflows, as the CPU backends' f64 mean does not; or a
 * NaN or an infinity, which stays so), the mean is taken again as the sum of each value divided
 * by `cols`, which does not overflow.
 */
export const CENTRALIZE: Kernel = {
  entryPoint: "centralize",
  bindings: CENTRALIZE_BINDINGS,
  code: /* wgsl */ `
${wgslStruct("Shape", CENTRALIZE_SHAPE)}
${declareBindings(CENTRALIZE_BINDINGS)}
var<workgroup> partial: array<f32, ${WORKGROUP_SIZE}>;

@compute @workgroup_size(${WORKGROUP_SIZE})
fn centralize(
  ${GRID_ARGS}
) {
  let row = wid.y * groups.x + wid.x;
  if (row >= shape.rows) { return; }
  let cols = shape.cols;
  let base = shape.first + row * cols;
  var sum = 0.0;
  for (var j = lid; j < cols; j += ${WORKGROUP_SIZE}u) { sum = sum + x[base + j]; }
  let total = row_sum(lid, sum);
  var mean = total / f32(cols);
  if ((bitcast<u32>(total) & 0x7f800000u) == 0x7f800000u) {
    var scaled = 0.0;
    for (var j = lid; j < cols; j += ${WORKGROUP_SIZE}u) { scaled = scaled + x[base + j] / f32(cols); }
    mean = row_sum(lid, scaled);
  }
  for (var j = lid; j < cols; j += ${WORKGROUP_SIZE}u) { x[base + j] = x[base + j] - mean; }
}

// The sum of every invocation's part, to all of them (a tree reduction in workgroup memory).
fn row_sum(lid: u32, part: f32) -> f32 {
  workgroupBarrier();
  partial[lid] = part;
  workgroupBarrier();
  for (var k = ${WORKGROUP_SIZE / 2}u; k > 0u; k = k / 2u) {
    if (lid < k) { partial[lid] = partial[lid] + partial[lid + k]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&partial[0]);
}
`,
};

const COPY_BINDINGS: readonly Binding[] = [
  { name: "src", type: "array<vec4<f32>>", kind: "read-only-storage" },
  { name: "dst", type: "array<vec4<f32>>", kind: "storage" },
];

/** WGSL of a plain copy kernel over vec4s (the bandwidth limit the benchmark compares with). */
export const COPY_KERNEL_WGSL = /* wgsl */ `
${CHUNK_WGSL}
${declareBindings(COPY_BINDINGS)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn copy(
  ${GRID_ARGS}
) {
  let i = vector_index(wid, groups, lid);
  if (i < arrayLength(&dst)) { dst[i] = src[i]; }
}
`;

const COPY_TENSOR_BINDINGS: readonly Binding[] = [
  ...COPY_BINDINGS,
  { name: "chunk", type: "Chunk", kind: "uniform" },
];

/**
 * A masked copy of one tensor's elements (entry point `copy_tensor`), one `vec4` an
 * invocation: the first `chunk.count` elements of `src` into `dst` (the uniform is a chunk entry
 * of the step kernel); lanes of the last vec4 past the count keep `dst`'s values, so the up to 3
 * floats after a tensor whose length is not a multiple of 4 are left as they were. It moves
 * parameters updated in place in a caller's buffer to and from the arena's params section
 * (readback, restore, LookAhead's start) without needing COPY_SRC or COPY_DST on that buffer.
 */
export const COPY_TENSOR: Kernel = {
  entryPoint: "copy_tensor",
  bindings: COPY_TENSOR_BINDINGS,
  code: /* wgsl */ `
${CHUNK_WGSL}
${declareBindings(COPY_TENSOR_BINDINGS)}

@compute @workgroup_size(${WORKGROUP_SIZE})
fn copy_tensor(
  ${GRID_ARGS}
) {
  let i = vector_index(wid, groups, lid);
  let count = chunk.count;
  if (i >= (count + 3u) / 4u) { return; }
  dst[i] = select(src[i], dst[i], past_count(count, i));
}
`,
};
