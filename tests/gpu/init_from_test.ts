/**
 * `init(params, { from })` on WebGPU (llvmpipe in CI): a WebGPU `from` into a WebGPU state (a
 * copy on the GPU), a CPU `from` into a WebGPU state and back (through the host), with RAdam, Ranger
 * and 8-bit RAdam, steps skipped by `nonFinite: "skip"` among those before the change. The
 * reference: a state over the new set all along, its new tensor given zero gradients until the
 * change (on the CPU for a CPU `from`, then loaded onto the device), stepped on the device after
 * it alike: the same bits of params, moments, slow weights and counts. `from` is left as it was.
 * A WebGPU `from` stepped before init read it gives its state at the call. Refused: a WebGPU
 * `from` on another device, or disposed before init read it.
 */
import assert from "node:assert/strict";
import {
  dispose,
  loadState,
  type Optimizer,
  type OptimizerState,
  radam,
  ranger,
  readParams,
  saveState,
  step,
} from "../../mod.ts";
import { stateInternals } from "../../core/state.ts";
import { type Contents, contents, difference } from "../state_contents.ts";
import { randoms, saying } from "../util.ts";
import { adapter, device, ignore, noGpuErrors } from "./gpu_device.ts";

type Factory = (options: Record<string, unknown>) => Optimizer<unknown>;

const FACTORIES: Record<string, Factory> = {
  radam: (o) => radam({ ...o, weightDecay: 0 }),
  ranger: (o) => ranger({ ...o, weightDecay: 0, k: 3 }),
  "radam 8bit": (o) => radam({ ...o, weightDecay: 0, states: "8bit" }),
};

/** Asserts `a` and `b` (`contents`) are the same bits, naming the first that differs. */
function assertSame(a: Contents, b: Contents): void {
  assert.equal(difference(a, b), undefined);
}

const LENGTHS = { a: 4100, b: 300, c: 4500 };
const N = 5, M = 3;

/** Gradient `k` of step `t` (a NaN one at the last step before the change, skipped). */
function grad(length: number, t: number, k: number): Float32Array {
  const g = randoms(length, 1000 + t * 7 + k);
  if (t === N - 1) g[0] = NaN;
  return g;
}

/** `contents` of the tensor `name` and the counts alone. */
function only(all: Contents, name: string): Contents {
  return new Map([...all].filter(([k]) => !k.includes(".") || k.endsWith(`.${name}`)));
}

type Place = "webgpu" | "js";

/**
 * From (over a and b, on `before`) into a state over a and c on `after`, against the reference
 * over a and c all along (on `before`, moved to `after` at the change).
 */
async function carried(rule: string, before: Place, after: Place): Promise<void> {
  const make = (backend: string) =>
    FACTORIES[rule]({ lr: 1e-2, backend, nonFinite: "skip" }) as Optimizer;
  const on = (place: Place) => place === "webgpu" ? { device: device! } : {};
  const a0 = randoms(LENGTHS.a, 1), b0 = randoms(LENGTHS.b, 2), c0 = randoms(LENGTHS.c, 3);
  // deno-lint-ignore no-explicit-any
  let from: OptimizerState<any> = await make(before).init({ a: a0, b: b0 }, on(before));
  // deno-lint-ignore no-explicit-any
  let ref: OptimizerState<any> = await make(before).init({ a: a0, c: c0 }, on(before));
  for (let t = 0; t < N; t++) {
    from = step(from, { a: grad(LENGTHS.a, t, 0), b: grad(LENGTHS.b, t, 1) });
    ref = step(ref, { a: grad(LENGTHS.a, t, 0), c: new Float32Array(LENGTHS.c) });
  }
  // (from's steps are not awaited before init: the copy waits for the device to report them.)
  const { a } = await readParams(ref);
  let state = await make(after).init({ c: c0, a }, { ...on(after), from });
  assert.equal(state.backend === "webgpu", after === "webgpu");
  assert.equal(state.step, N - 1);
  assert.equal(state.skippedSteps, 1);
  if (before !== after) {
    const moved = await loadState(await saveState(ref), { backend: after, ...on(after) });
    dispose(ref);
    ref = moved;
  }
  // from is as it was: a's state and the counts as the reference's.
  const kept = await contents(from);
  assertSame(only(kept, "a"), only(await contents(ref), "a"));
  for (let t = N; t < N + M; t++) {
    const grads = { a: grad(LENGTHS.a, t, 0), c: grad(LENGTHS.c, t, 2) };
    state = step(state, grads);
    ref = step(ref, grads);
  }
  assertSame(await contents(state), await contents(ref));
  assertSame(await contents(from), kept);
  from = step(from, { a: grad(LENGTHS.a, 9, 0), b: grad(LENGTHS.b, 9, 1) });
  assert.equal((await readParams(from)).a.length, LENGTHS.a);
  for (const s of [from, state, ref]) dispose(s);
}

const PLACES: [Place, Place][] = [["webgpu", "webgpu"], ["js", "webgpu"], ["webgpu", "js"]];
for (const rule of Object.keys(FACTORIES)) {
  for (const [before, after] of PLACES) {
    Deno.test({
      name:
        `webgpu init from: ${rule}, a ${before} from into a ${after} state, kept tensors bit for bit, at its step count`,
      ignore,
      fn: () => noGpuErrors(() => carried(rule, before, after)),
    });
  }
}

Deno.test({
  name:
    'webgpu init from: a WebGPU from goes on its device with backend "webgpu" or "auto" and no device, on the CPU with "js"',
  ignore,
  async fn() {
    const from = await radam({ backend: "webgpu" }).init({ w: new Float32Array(8) }, { device });
    const state = await radam({ backend: "webgpu" }).init({ w: new Float32Array(8) }, { from });
    assert.equal(state.backend, "webgpu");
    const auto = await radam().init({ w: new Float32Array(8) }, { from });
    assert.equal(auto.backend, "webgpu");
    assert.equal(stateInternals(auto).backend.kind === "device", true);
    assert.equal((stateInternals(auto).backend as { device?: GPUDevice }).device, device);
    const js = await radam({ backend: "js" }).init({ w: new Float32Array(8) }, { from });
    assert.equal(js.backend, "js");
    for (const s of [from, state, auto, js]) dispose(s);
  },
});

Deno.test({
  name: "webgpu init from: from on another device is a TypeError, disposed before init read it too",
  ignore,
  async fn() {
    const params = { w: new Float32Array([1, 2]) };
    let from = await radam({ backend: "webgpu" }).init(params, { device });
    from = step(from, { w: new Float32Array([1, 1]) });
    const before = await contents(from);
    const other = await adapter!.requestDevice();
    await assert.rejects(
      radam({ backend: "webgpu" }).init(params, { device: other, from }),
      saying(TypeError, "Option from of init is a state on GPUDevice"),
    );
    other.destroy();
    await assert.rejects(
      radam({ backend: "webgpu" }).init({ w: new Float32Array(3) }, { from }),
      saying(RangeError, "with shape [2], the params give it shape [3]"),
    );
    assertSame(await contents(from), before);
    // A hold given up (a group matching no tensor, found after it): freed, from read as before.
    const held = heldBuffers(
      device!,
      () => radam({ backend: "webgpu", groups: [{ match: /^none$/ }] }).init(params, { from }),
    );
    await assert.rejects(held.out, saying(TypeError, "none"));
    assert.ok(held.made.length > 0 && held.made.every((b) => b.destroyed));
    assertSame(await contents(from), before);
    const kept = heldBuffers(device!, () => radam({ backend: "webgpu" }).init(params, { from }));
    dispose(await kept.out);
    assert.ok(kept.made.length > 0 && kept.made.every((b) => b.destroyed));
    // Disposed before init read it: refused.
    for (const backend of ["webgpu", "js"] as const) {
      from = step(await radam({ backend: "webgpu" }).init(params, { device }), params);
      const made = radam({ backend }).init(params, { from });
      dispose(from);
      await assert.rejects(made, saying(TypeError, "was disposed before init() read it"));
    }
  },
});

/** The buffers of a hold (labelled so) `gpu` makes while `f` runs, and whether each was freed. */
function heldBuffers<T>(gpu: GPUDevice, f: () => T): { out: T; made: { destroyed: boolean }[] } {
  const create = gpu.createBuffer;
  const made: { destroyed: boolean }[] = [];
  gpu.createBuffer = function (descriptor: GPUBufferDescriptor) {
    const buffer = create.call(this, descriptor);
    if (!descriptor.label?.startsWith("radam held")) return buffer;
    const record = { destroyed: false };
    made.push(record);
    const destroy = buffer.destroy;
    buffer.destroy = function () {
      record.destroyed = true;
      destroy.call(this);
    };
    return buffer;
  };
  try {
    return { out: f(), made };
  } finally {
    gpu.createBuffer = create;
  }
}

/** A from over a and b after N steps (one skipped), as `carried` makes it, on the GPU. */
// deno-lint-ignore no-explicit-any
async function stepped(rule: string): Promise<OptimizerState<any>> {
  const opt = FACTORIES[rule]({ lr: 1e-2, backend: "webgpu", nonFinite: "skip" });
  let from = await opt.init({ a: randoms(LENGTHS.a, 1), b: randoms(LENGTHS.b, 2) }, { device });
  for (let t = 0; t < N; t++) {
    from = step(from, { a: grad(LENGTHS.a, t, 0), b: grad(LENGTHS.b, t, 1) });
  }
  return from;
}

for (const rule of Object.keys(FACTORIES)) {
  for (const after of ["webgpu", "js"] as const) {
    Deno.test({
      name:
        `webgpu init from: steps of a WebGPU from after the call change nothing of the ${after} state (${rule}), from goes on`,
      ignore,
      fn: () =>
        noGpuErrors(async () => {
          const make = () => FACTORIES[rule]({ lr: 1e-2, backend: after, nonFinite: "skip" });
          const params = { a: randoms(LENGTHS.a, 4), c: randoms(LENGTHS.c, 3) };
          let from = await stepped(rule), twin = await stepped(rule);
          const made = make().init(params, { from });
          // Stepped before init read it: a step taken, one skipped, none awaited.
          const later = [
            { a: grad(LENGTHS.a, 20, 0), b: grad(LENGTHS.b, 20, 1) },
            { a: grad(LENGTHS.a, 21, 0), b: grad(LENGTHS.b, 21, 1).fill(NaN) },
          ];
          for (const g of later) from = step(from, g);
          const state = await made;
          const ref = await make().init(params, { from: twin });
          assertSame(await contents(state), await contents(ref));
          assert.equal(state.step, N - 1);
          // from is as if init had not been called.
          for (const g of later) twin = step(twin, g);
          assertSame(await contents(from), await contents(twin));
          assert.equal(from.step, N);
          for (const s of [from, twin, state, ref]) dispose(s);
        }),
    });
  }
}

for (const backend of ["webgpu", "js"] as const) {
  Deno.test({
    name:
      `webgpu init from: a halt under nonFinite "throw" not yet reported rejects init (${backend}), once`,
    ignore,
    async fn() {
      const opt = radam({ lr: 1e-2, nonFinite: "throw", backend: "webgpu" });
      let from = await opt.init({ w: new Float32Array([1, 2]) }, { device });
      from = step(from, { w: new Float32Array([1, 1]) });
      from = step(from, { w: new Float32Array([NaN, 1]) }); // halts on the device
      const next = radam({ lr: 1e-2, nonFinite: "throw", backend });
      await assert.rejects(next.init({ w: new Float32Array(2) }, { from }), RangeError);
      // Reported once: from goes on from where it stopped.
      const state = await next.init({ w: new Float32Array(2) }, { from });
      assert.equal(state.step, 1);
      assertSame(only(await contents(state), "nothing"), only(await contents(from), "nothing"));
      from = step(from, { w: new Float32Array([1, 1]) });
      assert.equal((await readParams(from)).w.length, 2);
      for (const s of [from, state]) dispose(s);
    },
  });
}
