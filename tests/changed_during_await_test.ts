/**
 * `init` and `loadState` check the caller's arrays (the params, a checkpoint's bytes) at the call
 * and copy them after an await: values made non-finite meanwhile (or a second moment negative,
 * a code out of place) are refused once copied, with a RangeError saying so, rather than held
 * unchecked; values changed but still valid are taken as copied, as documented.
 */
import assert from "node:assert/strict";
import { dispose, loadState, radam, ranger, readMoments, saveState, step } from "../mod.ts";
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

  Deno.test(`loadState (${backend}): a checkpoint's bytes made invalid during its await are refused once copied`, async () => {
    let state = await radam({ backend }).init({ w: new Float32Array([1, 2, 3, 4]) });
    state = step(state, { w: new Float32Array([1, 1, 1, 1]) });
    const bytes = await saveState(state);
    dispose(state);
    // The last bytes of the file: the last value of its last tensor.
    const loading = loadState(bytes.slice(), { backend });
    const changed = bytes.slice();
    const load = loadState(changed, { backend });
    changed.fill(0xff, changed.length - 4); // a NaN
    await assert.rejects(
      load,
      saying(RangeError, "The checkpoint's bytes changed while loadState() copied them"),
    );
    const loaded = await loading;
    assert.equal(loaded.step, 1);
    assert.equal((await readMoments(loaded)).exp_avg.w.length, 4);
    dispose(loaded);
  });
}
