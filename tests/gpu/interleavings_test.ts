/**
 * Concurrency of the core API on WebGPU (tests/interleavings.ts): programs of steps, reads,
 * checkpoints, stale handles, re-entrant calls and dispose on two lines of states at once, their
 * Promises awaited or not and released in orders fast-check's scheduler draws. Each outcome is
 * that of the same program run sequentially on the device, or one of the two refusals documented
 * for WebGPU: a checkpoint that a step overtook before it read the state rejects (a TypeError
 * saying to await it), and a read pending at `dispose` rejects saying the state was disposed.
 * Without an adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { adam, dispose, loadState, type OptimizerState, saveState, step } from "../../mod.ts";
import { saying } from "../util.ts";
import {
  disposeAll,
  DISPOSED_STATE_MESSAGE,
  lineArb,
  type LineCase,
  optimizerOf,
  type Outcome,
  outcomes,
  reference,
  runLine,
} from "../interleavings.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";

const OVERTAKEN = "stepped before saveState() read it";

function initializer(c: LineCase) {
  const opt = optimizerOf(c, { backend: "webgpu" });
  return {
    init: (params: Record<string, Float32Array>) => opt.init(params, { device: device! }),
  };
}

function writeSlot(state: OptimizerState<unknown>, name: string, data: Float32Array): void {
  const slot = state.grads[name] as GPUBufferBinding;
  device!.queue.writeBuffer(slot.buffer, slot.offset ?? 0, data as Float32Array<ArrayBuffer>);
}

/** Whether `got` is an outcome WebGPU may give where the sequential run gave `expected`. */
function allowed(got: Outcome & { what: string }, expected: Outcome, c: LineCase): boolean {
  if (!("error" in got) || !("value" in expected)) return false;
  if (got.what === "save" && got.error.includes(OVERTAKEN)) return true;
  return got.error.endsWith(DISPOSED_STATE_MESSAGE) && c.ops.some((op) => op.t === "dispose");
}

Deno.test({
  name:
    "webgpu interleavings: every call's outcome is the sequential run's, or a documented refusal",
  ignore,
  async fn() {
    await noGpuErrors(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(lineArb(8, false), { minLength: 1, maxLength: 2 }),
          fc.scheduler(),
          async (lines, s) => {
            const load = { backend: "webgpu", device: device! };
            const runs = lines.map((c) =>
              runLine(
                c,
                initializer(c),
                load,
                (p) => {
                  p.catch(() => {}); // rejections are checked where they are released
                  return s.schedule(p);
                },
                false,
                writeSlot,
              )
            );
            const done = await s.waitFor(Promise.all(runs));
            await s.waitAll();
            const got = [];
            for (const run of done) {
              got.push(await s.waitFor(outcomes(run)) as (Outcome & { what: string })[]);
              await s.waitAll();
            }
            done.forEach(disposeAll);
            for (let i = 0; i < lines.length; i++) {
              const alone = await reference(lines[i], initializer(lines[i]), load, writeSlot);
              const expected = await outcomes(alone) as Outcome[];
              disposeAll(alone);
              assert.equal(got[i].length, expected.length);
              got[i].forEach((g, k) => {
                if (!allowed(g, expected[k], lines[i])) assert.deepEqual(g, expected[k]);
              });
            }
          },
        ),
        { numRuns: 15 },
      )
    );
  },
});

Deno.test({
  name:
    "webgpu: loadState whose bytes are transferred before it resolves rejects saying to leave them unchanged",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const state = step(await adam({ lr: 1e-2 }).init({ w: new Float32Array([1, 2, 3]) }), {
        w: new Float32Array([0.5, -1, 2]),
      });
      const bytes = await saveState(state);
      const kept = bytes.slice();
      const loading = loadState(bytes, { device: device! });
      structuredClone(bytes.buffer, { transfer: [bytes.buffer] }); // e.g. posted to a worker
      await assert.rejects(
        loading,
        saying(
          TypeError,
          "The checkpoint's bytes were detached (their ArrayBuffer transferred, or shrunk) before loadState()",
        ),
      );
      const resumed = await loadState(kept, { device: device! }); // a copy loads as ever
      assert.deepEqual(await saveState(resumed), kept);
      dispose(resumed);
    });
  },
});

Deno.test({
  name:
    "webgpu: init whose params are transferred before it resolves rejects saying to leave them unchanged",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const b = new Float32Array([1, 2, 3]);
      const starting = adam({ lr: 1e-2 }).init({ a: new Float32Array(5), b }, { device: device! });
      structuredClone(b.buffer, { transfer: [b.buffer] }); // e.g. posted to a worker
      await assert.rejects(
        starting,
        saying(
          TypeError,
          'The values of parameter "b" were detached (their ArrayBuffer transferred, or shrunk) before init()',
        ),
      );
    });
  },
});
