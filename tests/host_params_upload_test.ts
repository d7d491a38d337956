/**
 * A WebGPU state's host params uploaded at init in gathered writes (gpu/section_io.ts), against
 * the plain form they replace (a `writeBuffer` a tensor into the new, zeroed params buffer),
 * on a recording queue: the params section holds the same bytes, the padding between tensors
 * zeros, whatever the lengths, the layout (32-bit or 8-bit), and which tensors are the host's.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type ArenaLayout, PARAMS } from "../base/arena.ts";
import { planGpuArena, planGpuCompactArena } from "../gpu/arena_layout.ts";
import { sectionBytes } from "../gpu/compact_plan.ts";
import { type CallerParams, SectionIO } from "../gpu/section_io.ts";

/** The params section after `write` on a queue that applies each `writeBuffer` to its bytes. */
function uploaded(layout: ArenaLayout, write: (io: SectionIO) => void): Uint8Array {
  const bytes = new Uint8Array(sectionBytes(layout, PARAMS));
  const params = { label: "params" } as unknown as GPUBuffer;
  const queue = {
    writeBuffer(buffer: GPUBuffer, offset: number, data: Float32Array) {
      assert.equal(buffer, params);
      assert.equal(offset % 4, 0);
      assert.ok(offset + data.byteLength <= bytes.length, "an upload past the section");
      bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    },
  };
  const device = { queue } as unknown as GPUDevice;
  const caller = { externals: [], inPlaceReads: [], inPlaceWrites: [] } as unknown as CallerParams;
  write(new SectionIO(device, layout, [params], () => {}, caller));
  return bytes;
}

Deno.test("host params gathered in uploads leave the params section as an upload each does", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.oneof(fc.nat({ max: 70 }), fc.constantFrom(255, 256, 257, 4096, 300_000)),
          fc.boolean(),
        ),
        { minLength: 1, maxLength: 12 },
      ),
      fc.boolean(),
      (specs, compact) => {
        const names = specs.map((_, i) => `t${i}`);
        const lengths = specs.map(([n]) => n);
        const layout = compact
          ? planGpuCompactArena(names, lengths, { moments: 2 })
          : planGpuArena(names, lengths, { moments: 2 });
        const data: Record<string, Float32Array> = {};
        layout.names.forEach((name, i) => {
          if (!specs[Number(name.slice(1))][1]) return; // (a caller's buffer's)
          data[name] = Float32Array.from({ length: layout.lengths[i] }, (_, k) => -1 - k - i);
        });
        const plain = uploaded(layout, () => {});
        layout.names.forEach((name, i) => {
          if (!data[name]?.length) return;
          plain.set(new Uint8Array(data[name].buffer), layout.offsets[i] * 4);
        });
        assert.deepEqual(uploaded(layout, (io) => io.writeHostParams(data)), plain);
      },
    ),
    { numRuns: 300 },
  );
});
