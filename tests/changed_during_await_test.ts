/**
 * `init` and `loadState` copy the caller's params or a checkpoint's tensors during the call on
 * the CPU backends, once their kernel is compiled, so that a change after it does not reach the
 * state. Arrays or bytes in a SharedArrayBuffer, which another thread may write at any time, are
 * copied after the await and checked again: values made non-finite meanwhile (or a second
 * moment negative) are refused once copied, with a RangeError saying so, rather than held
 * unchecked, and values changed but still valid are taken as copied, as documented (as on
 * WebGPU: tests/gpu/).
 */
import assert from "node:assert/strict";
import { dispose, loadState, ranger, saveState } from "../mod.ts";
import { sample, sample8bit, split } from "./checkpoint_files.ts";
import { saying } from "./util.ts";

/** The CPU backends a state starts on, as the optimizer's options. */
const INITS: [string, Record<string, unknown>][] = [
  ["js", { backend: "js" }],
  ["wasm", { backend: "wasm" }],
  ["threads", { backend: "wasm", threads: 2, threadThreshold: 0 }],
];

for (const [name, options] of INITS) {
  Deno.test(`init (${name}): the params are copied during the call, so arrays changed or transferred after it start the state as they were`, async () => {
    dispose(await ranger(options).init(new Float32Array(1))); // the kernel compiled
    const w = new Float32Array([1, 2, 3, 4]), b = new Float32Array([5, 6]);
    const made = ranger(options).init({ w, b });
    b[1] = NaN;
    w[0] = 7;
    const state = await made;
    assert.deepEqual(state.params, {
      w: new Float32Array([1, 2, 3, 4]),
      b: new Float32Array([5, 6]),
    });
    // From a CPU state, nothing is awaited first either.
    const c = new Float32Array([9, 10]);
    const after = ranger(options).init({ w: new Float32Array([8, 8, 8, 8]), b: c }, {
      from: state,
    });
    structuredClone(c.buffer, { transfer: [c.buffer] }); // e.g. posted to a worker
    const next = await after;
    assert.deepEqual(next.params.b, new Float32Array([9, 10]));
    dispose(state);
    dispose(next);
  });

  Deno.test(`init (${name}): params in a SharedArrayBuffer made non-finite during its await are refused once copied`, async () => {
    const w = new Float32Array(new SharedArrayBuffer(16)), b = new Float32Array([5, 6]);
    w.set([1, 2, 3, 4]);
    const made = ranger(options).init({ w, b });
    w[1] = NaN; // (another thread may write them at any time: copied after the await)
    await assert.rejects(
      made,
      saying(
        RangeError,
        'Expected parameter "w" to hold finite numbers, got NaN at index 1 once init() copied it',
      ),
    );
    // Changed but finite: taken as copied.
    w[1] = 2;
    const state = ranger(options).init({ w, b });
    w[1] = 8;
    assert.deepEqual((await state).params.w, new Float32Array([1, 8, 3, 4]));
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
