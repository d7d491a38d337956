/**
 * The watch of a WebGPU step that reads buffers of the caller's (its error scope, the refusal's
 * error, the record of the gradients' buffers as the device's): a device lost while a step's
 * scope is pending records no buffer as its own (a lost device's scope pops clean unchecked, so
 * a buffer of another device was then refused by a state on its own device); and a training
 * loop's steps from the same buffers of the caller's, or a bare gradient, make nothing per step
 * beyond what the step's watch needs (a Promise and two closures a step recorded buffers already
 * recorded, an array copied the buffers, a record was made around a bare gradient). And the
 * bound of what WebGPU lets a call tell: a buffer the caller destroyed, or another device's the
 * library never saw, is refused by the first call after the GPU's report, cleanly.
 */
import assert from "node:assert/strict";
import { adam, dispose, readParams, step } from "../../mod.ts";
import { adapter, device, ignore } from "./gpu_device.ts";
import { counted } from "../work_counts.ts";

const ALL = GPUBufferUsage?.STORAGE | GPUBufferUsage?.COPY_SRC | GPUBufferUsage?.COPY_DST;

/** A buffer of `on` holding `values`. */
function bufferOf(values: number[], on: GPUDevice): GPUBuffer {
  const buffer = on.createBuffer({ size: values.length * 4, usage: ALL });
  on.queue.writeBuffer(buffer, 0, new Float32Array(values));
  return buffer;
}

/**
 * `on`, whose error scopes pop, while `hold.now`, as a lost device's do: clean, nothing checked,
 * when the test says (`hold.release`), before or after the device is lost.
 */
function slowScopes(on: GPUDevice, hold: { now: boolean; release: () => void }): GPUDevice {
  return new Proxy(on, {
    get(target, key) {
      if (key === "popErrorScope" && hold.now) {
        return () => {
          target.popErrorScope().catch(() => {});
          return new Promise<null>((resolve) => {
            const before = hold.release;
            hold.release = () => (before(), resolve(null));
          });
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test({
  name:
    "webgpu: a device lost while a step's error scope is pending records no buffer as its own: a state on the buffer's own device takes it as a gradient",
  ignore,
  async fn() {
    for (const order of ["scope pops, then the device is lost", "lost, then the scope pops"]) {
      const hold = { now: false, release: () => {} };
      const real = await adapter!.requestDevice();
      const lost = slowScopes(real, hold);
      const grad = bufferOf([1, 2, 3, 4], device!); // (never seen by the library)
      let there = await adam({ lr: 0.1 }).init({ w: new Float32Array(4) }, { device: lost });
      let here = await adam({ lr: 0.1 }).init({ w: new Float32Array(4) }, { device: device! });
      try {
        hold.now = true;
        there = step(there, { w: grad }); // (the GPU refused it: another device's buffer)
        hold.now = false;
        if (order.startsWith("scope")) hold.release();
        real.destroy();
        await real.lost;
        hold.release();
        await new Promise((r) => setTimeout(r, 0));
        // It was recorded as the lost device's, and refused here as "of another GPUDevice".
        here = step(here, { w: grad });
        assert.ok((await readParams(here)).w[0] < 0, order);
        assert.equal(here.step, 1, order);
      } finally {
        dispose(there);
        dispose(here);
        grad.destroy();
      }
    }
  },
});

/**
 * The Promise `then`s (`finally` calls `then`), the arrays copied (`slice`) and the records'
 * keys listed (`Object.keys`, work_counts.ts) by `steps` calls of `run`, once one warm-up
 * call's scope has popped.
 */
async function perSteps(
  run: () => void,
  steps: number,
): Promise<{ thens: number; slices: number; keys: number }> {
  run();
  await new Promise((r) => setTimeout(r, 50));
  const then = Promise.prototype.then;
  let thens = 0;
  Promise.prototype.then = function (this: Promise<unknown>, ...args: unknown[]) {
    thens++;
    return Reflect.apply(then, this, args);
  } as typeof then;
  try {
    const work = await counted(() => {
      for (let i = 0; i < steps; i++) run();
      return Promise.resolve();
    });
    return { thens, slices: work.get("Array.slice") ?? 0, keys: work.get("Object.keys") ?? 0 };
  } finally {
    Promise.prototype.then = then;
  }
}

Deno.test({
  name:
    "webgpu: steps from the same buffers of the caller's make no Promise, copy or record beyond the step's watch; a bare gradient no record around it",
  ignore,
  async fn() {
    const opt = adam({ lr: 0.01 });
    const param = bufferOf([1, 2, 3, 4], device!);
    const grads = [bufferOf([1, 1, 1, 1], device!), bufferOf([2, 2, 2, 2], device!)];
    // Watched for its param in place alone: the watch's own Promises.
    let watched = await opt.init({ w: { buffer: param, length: 4 } }, { device: device! });
    let mine = await opt.init({ a: new Float32Array(4), b: new Float32Array(4) }, { device });
    let bare = await opt.init(new Float32Array(4), { device: device! });
    try {
      const g = new Float32Array(4).fill(1);
      const alone = await perSteps(() => watched = step(watched, { w: g }), 8);
      assert.ok(alone.thens > 0, "the watch's Promises are counted");
      assert.equal(alone.slices, 0);
      const given = { a: grads[0], b: grads[1] };
      const caller = await perSteps(() => mine = step(mine, given), 8);
      assert.equal(caller.thens, alone.thens, "steps from the caller's buffers: Promises");
      assert.equal(caller.slices, 0, "steps from the caller's buffers: arrays copied");
      const record = await perSteps(() => bare = step(bare, { "": g }), 8);
      assert.equal(record.keys, 8, "a record's keys are counted");
      assert.equal((await perSteps(() => bare = step(bare, g), 8)).keys, 0, "a bare gradient");
      assert.deepEqual([watched, mine, bare].map((s) => s.step), [9, 9, 18]);
      assert.ok((await readParams(mine)).a[0] < 0);
    } finally {
      for (const s of [watched, mine, bare]) dispose(s);
      for (const b of [param, ...grads]) b.destroy();
    }
  },
});

Deno.test({
  name:
    "webgpu: a gradient in a buffer the caller destroyed, or in another device's the library never saw, is refused by the first step called after the GPU's report, naming the tensor, that step's own gradient not loaded, the state as it was",
  ignore,
  async fn() {
    // WebGPU shows neither a buffer's device nor whether it is destroyed: the GPU's refusal of
    // the step that received it is the first word of it (the bound documented on GpuGrads).
    const other = await adapter!.requestDevice();
    const destroyed = bufferOf([1, 2, 3, 4], device!);
    destroyed.destroy();
    const foreign = bufferOf([1, 2, 3, 4], other);
    try {
      for (
        const [what, bad] of [["destroyed", destroyed], ["of another device", foreign]] as const
      ) {
        const opt = adam({ lr: 0.1 });
        let state = step(await opt.init({ w: new Float32Array(4) }, { device }), {
          w: Float32Array.of(1, 1, 1, 1),
        });
        try {
          const before = await readParams(state);
          state = step(state, { w: bad }); // (taken at the call: the GPU has not said yet)
          await new Promise((r) => setTimeout(r, 0));
          assert.throws(
            () => step(state, { w: Float32Array.of(-9, -9, -9, -9) }),
            (e: Error) =>
              e instanceof TypeError &&
              /^The GPU refused a step \(.*\): the buffers it reads of yours \(the gradient of parameter "w"\) must be live GPUBuffers \(not destroyed\) of the state's device; that step was not taken/
                .test(e.message),
            what,
          );
          assert.equal(state.step, 1, what);
          assert.deepEqual(await readParams(state), before, what);
          state = step(state, { w: Float32Array.of(1, 1, 1, 1) });
          assert.equal(state.step, 2, what);
          assert.ok((await readParams(state)).w[0] < before.w[0], what);
        } finally {
          dispose(state);
        }
      }
    } finally {
      foreign.destroy();
      other.destroy();
    }
  },
});
