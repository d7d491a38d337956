/**
 * GPU tensors a user may get wrong, on WebGPU (Mesa's llvmpipe in CI): a tensor named "buffer"
 * (a record `{ buffer: aGPUBuffer }`, against one tensor `{ buffer, length }`); gradients the
 * step refuses with a TypeError or RangeError naming the tensor, leaving the state as it was;
 * and buffers only the GPU can find wrong (destroyed, of another device), whose step the GPU
 * refuses: the next call says so, naming the tensor, and the state is as it was before it.
 */
import assert from "node:assert/strict";
import {
  adam,
  dispose,
  type GpuGrads,
  type GpuParams,
  type GpuTensor,
  type OptimizerState,
  readParams,
  SINGLE_TENSOR_NAME,
  step,
} from "../../mod.ts";
import { readAll } from "../cases.ts";
import { adapter, device, ignore, noGpuErrors } from "./gpu_device.ts";

type GpuState = OptimizerState<GpuTensor>;

const ALL = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** A buffer of `usage` on `on` holding `data`. */
function bufferOf(
  data: readonly number[],
  usage = ALL,
  on: GPUDevice = device!,
): GPUBuffer {
  const buffer = on.createBuffer({
    size: Math.max(16, data.length * 4),
    usage,
    mappedAtCreation: true,
  });
  new Float32Array(buffer.getMappedRange()).set(data);
  buffer.unmap();
  return buffer;
}

const P = [1, 2, 3, 4];
const G1 = [0.5, -1, 2, 0.25];
const G2 = [-0.125, 1, 0.75, -2];

async function assertSame(a: GpuState, b: GpuState, what: string): Promise<void> {
  assert.deepEqual(await readAll(a), await readAll(b), what);
  assert.equal(a.step, b.step, `${what}: step`);
}

Deno.test({
  name: 'webgpu: a tensor named "buffer" is a record { buffer }; { buffer, length } is one tensor',
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const made: GPUBuffer[] = [];
      const buf = (data: readonly number[]) => {
        made.push(bufferOf(data));
        return made.at(-1)!;
      };
      const opt = adam({ lr: 0.1 });
      const twinOf = (name: string) =>
        opt.init({ [name]: new Float32Array(P) }, { device: device! });
      let named = await opt.init({ buffer: buf(P) }, { device: device! });
      let one = await opt.init({ buffer: buf(P), length: 4 } as GpuParams, { device: device! });
      let namedTwin = await twinOf("buffer");
      let oneTwin = await twinOf(SINGLE_TENSOR_NAME);
      try {
        assert.deepEqual(Object.keys(named.params), ["buffer"]);
        assert.deepEqual(Object.keys(one.params), [SINGLE_TENSOR_NAME]);
        // Each way to give the one gradient of each state, against Float32Arrays.
        const given: [string, () => GpuGrads, () => GpuGrads][] = [
          ["a record { buffer: GPUBuffer }", () => ({ buffer: buf(G1) }), () => buf(G1)],
          ["{ buffer, length }", () => ({ buffer: buf(G2), length: 4 }), () => ({
            buffer: buf(G2),
            length: 4,
          })],
          ["a bare GPUBuffer", () => buf(G1), () => buf(G1)],
          ["a record of the state's slot", () => ({ buffer: named.grads.buffer }), () => ({
            [SINGLE_TENSOR_NAME]: one.grads[SINGLE_TENSOR_NAME],
          })],
        ];
        for (const [what, toNamed, toOne] of given) {
          const data = what.includes("length") ? G2 : G1;
          if (what.includes("slot")) {
            for (const s of [named, one]) {
              const slot = Object.values(s.grads)[0];
              device!.queue.writeBuffer(slot.buffer, slot.offset, new Float32Array(data));
            }
          }
          named = step(named, toNamed());
          namedTwin = step(namedTwin, { buffer: new Float32Array(data) });
          await assertSame(named, namedTwin, `named "buffer", ${what}`);
          one = step(one, toOne());
          oneTwin = step(oneTwin, new Float32Array(data));
          await assertSame(one, oneTwin, `one tensor, ${what}`);
        }
        // A record whose "buffer" lacks its length, for a state without such a tensor.
        assert.throws(
          () => step(oneTwin, { buffer: buf(G1) } as GpuGrads),
          /Missing gradient .*needs its length/,
        );
        assert.throws(
          () => step(namedTwin, { buffer: { buffer: buf(G1) } } as never),
          /gradient of parameter "buffer" .*needs its length, a number of elements; got undefined/,
        );
      } finally {
        for (const s of [named, one, namedTwin, oneTwin]) dispose(s);
        for (const b of made) b.destroy();
      }
    });
  },
});

/** A state of one tensor "w" of 4 after one step, and what it holds. */
async function stepped(params: GpuParams = { w: new Float32Array(P) }) {
  const state = step(await adam({ lr: 0.1 }).init(params, { device: device! }), {
    w: new Float32Array(G1),
  });
  return { state, before: await readAll(state), steps: state.step };
}

Deno.test({
  name:
    "webgpu: a gradient buffer the step cannot use is refused naming the tensor, the state untouched",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const { state, before, steps } = await stepped();
      const mapped = device!.createBuffer({
        size: 16,
        usage: GPUBufferUsage.COPY_SRC,
        mappedAtCreation: true,
      });
      const bad: [string, unknown, ErrorConstructor, RegExp][] = [
        [
          "no COPY_SRC usage",
          bufferOf(G1, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST),
          TypeError,
          /gradient of parameter "w" to have usage COPY_SRC \(got usage 136\)/,
        ],
        ["mapped", mapped, TypeError, /gradient of parameter "w" to be unmapped .*got one mapped/],
        [
          "an offset of 2 bytes",
          { buffer: bufferOf([...G1, 0]), offset: 2, length: 4 },
          RangeError,
          /offset of gradient of parameter "w" .*multiple of 4, got 2/,
        ],
        [
          "past its buffer's end",
          { buffer: bufferOf(G1), offset: 4, length: 4 },
          RangeError,
          /gradient of parameter "w" to fit its buffer: 4 elements at byte 4 of a 16-byte buffer/,
        ],
        [
          "an offset given as a string",
          { buffer: bufferOf(G1), offset: "0", length: 4 },
          RangeError,
          /offset of gradient of parameter "w" .*multiple of 4, got a string "0"/,
        ],
        [
          "a length of 2.5",
          { buffer: bufferOf(G1), length: 2.5 },
          RangeError,
          /length of gradient of parameter "w" to be a whole number of elements, got 2.5/,
        ],
        [
          "the wrong length",
          { buffer: bufferOf([...G1, 0]), length: 5 },
          RangeError,
          /gradient of parameter "w" to have length 4, got 5/,
        ],
      ];
      try {
        for (const [what, grad, type, message] of bad) {
          assert.throws(() => step(state, { w: grad } as GpuGrads), type, what);
          assert.throws(() => step(state, { w: grad } as GpuGrads), message, what);
          assert.equal(state.step, steps, what);
          assert.deepEqual(await readAll(state), before, what);
        }
      } finally {
        mapped.unmap();
        for (const [, g] of bad) {
          (g instanceof GPUBuffer ? g : (g as { buffer: GPUBuffer }).buffer).destroy();
        }
        dispose(state);
      }
    });
  },
});

Deno.test({
  name:
    "webgpu: a destroyed gradient buffer or one of another device: the GPU refuses that step, the next call says so, the state as it was",
  ignore,
  async fn() {
    const other = await adapter!.requestDevice();
    await noGpuErrors(async () => {
      const destroyed = bufferOf(G1);
      destroyed.destroy();
      const foreign = bufferOf(G1, ALL, other);
      for (
        const [what, grad] of [["destroyed", destroyed], ["of another device", foreign]] as const
      ) {
        let { state, before, steps } = await stepped();
        let twin = (await stepped()).state;
        try {
          state = step(state, { w: grad }); // the GPU's validation is asynchronous
          await assert.rejects(
            () => readParams(state),
            (e: Error) =>
              e instanceof TypeError && /refused a step/.test(e.message) &&
              /the gradient of parameter "w"/.test(e.message),
            what,
          );
          assert.equal(state.step, steps, what);
          assert.deepEqual(await readAll(state), before, what);
          // A refused step, then a good one submitted before the GPU's report: only the good
          // one is taken; the refusal is thrown by the step after.
          state = step(state, { w: grad });
          state = step(state, { w: new Float32Array(G2) });
          twin = step(twin, { w: new Float32Array(G2) });
          await assert.rejects(() => readParams(state), TypeError, what);
          await assertSame(state, twin, what);
          state = step(state, { w: new Float32Array(G1) });
          twin = step(twin, { w: new Float32Array(G1) });
          await assertSame(state, twin, what);
        } finally {
          dispose(state);
          dispose(twin);
        }
      }
      foreign.destroy();
    });
    other.destroy();
  },
});

Deno.test({
  name:
    "webgpu: a param buffer destroyed after init: the GPU refuses the steps, and the next call names it",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      const param = bufferOf(P);
      let { state } = await stepped({ w: param });
      try {
        param.destroy();
        state = step(state, { w: new Float32Array(G2) });
        await assert.rejects(
          () => readParams(state),
          (e: Error) => e instanceof TypeError && /\(parameter "w"\)/.test(e.message),
        );
        // Nor can its values be read back: they are gone.
        await assert.rejects(
          () => readParams(state),
          /refused to read the params from your buffers .*those of parameter "w" must be live/,
        );
      } finally {
        dispose(state);
      }
    });
  },
});

Deno.test({
  name:
    "webgpu init: params overlapping in one buffer, mapped, destroyed or of another device are refused naming them",
  ignore,
  async fn() {
    const other = await adapter!.requestDevice();
    await noGpuErrors(async () => {
      const opt = adam();
      const init = (params: GpuParams) => opt.init(params, { device: device! });
      const shared = bufferOf(new Array(128).fill(1));
      const mapped = device!.createBuffer({ size: 16, usage: ALL, mappedAtCreation: true });
      const destroyed = bufferOf(P);
      destroyed.destroy();
      const foreign = bufferOf(P, ALL, other);
      try {
        await assert.rejects(
          () =>
            init({
              a: { buffer: shared, length: 65 },
              b: { buffer: shared, offset: 256, length: 4 },
            }),
          /Expected parameter "a" and parameter "b" to be disjoint ranges of their buffer, got bytes 0 to 260 and 256 to 272/,
        );
        // Disjoint ranges of one buffer are two params, each updated in place.
        const s = await init({
          a: { buffer: shared, length: 64 },
          b: { buffer: shared, offset: 256, length: 4 },
        });
        dispose(step(s, { a: new Float32Array(64), b: new Float32Array(4) }));
        await assert.rejects(
          () => init({ w: mapped }),
          /parameter "w" to be unmapped .*got one mapped/,
        );
        for (
          const [what, buffer] of [["destroyed", destroyed], [
            "of another device",
            foreign,
          ]] as const
        ) {
          await assert.rejects(
            () => init({ w: buffer, b: new Float32Array(2) }),
            (e: Error) =>
              e instanceof TypeError &&
              /refused the buffers .*those of parameter "w" must/.test(e.message),
            what,
          );
        }
      } finally {
        mapped.unmap();
        for (const b of [shared, mapped, foreign]) b.destroy();
      }
    });
    other.destroy();
  },
});

Deno.test({
  name:
    "webgpu: a step the GPU refused unwatched (the state's own buffer destroyed by the caller) is said by readParams, which does not wait for it forever",
  ignore,
  async fn() {
    let { state, steps } = await stepped();
    try {
      device!.pushErrorScope("validation");
      state.grads.w.buffer.destroy();
      state = step(state);
      await assert.rejects(
        () => readParams(state),
        /The GPU refused the commands of 1 step of this state .*it was not taken/,
      );
      assert.equal(state.step, steps);
      assert.match((await device!.popErrorScope())?.message ?? "", /destroyed/);
    } finally {
      dispose(state);
    }
  },
});

Deno.test({
  name:
    "webgpu: steps the GPU refuses before the next call are all told of: the error counts those after the first",
  ignore,
  async fn() {
    // Only the first was said, as if the state were as it was before it: the later refusal was
    // silent, and the good steps between were taken.
    const destroyed = bufferOf(G1);
    destroyed.destroy();
    let { state } = await stepped();
    let twin = (await stepped()).state;
    try {
      for (const grads of [{ w: destroyed }, { w: new Float32Array(G2) }, { w: destroyed }]) {
        state = step(state, grads);
      }
      twin = step(twin, { w: new Float32Array(G2) });
      await assert.rejects(
        () => readParams(state),
        (e: Error) =>
          e instanceof TypeError && /^The GPU refused a step /.test(e.message) &&
          e.message.endsWith(
            "that step was not taken (nothing of it ran), nor 1 later step it refused",
          ),
      );
      await assertSame(state, twin, "the good step taken, neither refused one");
      state = step(state, { w: new Float32Array(G1) });
      twin = step(twin, { w: new Float32Array(G1) });
      await assertSame(state, twin, "then no more errors");
    } finally {
      dispose(state);
      dispose(twin);
    }
  },
});

Deno.test({
  name:
    'webgpu: tensors named as properties of every object ("constructor", …): a missing gradient is missing, a GPU param beside a host one starts',
  ignore,
  async fn() {
    for (const name of ["constructor", "hasOwnProperty", "__defineGetter__"]) {
      // The gradient was looked up through the record's prototype ("… got a function"), and
      // the host params were written with that function as the GPU param's (a TypeError at init).
      const buffer = bufferOf(P);
      const params = { [name]: { buffer, length: 4 }, w: new Float32Array(P) };
      let state = await noGpuErrors(() => adam({ lr: 0.1 }).init(params, { device: device! }));
      try {
        assert.throws(
          () => step(state, { w: new Float32Array(G1) }),
          (e: Error) =>
            e instanceof TypeError && e.message === `Missing gradient for parameter "${name}"`,
        );
        state = step(state, { [name]: new Float32Array(G1), w: new Float32Array(G1) });
        const got = await readParams(state);
        assert.deepEqual(got[name], got.w, name);
        assert.notDeepEqual(got.w, new Float32Array(P));
      } finally {
        dispose(state);
        buffer.destroy();
      }
    }
  },
});

/**
 * `on`, but for the kernels whose pipeline label starts with `prefix` an invalid pipeline (as a
 * browser whose compiler refuses a kernel's WGSL gives from a synchronous compile): the GPU
 * refuses the commands that use them, for no fault of the caller's buffers.
 */
function brokenKernels(on: GPUDevice, prefix: string): GPUDevice {
  const broken = (descriptor: GPUComputePipelineDescriptor) => {
    on.pushErrorScope("validation");
    const module = on.createShaderModule({
      code: "@compute @workgroup_size(1) fn main() { let x: f32 = 0.0 / 0.0; }",
    });
    const pipeline = on.createComputePipeline({
      ...descriptor,
      compute: { module, entryPoint: "main" },
    });
    on.popErrorScope();
    return pipeline;
  };
  return new Proxy(on, {
    get(target, key) {
      if (key === "createComputePipelineAsync") {
        return (d: GPUComputePipelineDescriptor) =>
          d.label?.startsWith(prefix)
            ? Promise.resolve(broken(d))
            : target.createComputePipelineAsync(d);
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test({
  name:
    "webgpu: a step the GPU refuses for the library's own commands, the caller's buffers live, does not blame them; a destroyed one still is",
  ignore,
  async fn() {
    const real = await adapter!.requestDevice();
    const broken = brokenKernels(real, "radam step");
    const live = bufferOf(G1, ALL, real);
    const destroyed = bufferOf(G1, ALL, real);
    destroyed.destroy();
    try {
      for (const [what, grad] of [["live", live], ["destroyed", destroyed]] as const) {
        let state = await adam({ lr: 0.1 }).init({ w: new Float32Array(P) }, { device: broken });
        try {
          state = step(state, { w: grad });
          const error: Error = await readParams(state).then(
            () => assert.fail(`${what}: the step was taken`),
            (e) => e,
          );
          assert.match(error.message, /^The GPU refused /, what);
          assert.match(error.message, /the gradient of parameter "w"/, what);
          assert.match(error.message, /that step was not taken/, what);
          if (what === "live") {
            assert.ok(!(error instanceof TypeError), `${what}: ${error.message}`);
            assert.match(error.message, /the library's own commands/);
            assert.match(error.message, /are live GPUBuffers of the state's device/);
            assert.doesNotMatch(error.message, /must be live/);
            assert.match(error.message, /is invalid/, "the device's own message");
          } else {
            assert.ok(error instanceof TypeError, `${what}: ${error.message}`);
            assert.match(error.message, /must be live GPUBuffers \(not destroyed\)/);
          }
          assert.equal(state.step, 0, what);
          assert.deepEqual([...(await readParams(state)).w], P, what);
        } finally {
          dispose(state);
        }
      }
    } finally {
      live.destroy();
      real.destroy();
    }
  },
});

Deno.test({
  name:
    "webgpu: a read of params in place the GPU refuses for the library's own copy kernel does not blame the caller's live buffers",
  ignore,
  async fn() {
    const real = await adapter!.requestDevice();
    const buffer = bufferOf(P, ALL, real);
    let state = await adam({ lr: 0.1 }).init({ w: { buffer, length: 4 } }, {
      device: brokenKernels(real, "radam copyTensor"),
    });
    try {
      state = step(state, { w: new Float32Array(G1) });
      const error: Error = await readParams(state).then(
        () => assert.fail("the read's copy ran"),
        (e) => e,
      );
      assert.ok(!(error instanceof TypeError), error.message);
      assert.match(error.message, /^The GPU refused the library's own commands of a read/);
      assert.match(error.message, /parameter "w" are live GPUBuffers of the state's device/);
      assert.match(error.message, /is invalid/, "the device's own message");
      buffer.destroy();
      await assert.rejects(() => readParams(state), /must be live GPUBuffers \(not destroyed\)/);
    } finally {
      dispose(state);
      real.destroy();
    }
  },
});

Deno.test({
  name: "webgpu: a tensor name past 65,536 bytes of UTF-8 is refused at init, naming the tensor",
  ignore,
  async fn() {
    const long = "a".repeat(70_000);
    const buffer = device!.createBuffer({
      size: 8,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    for (const w of [new Float32Array(2), { buffer, length: 2 }]) {
      await assert.rejects(
        () => adam().init({ b: new Float32Array(1), [long]: w }, { device: device! }),
        (e: Error) =>
          e instanceof RangeError &&
          e.message.startsWith(`The name of tensor #1 (a string "${"a".repeat(40)}…"`) &&
          e.message.includes("above the limit of 65536 bytes for a tensor's name"),
      );
    }
    buffer.destroy();
  },
});
