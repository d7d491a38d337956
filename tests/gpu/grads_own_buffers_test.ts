/**
 * On WebGPU (Mesa's llvmpipe in CI), a gradient given as a range of the state's own buffers
 * that is not the gradient slot of its tensor (another tensor's slot, a range overlapping
 * slots, the state's params) steps with the values those bytes held when `step` was called, as
 * if they had been given as Float32Arrays: bit for bit against a twin state given those arrays,
 * with no GPU validation error. A slot assigned (`state.grads.a = g`, `state.params.a = p`) is a
 * TypeError saying what to write instead.
 */
import assert from "node:assert/strict";
import {
  adam,
  dispose,
  type GpuGrads,
  type GpuTensor,
  type OptimizerState,
  readParams,
  step,
} from "../../mod.ts";
import { readAll } from "../cases.ts";
import { prng, randomTensor } from "../util.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";

type GpuState = OptimizerState<GpuTensor>;
type Values = Record<string, Float32Array<ArrayBuffer>>;

const LENGTHS = { a: 8, b: 8, c: 5 };

function valuesOf(seed: number): Values {
  const rand = prng(seed);
  return Object.fromEntries(
    Object.entries(LENGTHS).map((
      [n, len],
    ) => [n, randomTensor(rand, len) as Float32Array<ArrayBuffer>]),
  );
}

async function twins(): Promise<[GpuState, GpuState]> {
  const make = async () => {
    const s = await adam({ lr: 0.01 }).init(valuesOf(1), { device: device! });
    return step(s, valuesOf(2));
  };
  return [await make(), await make()];
}

/** Writes `values` into the gradient slots of `state`. */
function fillSlots(state: GpuState, values: Values): void {
  for (const [name, data] of Object.entries(values)) {
    const slot = state.grads[name];
    device!.queue.writeBuffer(slot.buffer, slot.offset, data);
  }
}

async function assertSame(a: GpuState, b: GpuState, what: string): Promise<void> {
  assert.deepEqual(await readAll(a), await readAll(b), what);
  assert.equal(a.step, b.step, `${what}: step`);
}

/** Each case: the gradients given, from the slots' values at the call; what they stand for. */
const CASES: Record<string, (s: GpuState, slots: Values, params: Values) => [GpuGrads, Values]> = {
  "two slots swapped": (s, v) => [{ a: s.grads.b, b: s.grads.a, c: s.grads.c }, {
    a: v.b,
    b: v.a,
    c: v.c,
  }],
  "one slot given for two tensors, one of them its own": (s, v) => [
    { a: s.grads.a, b: s.grads.a, c: s.grads.c },
    { a: v.a, b: v.a, c: v.c },
  ],
  "a slot read by another tensor and written by a Float32Array": (s, v) => {
    const fresh = valuesOf(9).a;
    const a = s.grads.a;
    const tail = { buffer: a.buffer, offset: a.offset + 4, length: 5 };
    return [{ a: fresh, b: a, c: tail }, { a: fresh, b: v.a, c: v.a.slice(1, 6) }];
  },
  "ranges overlapping each other and their own slot": (s, v) => {
    const a = s.grads.a;
    return [
      { a: { buffer: a.buffer, offset: a.offset + 8, length: 8 }, b: a, c: { ...a, length: 5 } },
      { a: Float32Array.from([...v.a.slice(2), 0, 0]), b: v.a, c: v.a.slice(0, 5) },
    ];
  },
  "the state's params": (s, v, p) => [{ a: s.params.b, b: s.grads.b, c: s.params.c }, {
    a: p.b,
    b: v.b,
    c: p.c,
  }],
};

Deno.test({
  name: "webgpu: a gradient read from the state's own buffers steps with the values at the call",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      for (const [what, make] of Object.entries(CASES)) {
        let [tested, twin] = await twins();
        try {
          const slots = valuesOf(3);
          // The 8 bytes after slot a's 8 elements are the padding of its 256-byte slot: zeros.
          fillSlots(tested, slots);
          const params = await readParams(tested) as Values;
          const [grads, values] = make(tested, slots, params);
          tested = step(tested, grads);
          twin = step(twin, values);
          await assertSame(tested, twin, what);
          // And the next step, from Float32Arrays, goes on alike.
          tested = step(tested, valuesOf(4));
          twin = step(twin, valuesOf(4));
          await assertSame(tested, twin, `${what}, the step after`);
        } finally {
          dispose(tested);
          dispose(twin);
        }
      }
    });
  },
});

Deno.test({
  name: "webgpu: a gradient slot or a parameter assigned says what to write instead",
  ignore,
  async fn() {
    const [state, twin] = await twins();
    try {
      const slot = state.grads.a;
      assert.throws(
        () => ((state.grads as Record<string, unknown>).a = new Float32Array(8)),
        (e: Error) =>
          e instanceof TypeError && e.message.includes(
            "Cannot assign state.grads.a: the gradient slots are ranges of the state's GPU " +
              "buffer, which step reads, and cannot be replaced; pass the gradient to step, " +
              "state = step(state, { a: g }), or write it into the slot's buffer in place " +
              "(state.grads.a.buffer at state.grads.a.offset, by a shader or " +
              "device.queue.writeBuffer), then state = step(state)",
          ),
      );
      assert.equal(state.grads.a, slot);
      assert.deepEqual(Object.keys(state.grads), Object.keys(LENGTHS));
      // A parameter assigned says how a state goes on from other values.
      assert.throws(
        () => ((state.params as Record<string, unknown>).a = new Float32Array(8)),
        (e: Error) =>
          e instanceof TypeError && e.message.includes(
            "Cannot assign state.params.a: the parameters are ranges of the state's GPU " +
              "buffers, which each step updates, and cannot be replaced; to go on from other " +
              "values, make a state of them that takes this one's moments and step count, " +
              "state = await opt.init(params, { from: state })",
          ),
      );
    } finally {
      dispose(state);
      dispose(twin);
    }
  },
});
