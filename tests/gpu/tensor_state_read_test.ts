/**
 * The read back of some tensors' state alone (`readTensorState`, gpu/tensor_state_read.ts), as
 * the tfjs adapter reads the state of the variables a step leaves out: the same values, codes and
 * scales as the reads of whole sections, copying back only those tensors' bytes (none for no
 * tensor, which still gives a halt); a read begun as the device is lost says so.
 */
import assert from "node:assert/strict";
import { type Optimizer, radam, ranger, sgd, step } from "../../mod.ts";
import { EXP_AVG, EXP_AVG_SQ, hasSection, SLOW } from "../../base/arena.ts";
import { type OptimizerState, stateInternals } from "../../core/state.ts";
import type { WebGpuBackend } from "../../gpu/webgpu_backend.ts";
import { prng, randomTensor } from "../util.ts";
import { adapter, device, ignore, noGpuErrors } from "./gpu_device.ts";

/** Two tensors compact in 8-bit states (one with its last block padded), three f32 ones. */
const LENGTHS = { w: 4096 + 300, b: 100, x: 8192, c: 3, e: 0 };

const MAKERS: [string, () => Optimizer][] = [
  ["radam", () => radam({ lr: 1e-3 })],
  ["ranger", () => ranger({ lr: 1e-3, k: 2 })],
  ["8-bit radam", () => radam({ lr: 1e-3, states: "8bit" })],
  ["8-bit ranger", () => ranger({ lr: 1e-3, states: "8bit", k: 2 })],
  ["8-bit sgd", () => sgd({ lr: 1e-2, momentum: 0.9, states: "8bit" })],
];

function data(seed: number): Record<string, Float32Array> {
  const rand = prng(seed);
  return Object.fromEntries(Object.entries(LENGTHS).map(([n, k]) => [n, randomTensor(rand, k)]));
}

function backendOf(state: OptimizerState<unknown>): WebGpuBackend {
  return stateInternals(state).backend as WebGpuBackend;
}

/** The bytes of the readback buffers (mappable, labelled so) `device` makes while `f` runs. */
function readbackBytes<T>(gpu: GPUDevice, f: () => T): { out: T; bytes: number } {
  const create = gpu.createBuffer;
  let bytes = 0;
  gpu.createBuffer = function (descriptor: GPUBufferDescriptor) {
    const mapped = (descriptor.usage & GPUBufferUsage.MAP_READ) !== 0;
    if (mapped && descriptor.label === "radam readback") bytes += descriptor.size;
    return create.call(this, descriptor);
  };
  try {
    return { out: f(), bytes };
  } finally {
    gpu.createBuffer = create;
  }
}

for (const [label, make] of MAKERS) {
  Deno.test({
    name:
      `webgpu: the state of some tensors read alone is that of the whole sections, only its bytes copied back (${label})`,
    ignore,
    async fn() {
      await noGpuErrors(async () => {
        let state = await make().init(data(1), { device });
        for (let t = 0; t < 3; t++) state = step(state, data(10 + t));
        const backend = backendOf(state);
        const layout = backend.layout;
        const sections = [EXP_AVG, EXP_AVG_SQ, SLOW].filter((s) => hasSection(layout, s));
        const whole = await Promise.all(sections.map((s) => backend.readSection(s)));
        const compact = layout.compact.includes(true);
        const codes = compact
          ? await Promise.all(layout.unsignedCodes.map((_, k) => backend.readCompact(k)))
          : [];
        for (const names of [["w"], ["b", "c"], ["x", "w", "e"], Object.keys(LENGTHS), []]) {
          const { out, bytes } = readbackBytes(device!, () => backend.readTensorState(names));
          const got = await out;
          assert.deepEqual(Object.keys(got), names);
          // By section: the bytes of the tensors read.
          const want = new Map<string, number>();
          const add = (section: string, n: number) =>
            want.set(section, (want.get(section) ?? 0) + n);
          for (const name of names) {
            const i = layout.names.indexOf(name), n = layout.lengths[i];
            const inCodes = layout.compact[i];
            sections.forEach((s, j) => {
              const held = s === SLOW || !inCodes;
              assert.deepEqual(got[name].sections[s], held ? whole[j][name] : undefined, name);
              if (held) add(`f32 ${s}`, 4 * n);
            });
            assert.equal(got[name].codes.length, codes.length, name);
            codes.forEach((c, k) => {
              assert.deepEqual(got[name].codes[k], c[name], `${name}: codes of moment ${k}`);
              if (!inCodes) return;
              add(`codes ${k}`, Math.ceil(n / 4) * 4);
              add("scales", 4 * Math.ceil(n / 256));
            });
          }
          // (Each section's bytes in one buffer, of at least 16 bytes; none for no bytes.)
          const sizes = [...want.values()].filter((b) => b > 0).map((b) => Math.max(16, b));
          assert.equal(bytes, sizes.reduce((a, b) => a + b, 0), `${names}: bytes read back`);
        }
        await assert.rejects(() => backend.readTensorState(["w", "v"]), (e: Error) => {
          assert.ok(e instanceof RangeError, String(e));
          assert.match(e.message, /tensor "v"/);
          return true;
        });
        backend.destroy();
      });
    },
  });
}

Deno.test({
  name:
    "webgpu: a read of no tensor's state copies nothing back, yet rejects with a halt of a step before it",
  ignore,
  async fn() {
    const opt = radam({ lr: 1e-3, nonFinite: "throw" });
    let state = await opt.init({ w: new Float32Array(8) }, { device });
    state = step(state, { w: new Float32Array(8).fill(NaN) });
    const { out, bytes } = readbackBytes(device!, () => backendOf(state).readTensorState([]));
    assert.equal(bytes, 0);
    await assert.rejects(() => out, /gradient of parameter "w" holds NaN/);
    // Taken once: the state is as it was before the bad step.
    assert.deepEqual(await backendOf(state).readTensorState(["w"]).then((r) => Object.keys(r)), [
      "w",
    ]);
    backendOf(state).destroy();
  },
});

Deno.test({
  name:
    "webgpu: a read of some tensors' state begun as the device is lost says the device was lost; one of none, where a step is not yet reported",
  ignore,
  async fn() {
    for (
      const [names, reported] of [[["w"], true], [["w"], false], [[], false], [[], true]] as const
    ) {
      const what = `${JSON.stringify(names)}, ${reported ? "" : "not "}reported`;
      const own = await adapter!.requestDevice();
      let state = await radam({ states: "8bit" }).init(data(2), { device: own });
      state = step(state, data(3));
      if (reported) await backendOf(state).readTensorState([]); // (the step counts read back)
      const reading = backendOf(state).readTensorState(names);
      own.destroy();
      if (names.length === 0 && reported) {
        // Nothing to read, nor to wait for: nothing of the device is needed.
        assert.deepEqual(await reading, {}, what);
        continue;
      }
      await assert.rejects(
        () => reading,
        /device of this optimizer state was lost.*resume/is,
        what,
      );
    }
  },
});
