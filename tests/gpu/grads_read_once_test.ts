/**
 * On WebGPU (Mesa's llvmpipe in CI), `step(state, grads)` reads each gradient from the record
 * once, as the CPU backends do (tests/grads_read_once_test.ts): a record whose getter answers a
 * valid gradient (a Float32Array or a GPU buffer) on its first read and something else after
 * (the wrong length, not a Float32Array, NaNs, another buffer) steps as if given the first,
 * bit for bit; a Proxy sees one read of each name.
 */
import assert from "node:assert/strict";
import {
  dispose,
  type GpuGrads,
  type GpuTensor,
  type OptimizerState,
  radam,
  type RAdamOptions,
  step,
} from "../../mod.ts";
import { readAll } from "../cases.ts";
import { countingReads, prng, randomTensor } from "../util.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";

const LENGTHS = [7, 300];
const NAMES = ["a", "b"];

function gradsOf(seed: number): Record<string, Float32Array<ArrayBuffer>> {
  const rand = prng(seed);
  return Object.fromEntries(
    NAMES.map((n, i) => [n, randomTensor(rand, LENGTHS[i]) as Float32Array<ArrayBuffer>]),
  );
}

/** A GPU buffer holding `data` (usable as a gradient: COPY_SRC). */
function bufferOf(data: Float32Array<ArrayBuffer>): GPUBuffer {
  const buffer = device!.createBuffer({
    size: Math.max(16, data.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  device!.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** What a two-faced getter answers from its second read on. */
const SECOND_READS: Record<string, (valid: Float32Array<ArrayBuffer>) => unknown> = {
  "a shorter Float32Array": (v) => new Float32Array(v.length - 1),
  "a Float64Array": (v) => new Float64Array(v.length).fill(1e30),
  "a Float32Array of NaN": (v) => new Float32Array(v.length).fill(NaN),
  "undefined": () => undefined,
  "a buffer too small": () => bufferOf(new Float32Array(1)),
  "a buffer of NaN": (v) => bufferOf(new Float32Array(v.length).fill(NaN)),
};

const LOOPS: Record<string, RAdamOptions> = {
  "the non-finite check": {},
  "clipping": { clipGradNorm: 0.5 },
};

type GpuState = OptimizerState<GpuTensor>;

async function twins(options: RAdamOptions): Promise<[GpuState, GpuState]> {
  const make = async () => {
    let s = await radam(options).init(gradsOf(1), { device: device! });
    s = step(s, gradsOf(2));
    return s;
  };
  return [await make(), await make()];
}

/** Same params and moments, bit for bit, and the same counts and norm (as the device reports). */
async function assertSame(a: GpuState, b: GpuState, what: string): Promise<void> {
  assert.deepEqual(await readAll(a), await readAll(b), what);
  assert.equal(a.step, b.step, `${what}: step`);
  assert.equal(a.skippedSteps, b.skippedSteps, `${what}: skipped`);
  assert.ok(Object.is(a.lastGradNorm, b.lastGradNorm), `${what}: norm`);
}

Deno.test({
  name: "webgpu: a gradient is read from the record once, and that one is stepped",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      for (const [loop, options] of Object.entries(LOOPS)) {
        for (const onGpu of [false, true]) {
          for (const [kind, second] of Object.entries(SECOND_READS)) {
            const what = `${loop}, ${onGpu ? "a buffer" : "a Float32Array"} then ${kind}`;
            let [tested, twin] = await twins(options);
            const made: GPUBuffer[] = [];
            try {
              const grads = gradsOf(3);
              const first = onGpu ? bufferOf(grads.b) : grads.b;
              const later = second(grads.b);
              for (const b of [first, later]) if (b instanceof GPUBuffer) made.push(b);
              let reads = 0;
              const record = { a: grads.a } as Record<string, unknown>;
              Object.defineProperty(record, "b", {
                enumerable: true,
                get: () => reads++ === 0 ? first : later,
              });
              tested = step(tested, record as GpuGrads);
              twin = step(twin, grads);
              assert.equal(reads, 1, `${what}: reads`);
              await assertSame(tested, twin, what);
            } finally {
              dispose(tested);
              dispose(twin);
              for (const b of made) b.destroy();
            }
          }
        }
      }
    });
  },
});

Deno.test({
  name: "webgpu: a Proxy record sees one read of each gradient",
  ignore,
  async fn() {
    await noGpuErrors(async () => {
      let [tested, twin] = await twins({});
      try {
        const grads = gradsOf(4);
        const [proxy, reads] = countingReads(grads);
        tested = step(tested, proxy);
        twin = step(twin, grads);
        // (The check also probes the record's `buffer`: is it one GPU tensor?)
        assert.deepEqual({ a: reads.a, b: reads.b }, { a: 1, b: 1 });
        await assertSame(tested, twin, "proxy");
        // A gradient given as the state's own slot (a copy of its fields) is not copied onto
        // itself: the step reads the slot as it is.
        for (const s of [tested, twin]) {
          device!.queue.writeBuffer(s.grads.a.buffer, s.grads.a.offset, grads.a);
          device!.queue.writeBuffer(s.grads.b.buffer, s.grads.b.offset, grads.b);
        }
        const slots = tested.grads;
        tested = step(tested, { a: { ...slots.a }, b: slots.b });
        twin = step(twin);
        await assertSame(tested, twin, "own slots");
      } finally {
        dispose(tested);
        dispose(twin);
      }
    });
  },
});

Deno.test({
  name:
    "webgpu: a gradient that is not an enumerable property of its record is missing, as on the CPU backends",
  ignore,
  async fn() {
    // It was taken (an own property), where the CPU backends refuse it as init would not have
    // taken such a tensor: the same record stepped on one backend and was refused on another.
    await noGpuErrors(async () => {
      let [tested, twin] = await twins({});
      try {
        const grads = gradsOf(5);
        const record = Object.defineProperty({ a: grads.a }, "b", { value: grads.b });
        assert.throws(
          () => step(tested, record as GpuGrads),
          (e) =>
            e instanceof TypeError &&
            e.message.startsWith(
              'Missing gradient for parameter "b" (the record has it as a property that is not enumerable',
            ),
        );
        tested = step(tested, grads);
        twin = step(twin, grads);
        await assertSame(tested, twin, "after the refused step");
      } finally {
        dispose(tested);
        dispose(twin);
      }
    });
  },
});
