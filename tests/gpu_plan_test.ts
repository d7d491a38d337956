/**
 * The WebGPU backend's planning, without a GPU: the arena layout, the chunks and grids of each
 * dispatch, the one-dispatch step of small arenas, and the word tables shared by the host and
 * the WGSL (control buffer, ring entries, constants).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { planCentralizeBatches } from "../gpu/centralize.ts";
import { ALIGN_ELEMENTS, type GpuPlanLimits, planChunks, planGpuArena } from "../gpu/arena_plan.ts";
import { CONTROL, CONTROL_BYTES, CONTROL_WORD, DECIDE_WGSL } from "../gpu/control.ts";
import { RING_WGSL, RING_WORD, ringStride } from "../gpu/scalar_ring.ts";
import { BLOCK_WORDS, wgslBlock } from "../base/scalars.ts";
import { codesSection, EXP_AVG, PARAMS, scalesSection, SEGMENT_WGSL, SLOW } from "../base/arena.ts";
import { planCompactChunks, planGpuCompactArena, sectionBytes } from "../gpu/compact_plan.ts";
import { ADAM, ADAM_SCALARS } from "../rules/adam.ts";
import { STEP_CONSTS, STEP_CONSTS_WGSL, stepConstsData } from "../gpu/step_consts.ts";
import { NORM_ELEMENTS_PER_WORKGROUP } from "../gpu/wgsl_norm.ts";
import { SMALL_STEP_ELEMENTS, stepKernels } from "../gpu/wgsl_step.ts";

const big: GpuPlanLimits = {
  maxStorageBufferBindingSize: 1 << 30,
  maxBufferSize: 1 << 30,
  maxComputeWorkgroupsPerDimension: 65535,
  smallStepElements: SMALL_STEP_ELEMENTS,
};
// 4 KiB bindings (1024 elements, 4 workgroups a chunk), at most 2 workgroups per dimension.
const tiny: GpuPlanLimits = {
  ...big,
  maxStorageBufferBindingSize: 4096,
  maxComputeWorkgroupsPerDimension: 2,
};

Deno.test("gpu plan: tensors at 64-element offsets, the same in every section", () => {
  const layout = planGpuArena(["a", "b", "c", "d"], [100, 0, 3, 64]);
  assert.deepEqual(layout.offsets, [0, 128, 128, 192]);
  assert.equal(layout.total, 256);
  assert.equal(layout.sectionLength, 256);
  for (const offset of layout.offsets) assert.equal(offset % ALIGN_ELEMENTS, 0);
  assert.equal(layout.sectionCount, 4);
  assert.equal(planGpuArena(["a"], [1], { slow: true }).sectionCount, 5);
  assert.equal(planGpuArena([], []).sectionLength, ALIGN_ELEMENTS);
  const grouped = planGpuArena(["a", "b", "c"], [10, 20, 30], { groups: [0, 0, 1] });
  assert.deepEqual(grouped.segments, [{ start: 0, end: 84, group: 0 }, {
    start: 128,
    end: 158,
    group: 1,
  }]);
});

Deno.test("gpu plan: binding-sized chunks and 2-D grids, as the GPU tests dispatch them", () => {
  const layout = planGpuArena(["a", "b", "c"], [4097, 33, 1000]);
  const plan = planChunks(layout, tiny);
  assert.equal(plan.step.length, 6);
  assert.deepEqual(plan.step.map((c) => c.grid), [[2, 2], [2, 2], [2, 2], [2, 2], [2, 2], [1, 1]]);
  // Every element of the arena's run in exactly one chunk, chunks at 256-byte multiples.
  let at = 0;
  for (const c of plan.step) {
    assert.equal(c.start, at);
    assert.equal(c.start % ALIGN_ELEMENTS, 0);
    at += c.count;
  }
  assert.equal(at, layout.total);
  assert.equal(plan.small, false);
  // The norm: the same chunks of the grads section, one partial a workgroup.
  assert.deepEqual(
    plan.norm.map((c) => [c.start, c.count]),
    plan.step.map((c) => [c.start, c.count]),
  );
  assert.deepEqual(plan.norm.map((c) => c.partialBase), [0, 1, 2, 3, 4, 5]);
  assert.equal(plan.partialCount, 6);
  // The first param updated in place: 5 chunks of its own, then the arena's run of b and c.
  const inPlace = planChunks(layout, tiny, new Set([0]));
  assert.equal(inPlace.step.length, 7);
  assert.deepEqual(inPlace.step.map((c) => c.grid), [[2, 2], [2, 2], [2, 2], [2, 2], [1, 1], [
    2,
    2,
  ], [1, 1]]);
  assert.deepEqual(inPlace.step.map((c) => c.inPlace), [0, 0, 0, 0, 0, undefined, undefined]);
  assert.deepEqual(inPlace.step.map((c) => c.first), [0, 0, 0, 0, 0, 4160, 4160]);
  // Zero-length tensors take no dispatch.
  assert.equal(planChunks(planGpuArena(["a", "b"], [0, 0]), big).step.length, 0);
});

Deno.test("gpu plan: a small arena in one chunk is stepped in one dispatch", () => {
  const layout = planGpuArena(["a", "b"], [1000, 3]);
  assert.equal(planChunks(layout, big).small, true);
  assert.equal(planChunks(layout, { ...big, smallStepElements: 0 }).small, false);
  // A param updated in place that is not the whole arena: two chunks.
  assert.equal(planChunks(layout, big, new Set([1])).small, false);
  // One tensor updated in place that is the whole arena: one chunk.
  assert.equal(planChunks(planGpuArena(["w"], [1024]), big, new Set([0])).small, true);
  assert.equal(planChunks(planGpuArena(["w"], [SMALL_STEP_ELEMENTS]), big).small, true);
  assert.equal(planChunks(planGpuArena(["w"], [SMALL_STEP_ELEMENTS + 1]), big).small, false);
  assert.equal(SMALL_STEP_ELEMENTS, NORM_ELEMENTS_PER_WORKGROUP);
});

Deno.test("gpu plan: the WGSL structs are the word tables the host writes by", () => {
  const fields = (table: Record<string, string>) =>
    Object.entries(table).map(([name, type]) => `${name}: ${type}`).join(", ");
  assert.ok(DECIDE_WGSL.includes(`struct Control { ${fields(CONTROL)} }`));
  assert.equal(CONTROL_BYTES, 4 * Object.keys(CONTROL).length);
  assert.equal(CONTROL_WORD.norm, 0);
  assert.equal(CONTROL_WORD.taken, Object.keys(CONTROL).indexOf("taken"));
  // A ring entry: its head (the tag) padded to a block, then a scalar block a parameter group,
  // in the rule's layout (base/scalars.ts), whose struct the rule's loop reads.
  assert.ok(RING_WGSL.includes(`ring[e0 + ${RING_WORD.tag}u]`));
  assert.equal(ringStride(1), 2 * BLOCK_WORDS);
  assert.equal(ringStride(3) - ringStride(2), BLOCK_WORDS);
  const STEP = stepKernels(ADAM).step;
  const block = wgslBlock(ADAM_SCALARS, "AdamScalars", "ring");
  assert.ok(block.includes(`struct AdamScalars { ${fields(ADAM_SCALARS.table)} }`));
  assert.ok(block.includes(`bitcast<f32>(ring[base + ${ADAM_SCALARS.word.stepSize}u])`));
  assert.ok(STEP.code.includes(block));
  assert.ok(STEP.code.includes(SEGMENT_WGSL));
  assert.ok(STEP_CONSTS_WGSL.includes(fields(STEP_CONSTS)));
  assert.ok(STEP.code.includes(STEP_CONSTS_WGSL));
  const data = stepConstsData({
    segment_count: 2,
    clip: 1,
    clip_max: 0.5,
    check: 1,
    halt_on_bad: 0,
    ring_size: 1088,
    stride: 24,
    norm_computed: 1,
    moments: 2,
    order_rows: 1,
  });
  const names = Object.keys(STEP_CONSTS);
  assert.equal(new Float32Array(data)[names.indexOf("clip_max")], 0.5);
  assert.equal(new Uint32Array(data)[names.indexOf("stride")], 24);
  assert.equal(new Uint32Array(data)[names.indexOf("moments")], 2);
  // The step kernels read the ring only through the accessors made from its table.
  const reads = (code: string) => code.split("ring[").length - 1;
  assert.equal(reads(STEP.code), reads(RING_WGSL) + reads(block));
});

Deno.test("GPU 8-bit layout: f32-moment tensors first at 64-element offsets, compact ones at blocks of 256, their chunks whole blocks of one tensor", () => {
  const layout = planGpuCompactArena(["w", "b", "x", "c"], [5000, 10, 4096, 70], {
    moments: 2,
    nonNegative: [false, true],
    groups: [0, 1, 1, 0],
    slow: true,
  });
  assert.deepEqual(layout.names, ["b", "c", "w", "x"]);
  assert.deepEqual(layout.compact, [false, false, true, true]);
  assert.deepEqual(layout.offsets, [0, 64, 256, 256 + 5120]);
  assert.equal(layout.compactStart, 256);
  assert.equal(layout.total, 256 + 5120 + 4096);
  assert.deepEqual(layout.unsignedCodes, [false, true]);
  assert.deepEqual(layout.segments.map((r) => [r.start, r.end, r.group, r.padded]), [
    [0, 10, 1, undefined],
    [64, 134, 0, undefined],
    [256, 5256, 0, 5376],
    [5376, 9472, 1, 9472],
  ]);
  // params, grads and slow weights of every element; f32 moments before the compact tensors;
  // a code a byte from there on; the scales of both moments in one section
  assert.equal(sectionBytes(layout, PARAMS), 4 * 9472);
  assert.equal(sectionBytes(layout, SLOW), 4 * 9472);
  assert.equal(sectionBytes(layout, EXP_AVG), 4 * 256);
  assert.equal(sectionBytes(layout, codesSection(1)), 9472 - 256);
  assert.equal(sectionBytes(layout, scalesSection(0)), 2 * 4 * (9472 - 256) / 256);
  assert.equal(layout.sectionOffsets[scalesSection(1)], -1);
  const limits = {
    maxStorageBufferBindingSize: 8192,
    maxBufferSize: 1 << 20,
    maxComputeWorkgroupsPerDimension: 3,
    smallStepElements: 1 << 20,
  };
  // the f32 step leaves the compact tensors to theirs (so never one small dispatch)
  const plan = planChunks(layout, limits);
  assert.deepEqual(plan.step.map((c) => [c.start, c.count]), [[0, 134]]);
  assert.equal(plan.small, false);
  const chunks = planCompactChunks(layout, limits);
  assert.deepEqual(chunks.map((c) => [c.start, c.blocks, c.end, c.group]), [
    [256, 8, 5256, 0],
    [256 + 2048, 8, 5256, 0],
    [256 + 4096, 4, 5256, 0],
    [5376, 8, 9472, 1],
    [5376 + 2048, 8, 9472, 1],
  ]);
  assert.deepEqual(chunks[0].grid, [3, 3]);
  // without a compact tensor: the 32-bit GPU layout
  const wide = planGpuCompactArena(["b"], [4095], { moments: 1 });
  assert.deepEqual(wide.compact, [false]);
  assert.equal(wide.states, "8bit");
  assert.equal(planCompactChunks(wide, limits).length, 0);
});

Deno.test("gpu plan: centralization batches cover every row once, within the device's limits", () => {
  // 5,000 rank-2 tensors take one dispatch with the default limits (each took one of its own).
  const many: number[] = [];
  for (let k = 0; k < 5000; k++) many.push(k * 448, 16, 24);
  const one = planCentralizeBatches(many, big, 256);
  assert.equal(one.length, 1);
  assert.equal(one[0].narrowRows, 5000 * 16);
  // Rows of more than 64 elements take a workgroup each, the others an invocation.
  assert.deepEqual(planCentralizeBatches([0, 3, 64, 192, 2, 65], big, 256), [
    { start: 0, length: 322, wideRows: 2, wide: [0, 192, 65], narrowRows: 3, narrow: [0, 0, 64] },
  ]);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 140 })), {
        minLength: 1,
        maxLength: 40,
      }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 1, max: 9 }),
      fc.constantFrom(16, 48, 1024),
      (shapes, gap, grid, tableEntries) => {
        // Tensors at 64-element offsets, some not centralized between them (`gap`).
        const segments: number[] = [];
        let offset = 0;
        for (const [rows, cols] of shapes) {
          segments.push(offset, rows, cols);
          offset += Math.ceil((rows * cols + gap) / ALIGN_ELEMENTS) * ALIGN_ELEMENTS;
        }
        // Bindings of 560 elements, or of `tableEntries` table entries where fewer.
        const bytes = Math.min(2240, 16 * tableEntries);
        const limits = {
          maxStorageBufferBindingSize: bytes,
          maxBufferSize: 1 << 20,
          maxComputeWorkgroupsPerDimension: grid,
        };
        // Each row from the aligned offset at or before it must fit one binding.
        let fits = true;
        for (let k = 0; k < segments.length; k += 3) {
          for (let row = 0; row < segments[k + 1]; row++) {
            const row0 = segments[k] + row * segments[k + 2];
            if ((row0 % ALIGN_ELEMENTS + segments[k + 2]) * 4 > bytes) fits = false;
          }
        }
        if (!fits) {
          assert.throws(() => planCentralizeBatches(segments, limits, 256), RangeError);
          return;
        }
        const batches = planCentralizeBatches(segments, limits, 256);
        // The element each covered row starts at: every row of every tensor, once, in order.
        const covered: number[] = [];
        for (const b of batches) {
          assert.equal(b.start % ALIGN_ELEMENTS, 0);
          assert.ok(b.length * 4 <= bytes, "a window fits a binding");
          assert.ok(b.wideRows <= grid * grid, "the wide rows' workgroups fit a grid");
          assert.ok(Math.ceil(b.narrowRows / 64) <= grid * grid, "the narrow rows' too");
          const runs = (b.wide.length + b.narrow.length) / 3;
          assert.ok(16 * (1 + runs) <= bytes, "a table fits a binding");
          for (
            const [list, rows, wide] of [[b.wide, b.wideRows, true], [
              b.narrow,
              b.narrowRows,
              false,
            ]] as const
          ) {
            for (let r = 0; r < list.length; r += 3) {
              const [first, at, cols] = list.slice(r, r + 3);
              assert.equal(cols > 64, wide);
              const end = r + 3 < list.length ? list[r + 3] : rows;
              assert.ok(end > first);
              for (let row = first; row < end; row++) {
                covered.push(b.start + at + (row - first) * cols);
              }
              assert.ok(at + (end - first) * cols <= b.length);
            }
          }
        }
        covered.sort((x, y) => x - y);
        const want: number[] = [];
        for (let k = 0; k < segments.length; k += 3) {
          for (let row = 0; row < segments[k + 1]; row++) {
            want.push(segments[k] + row * segments[k + 2]);
          }
        }
        assert.deepEqual(covered, want);
      },
    ),
    { numRuns: 500 },
  );
  // A row past a binding is refused, naming the tensor.
  assert.throws(
    () =>
      planCentralizeBatches(
        [0, 2, 3, 64, 2, 300],
        { ...big, maxStorageBufferBindingSize: 1024 },
        256,
        ["a", "b"],
      ),
    (e) =>
      e instanceof RangeError &&
      e.message.startsWith(
        'Gradient centralization of parameter "b" (2 × 300) needs a binding of 1200 bytes',
      ),
  );
});
