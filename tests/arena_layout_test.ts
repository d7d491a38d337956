/**
 * The arena's section layout (base/arena.ts `planArena`), checked deterministically, without
 * timing: section starts are cache-line aligned and never overlap, strides are never multiples of
 * 4 KiB, and the pairwise differences of the starts are spread around the circle modulo 2^k at
 * every scale from 4 KiB up to the planner's top scale (issue #15: power-of-two totals put every
 * stream of the step on the same cache sets), at a bounded memory cost.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { planArena, SECTION_ALIGN_BYTES, sectionStride, spreadScaleLog2 } from "../base/arena.ts";
import { arenaAddresses, checkWasmCapacity } from "../cpu/wasm_backend.ts";
import { dispose, ranger } from "../mod.ts";

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
