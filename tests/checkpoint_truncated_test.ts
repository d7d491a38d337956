/**
 * A checkpoint cut short (an upload or a write interrupted, a read of its first bytes only) says
 * it is truncated, with the bytes it needs and the bytes it got, wherever it was cut: before its
 * header length, in its header, or in its data; through `loadState` and the stores' own reads of
 * the parameters. Bytes that are all zero say so.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { CheckpointError, loadState } from "../mod.ts";
import { dataParallel, memoryCheckpointStore } from "../store.ts";
import { radam } from "../mod.ts";
import { sample, sample8bit } from "./checkpoint_files.ts";

const files = { f32: await sample(), "8bit": await sample8bit() };

/** The header length a file gives in its first 8 bytes (read independently of the library). */
function headerLength(bytes: Uint8Array): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
}

/** The bytes a file cut to `cut` bytes is said to need: its header length, its header, all. */
function needed(whole: Uint8Array, cut: number): number {
  if (cut < 8) return 8;
  const header = 8 + headerLength(whole);
  return cut < header ? header : whole.length;
}

/** Asserts that `bytes` (a cut of `whole`) are refused as truncated, with both lengths. */
async function refusedAsTruncated(
  load: (bytes: Uint8Array) => Promise<unknown>,
  whole: Uint8Array,
  cut: number,
  prefix = "Checkpoint ",
): Promise<void> {
  const bytes = whole.slice(0, cut);
  await assert.rejects(load(bytes), (e: Error) => {
    assert.ok(e instanceof CheckpointError, `cut at ${cut}: ${e}`);
    const start = `${prefix}truncated: expected at least ${needed(whole, cut)} bytes (`;
    assert.ok(e.message.startsWith(start), `cut at ${cut}: ${e.message}`);
    // (An empty file says so after the lengths.)
    const end = cut === 0 ? "), got 0 (an empty file)" : `), got ${cut}`;
    assert.ok(e.message.endsWith(end), `cut at ${cut}: ${e.message}`);
    return true;
  });
}

for (const [format, whole] of Object.entries(files)) {
  Deno.test(`checkpoint truncated (${format}): cut before, in and after its header, each says so with the lengths`, async () => {
    const header = 8 + headerLength(whole);
    const cuts = [0, 3, 7, 8, 9, header >> 1, header - 1, header, header + 1, whole.length - 1];
    for (const cut of cuts) await refusedAsTruncated((b) => loadState(b), whole, cut);
    // Cut in the header: it names the header's length.
    await assert.rejects(loadState(whole.slice(0, 8)), {
      name: "CheckpointError",
      message: `Checkpoint truncated: expected at least ${header} bytes (8 + its header of ${
        header - 8
      }), got 8`,
    });
    // Cut in the data: it names the header and the data it describes.
    await assert.rejects(loadState(whole.slice(0, whole.length - 2)), {
      message: `Checkpoint truncated: expected at least ${whole.length} bytes (8 + its header of ${
        header - 8
      } + the ${whole.length - header} bytes of data it describes), got ${whole.length - 2}`,
    });
    assert.equal((await loadState(whole)).step, 3, "the whole file loads");
  });

  Deno.test(`checkpoint truncated (${format}): any cut is said to be truncated, with the lengths`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: whole.length - 1 }), async (cut) => {
        await refusedAsTruncated((b) => loadState(b), whole, cut);
      }),
      { numRuns: 200 },
    );
  });
}

Deno.test("checkpoint truncated: bytes that are all zero say so, whatever their length", async () => {
  await assert.rejects(loadState(new Uint8Array(10)), {
    name: "CheckpointError",
    message: "Checkpoint header length is 0, under the 2 bytes of the smallest header ({}) " +
      "(its 10 bytes are all 0: a buffer or file no checkpoint was written into?)",
  });
  await assert.rejects(loadState(new Uint8Array(3)), {
    message: "Checkpoint truncated: expected at least 8 bytes (its header length), got 3 " +
      "(its 3 bytes are all 0: a buffer or file no checkpoint was written into?)",
  });
  await assert.rejects(loadState(new Uint8Array(0)), {
    message: "Checkpoint truncated: expected at least 8 bytes (its header length), got 0 " +
      "(an empty file)",
  });
  // A header length of 1 in a file not all zero: no header is that short.
  const one = new Uint8Array(12);
  one[0] = 1;
  one[8] = 0x7b;
  await assert.rejects(loadState(one), {
    message: "Checkpoint header length is 1, under the 2 bytes of the smallest header ({})",
  });
});

Deno.test("checkpoint truncated: a store's own read of a cut checkpoint says so, naming the store", async () => {
  const whole = files.f32;
  for (const cut of [3, 8, 8 + headerLength(whole) + 4]) {
    const store = memoryCheckpointStore({ name: "user-3" });
    await store.save(whole.slice(0, cut), null);
    const init = () => ({
      "fc.weight": new Float32Array(6),
      "fc.bias": new Float32Array(2),
    });
    const trainer = dataParallel(store, { optimizer: radam(), init });
    for (const read of [() => trainer.params(), () => store.loadParams()]) {
      await assert.rejects(read(), (e: Error) => {
        assert.ok(e instanceof CheckpointError, `cut at ${cut}: ${e}`);
        assert.match(
          e.message,
          new RegExp(
            `^Checkpoint user-3 truncated: expected at least ${
              needed(whole, cut)
            } bytes \\(.*\\), got ${cut}$`,
          ),
          `cut at ${cut}`,
        );
        return true;
      });
    }
    await trainer.close();
  }
});
