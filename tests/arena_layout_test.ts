/**
 * The arena's section layout (base/arena.ts `planArena`), checked deterministically, without
 * timing: section starts are cache-line aligned and never overlap, strides are never multiples of
 * 4 KiB, and the pairwise differences of the starts are spread around the circle modulo 2^k at
 * every scale from 4 KiB up to the planner's top scale (issue #15: power-of-two totals put every
 * stream of the step on the same cache sets), at a bounded memory cost. And the layout of 8-bit
 * states (base/arena_compact.ts): tensor order, block alignment, segment rows, sections.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  codesSection,
  EXP_AVG,
  GRADS,
  PARAMS,
  planArena,
  scalesSection,
  SLOW,
} from "../base/arena.ts";
import { SECTION_ALIGN_BYTES, sectionStride, spreadScaleLog2 } from "../base/section_spread.ts";
import { planCompactArena } from "../base/arena_compact.ts";
import { holdsCodes } from "../base/backend.ts";
import { Q8_BLOCK, Q8_MIN_ELEMENTS } from "../base/q8.ts";
import { stateInternals } from "../core/state.ts";
import { arenaAddresses, checkWasmCapacity } from "../cpu/wasm_backend.ts";
import { dispose, radam, ranger, step } from "../mod.ts";

/** Circular distance of `d` from 0 modulo `m`, as a fraction of `m`. */
function spread(d: number, m: number): number {
  const r = ((d % m) + m) % m;
  return Math.min(r, m - r) / m;
}

/** Asserts every property of the layout of one tensor of `total` elements. */
function checkLayout(total: number, slow: boolean): void {
  const layout = planArena(["w"], [total], { slow });
  const what = `total ${total}${slow ? " with slow weights" : ""}`;
  const bytes = layout.sectionLength * 4;
  const at = layout.sectionOffsets;
  assert.equal(at.length, slow ? 5 : 4, what);
  assert.equal(at[0], 0, what);
  for (let s = 0; s < at.length; s++) {
    assert.equal(at[s] % SECTION_ALIGN_BYTES, 0, `${what}: section ${s} aligned`);
    if (s > 0) {
      const stride = at[s] - at[s - 1];
      assert.ok(stride >= bytes, `${what}: sections ${s - 1} and ${s} overlap`);
      assert.notEqual(stride % 4096, 0, `${what}: stride ${stride} is a multiple of 4 KiB`);
    }
  }
  const last = at[at.length - 1] + bytes;
  assert.ok(layout.segmentTableOffset >= last, `${what}: segment table overlaps`);
  assert.equal(layout.byteLength, layout.segmentTableOffset, `${what}: no segments`);

  const top = spreadScaleLog2(bytes);
  for (let i = 0; i < at.length; i++) {
    for (let j = i + 1; j < at.length; j++) {
      const d = at[j] - at[i];
      // A fifth of the circle apart, less j ≤ 4 times the rounding of the stride to 64 bytes
      // (at most 32 bytes), at every spread scale.
      for (let k = 12; k <= top; k++) {
        const f = spread(d, 2 ** k);
        assert.ok(
          f >= 0.2 - 128 / 2 ** k - 1e-12,
          `${what}: starts ${i}, ${j} are ${f.toFixed(3)} apart mod 2^${k}`,
        );
      }
      // Above it, up to the section's size, never the same address bits.
      for (let k = top + 1; 2 ** k <= Math.max(bytes, 4096); k++) {
        assert.notEqual(d % 2 ** k, 0, `${what}: starts ${i}, ${j} alias mod 2^${k}`);
      }
    }
  }
  // The memory cost: each gap below 0.4 × 2^top + 64 bytes, so at most 5% of a section from
  // 32 KiB sections up, and under 1.7 KiB below.
  const gap = sectionStride(bytes) - bytes;
  assert.ok(gap < 0.4 * 2 ** top + 64, `${what}: gap ${gap}`);
  if (bytes >= 32768) assert.ok(gap <= 0.05 * bytes + 64, `${what}: gap ${gap} over 5%`);
  else assert.ok(gap < 1700, `${what}: gap ${gap}`);
}

Deno.test("sections are spread at every scale for power-of-two totals", () => {
  for (let k = 0; k <= 28; k++) {
    for (const slow of [false, true]) checkLayout(2 ** k, slow);
  }
});

Deno.test("sections are spread at totals near powers of two and multiples of them", () => {
  for (let k = 10; k <= 28; k++) {
    for (const total of [2 ** k - 4, 2 ** k + 16, 2 ** k + 1024, Math.round(2 ** k * 1.05)]) {
      checkLayout(total, false);
    }
    checkLayout(3 * 2 ** k, true);
    checkLayout(4096 * 4096 * (k % 7 + 1), false);
  }
});

Deno.test("sections are spread at any total", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 30 }), fc.boolean(), (total, slow) => {
      checkLayout(total, slow);
    }),
    { numRuns: 500 },
  );
});

Deno.test("the segment table follows the last section, its rows counted in byteLength", () => {
  const layout = planArena(["a", "b", "c"], [4096, 4096, 8192], { groups: [1, 2, 1] });
  const at = layout.sectionOffsets;
  assert.equal(layout.segmentTableOffset, at[at.length - 1] + layout.sectionLength * 4);
  assert.equal(layout.byteLength, layout.segmentTableOffset + 3 * 32);
});

Deno.test("a wasm state's sections lie at the planned offsets, cache-line aligned", async () => {
  for (const [total, threads] of [[4096, 1], [65536, 1], [65536, 2]] as const) {
    const state = await ranger({ threads, threadThreshold: 0 }).init({
      w: new Float32Array(total),
    });
    try {
      const p = state.params.w, g = state.grads.w;
      assert.equal(p.byteOffset % 64, 0, `params at ${p.byteOffset}`);
      const layout = planArena(["w"], [total], { slow: true });
      assert.equal(g.byteOffset - p.byteOffset, layout.sectionOffsets[1]);
      const a = arenaAddresses(layout, p.byteOffset);
      assert.equal(a.g, g.byteOffset);
      assert.equal(a.slow - a.p, layout.sectionOffsets[4]);
    } finally {
      dispose(state);
    }
  }
});

Deno.test("the capacity check counts the gaps", () => {
  // 16 bytes a parameter fit in 4 GiB (less a page of static data); the gaps do not.
  const total = 268_000_000;
  assert.ok(total * 16 + 65536 < 2 ** 32);
  const layout = planArena(["w"], [total]);
  assert.ok(layout.byteLength + 65536 > 2 ** 32);
  assert.throws(() => checkWasmCapacity(layout), RangeError);
  checkWasmCapacity(planArena(["w"], [250_000_000]));
});

/** Asserts every property of the 8-bit layout of tensors of `lengths` (docs/SPEC.md). */
function checkCompactLayout(lengths: number[], moments: number, slow: boolean): void {
  const names = lengths.map((_, i) => `t${i}`);
  const groups = lengths.map((_, i) => i % 3);
  const layout = planCompactArena(names, lengths, {
    moments,
    slow,
    groups,
    nonNegative: [false, true].slice(0, moments),
  });
  const what = `lengths ${lengths}, ${moments} moments${slow ? ", slow" : ""}`;
  const compact = lengths.map((n) => moments > 0 && n >= Q8_MIN_ELEMENTS);
  if (!compact.includes(true)) {
    assert.equal(layout.compactStart, layout.total, what);
    return;
  }
  // the tensors with f32 moments first, back to back, then the compact ones at whole blocks
  const order = [...names.keys()].sort((a, b) => +compact[a] - +compact[b] || a - b);
  assert.deepEqual(layout.names, order.map((i) => names[i]), what);
  assert.deepEqual(layout.compact, order.map((i) => compact[i]), what);
  assert.equal(layout.compactStart % Q8_BLOCK, 0, what);
  let end = 0;
  layout.names.forEach((_, i) => {
    if (layout.compact[i]) {
      assert.equal(layout.offsets[i] % Q8_BLOCK, 0, what);
      assert.ok(layout.offsets[i] >= Math.max(end, layout.compactStart), what);
      end = layout.offsets[i] + Math.ceil(layout.lengths[i] / Q8_BLOCK) * Q8_BLOCK;
    } else {
      assert.equal(layout.offsets[i], end, what);
      end += layout.lengths[i];
    }
  });
  assert.equal(layout.total, end, what);
  // one segment row per compact tensor, with its group and the end of its last block
  const rows = layout.segments.filter((s) => s.padded !== undefined);
  assert.equal(rows.length, compact.filter((c) => c).length, what);
  for (const row of rows) {
    const i = layout.offsets.findIndex((o, j) => layout.compact[j] && o === row.start);
    assert.equal(row.end, row.start + layout.lengths[i], what);
    assert.equal(row.padded, row.start + Math.ceil(layout.lengths[i] / Q8_BLOCK) * Q8_BLOCK);
    assert.equal(row.group, groups[order[i]], what);
  }
  // sections: aligned, in bounds, not overlapping; codes one byte, scales 4 a block
  const codes = layout.total - layout.compactStart;
  const sized: [number, number][] = [[PARAMS, 4 * layout.total], [GRADS, 4 * layout.total]];
  if (slow) sized.push([SLOW, 4 * layout.total]);
  for (let k = 0; k < moments; k++) {
    sized.push([codesSection(k), codes], [scalesSection(k), (codes / Q8_BLOCK) * 4]);
    if (compact.includes(false)) sized.push([EXP_AVG + k, 4 * layout.compactStart]);
    else assert.equal(layout.sectionOffsets[EXP_AVG + k], -1, what);
  }
  // (a section of no bytes, f32 moments where the tensors that keep them are empty, takes no room)
  const spans = sized.map(([s, bytes]) => [layout.sectionOffsets[s], bytes] as const)
    .filter(([, bytes]) => bytes > 0).sort((a, b) => a[0] - b[0]);
  spans.forEach(([at, bytes], j) => {
    assert.equal(at % SECTION_ALIGN_BYTES, 0, `${what}: aligned`);
    if (j > 0) assert.ok(at >= spans[j - 1][0] + spans[j - 1][1], `${what}: overlap`);
    assert.ok(at + bytes <= layout.segmentTableOffset, what);
  });
  assert.equal(layout.sectionCount, sized.length, what);
  // the sections' bytes, and the gaps (each under 5% of the section after it, or 1.7 KiB)
  const bytes = sized.reduce((a, [, b]) => a + b, 0);
  const slack = sized.reduce((a, [, b]) => a + Math.max(0.05 * b, 1700) + 64, 0);
  assert.ok(layout.segmentTableOffset <= bytes + slack, `${what}: gaps`);
  // params, grads and slow weights (equal sections) spread as in a 32-bit arena
  const bigBytes = 4 * layout.total;
  if (bigBytes >= 32768) {
    const top = spreadScaleLog2(bigBytes);
    const d = layout.sectionOffsets[GRADS] - layout.sectionOffsets[PARAMS];
    assert.ok(spread(d, 2 ** top) >= 0.2 - 128 / 2 ** top, `${what}: params/grads spread`);
  }
}

Deno.test("8-bit arenas: f32-moment tensors first, compact ones at whole blocks, sections apart", () => {
  const cases: [number[], number, boolean][] = [
    [[4096], 2, false],
    [[4097, 10], 2, true],
    [[10, 5000, 3, 70000, 4095], 1, false],
    [[2 ** 20], 2, true],
    [[2 ** 22 + 5, 100, 2 ** 12], 1, true],
    [[1, 2, 3], 2, false],
    [[5000], 0, false],
  ];
  for (const [lengths, moments, slow] of cases) checkCompactLayout(lengths, moments, slow);
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 4096, max: 2 ** 21 })),
        {
          minLength: 1,
          maxLength: 8,
        },
      ),
      fc.integer({ min: 0, max: 2 }),
      fc.boolean(),
      (lengths, moments, slow) => checkCompactLayout(lengths, moments, slow),
    ),
    { numRuns: 300 },
  );
});

Deno.test("8-bit states: the wasm arena holds its codes where the layout says, stepped in place", async () => {
  const state = await radam({ states: "8bit", threads: 2, threadThreshold: 0 }).init({
    b: new Float32Array(7),
    w: new Float32Array(5000).fill(1),
  });
  try {
    const backend = stateInternals(state).backend;
    assert.ok(holdsCodes(backend));
    const layout = backend.layout;
    assert.deepEqual(layout.names, ["b", "w"]);
    const codes = backend.viewCompact(0).w.codes;
    assert.equal(
      codes.byteOffset - state.params.b.byteOffset,
      layout.sectionOffsets[codesSection(0)],
    );
    assert.ok(codes instanceof Int8Array && backend.viewCompact(1).w.codes instanceof Uint8Array);
    step(state, { b: new Float32Array(7), w: new Float32Array(5000).fill(0.5) });
    assert.ok(codes.some((c) => c !== 0), "the step wrote the codes");
  } finally {
    dispose(state);
  }
});
