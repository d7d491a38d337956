/**
 * `init` checks the caller's params at the call and copies them after an await: values made
 * non-finite meanwhile are refused once copied, with a RangeError saying so, rather than held
 * unchecked; values changed but still valid are taken as copied, as documented. `loadState`
 * copies a checkpoint's tensors during the call on the CPU backends, once their kernel is
 * compiled, so that a change after it does not reach the state; bytes in a SharedArrayBuffer,
 * which another thread may write at any time, are copied after the await and checked again
 * (a change that makes them invalid refused, as on WebGPU: tests/gpu/).
 */
import assert from "node:assert/strict";
import { dispose, loadState, ranger, saveState } from "../mod.ts";
import { sample, sample8bit, split } from "./checkpoint_files.ts";
import { saying } from "./util.ts";

for (const backend of ["js", "wasm"] as const) {
  Deno.test(`init (${backend}): params made non-finite during its await are refused once copied`, async () => {
    const w = new Float32Array([1, 2, 3, 4]), b = new Float32Array([5, 6]);
    const made = ranger({ backend }).init({ w, b });
    b[1] = NaN;
    await assert.rejects(
      made,
      saying(
        RangeError,
        'Expected parameter "b" to hold finite numbers, got NaN at index 1 once init() copied it',
      ),
    );
    // Changed but finite: taken as copied.
    const state = ranger({ backend }).init({ w, b: new Float32Array([5, 6]) });
    w[0] = 7;
    assert.deepEqual((await state).params.w, new Float32Array([7, 2, 3, 4]));
    dispose(await state);
  });
}

/** The CPU backends a checkpoint loads on, as loadState's options. */
const LOADS: [string, Record<string, unknown>][] = [
  ["js", { backend: "js" }],
  ["wasm", { backend: "wasm" }],
  ["threads", { backend: "wasm", threads: 2, threadThreshold: 0 }],
];

/** The file and the F32 tensor whose element 0 a change makes NaN, of each format. */
const FILES: [string, () => Promise<Uint8Array>, string][] = [
  ["32bit", sample, "fc.bias.exp_avg_sq"],
  ["8bit", sample8bit, "fc.weight.exp_avg.scales"],
];

/** Writes NaN into element 0 of F32 tensor `name` of the file `bytes`, in place. */
function spoil(bytes: Uint8Array, name: string): void {
  const { header, data } = split(bytes);
  const [begin] = header[name].data_offsets as number[];
  new DataView(data.buffer, data.byteOffset).setFloat32(begin, NaN, true);
}

/** `bytes` copied into a SharedArrayBuffer. */
function shared(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(new SharedArrayBuffer(bytes.length));
  out.set(bytes);
  return out;
}

for (const [name, options] of LOADS) {
  for (const [format, file, tensor] of FILES) {
    Deno.test(`loadState (${name}, ${format}): the tensors are copied during the call, so bytes made invalid or transferred after it load as they were`, async () => {
      const bytes = await file();
      const kept = bytes.slice();
      const load = loadState(bytes, options);
      spoil(bytes, tensor);
      const loaded = await load;
      assert.deepEqual(await saveState(loaded), kept);
      dispose(loaded);
      const moved = kept.slice();
      const loading = loadState(moved, options);
      structuredClone(moved.buffer, { transfer: [moved.buffer] }); // e.g. posted to a worker
      const resumed = await loading;
      assert.deepEqual(await saveState(resumed), kept);
      dispose(resumed);
    });

    Deno.test(`loadState (${name}, ${format}): bytes in a SharedArrayBuffer made invalid during its await are refused once copied`, async () => {
      const bytes = shared(await file());
      const load = loadState(bytes, options);
      spoil(bytes, tensor); // (another thread may write them at any time: copied after the await)
      await assert.rejects(
        load,
        saying(RangeError, "The checkpoint's bytes changed while loadState() copied them"),
      );
      const loaded = await loadState(shared(await file()), options); // unchanged: loads
      assert.deepEqual(await saveState(loaded), await file());
      dispose(loaded);
    });
  }
}
