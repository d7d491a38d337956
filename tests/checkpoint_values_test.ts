/**
 * A checkpoint holding a value its checks refuse (a NaN moment, a NaN scale of 8-bit codes) is
 * refused on every CPU backend with the CheckpointError naming it, before anything is made: no
 * WebAssembly memory or instance, no worker; errors of the backend (a device given to a CPU
 * one) come after it, and the bytes are left as they were.
 */
import assert from "node:assert/strict";
import { CheckpointError, dispose, loadState } from "../mod.ts";
import { sample, sample8bit, split } from "./checkpoint_files.ts";

const LOADS: [string, Record<string, unknown>][] = [
  ["js", { backend: "js" }],
  ["wasm", { backend: "wasm" }],
  ["threads", { backend: "wasm", threads: 2, threadThreshold: 0 }],
];

/** The file, the F32 tensor made NaN at element 0, and the error that says so, of each format. */
const FILES: [string, () => Promise<Uint8Array>, string, string][] = [
  [
    "32bit",
    sample,
    "fc.bias.exp_avg_sq",
    'Tensor "fc.bias.exp_avg_sq"[0] is NaN; expected a finite non-negative number',
  ],
  [
    "8bit",
    sample8bit,
    "fc.weight.exp_avg.scales",
    'Tensor "fc.weight.exp_avg.scales"[0] is NaN; expected +0 or a positive normal finite number',
  ],
];

/** A copy of `bytes` with element 0 of F32 tensor `name` NaN. */
function spoiled(bytes: Uint8Array, name: string): Uint8Array {
  const out = bytes.slice();
  const { header, data } = split(out);
  const [begin] = header[name].data_offsets as number[];
  new DataView(data.buffer, data.byteOffset).setFloat32(begin, NaN, true);
  return out;
}

/** Runs `f` counting the WebAssembly memories, instances and workers made meanwhile. */
async function madeDuring(f: () => Promise<void>): Promise<number> {
  const { Memory, Instance, instantiate } = WebAssembly;
  const OriginalWorker = globalThis.Worker;
  let made = 0;
  const w = WebAssembly as { -readonly [K in keyof typeof WebAssembly]: unknown };
  w.Memory = class extends Memory {
    constructor(descriptor: WebAssembly.MemoryDescriptor) {
      super(descriptor);
      made++;
    }
  };
  w.Instance = class extends Instance {
    constructor(module: WebAssembly.Module, imports?: WebAssembly.Imports) {
      super(module, imports);
      made++;
    }
  };
  w.instantiate = (...args: unknown[]) => {
    made++;
    return (instantiate as (...a: unknown[]) => unknown)(...args);
  };
  globalThis.Worker = class extends OriginalWorker {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      made++;
    }
  };
  try {
    await f();
  } finally {
    Object.assign(w, { Memory, Instance, instantiate });
    globalThis.Worker = OriginalWorker;
  }
  return made;
}

/** An object `loadState` takes for a GPUDevice (refused with a CPU backend). */
const device = {
  createBuffer() {},
  createBindGroupLayout() {},
  queue: {},
} as unknown as GPUDevice;

for (const [name, options] of LOADS) {
  for (const [format, file, tensor, message] of FILES) {
    Deno.test(`loadState (${name}, ${format}): a bad value is refused with its CheckpointError before anything is made, and before the backend's errors`, async () => {
      const good = await file();
      const bytes = spoiled(good, tensor);
      const kept = bytes.slice();
      const refused = (e: Error) => {
        assert.ok(e instanceof CheckpointError, `${e.name}: ${e.message}`);
        assert.equal(e.message, message);
        return true;
      };
      const made = await madeDuring(() => assert.rejects(loadState(bytes, options), refused));
      assert.equal(made, 0, "memories, instances or workers made for a refused file");
      // (What a load of the undamaged file makes is counted: none on js.)
      const loaded = await madeDuring(async () => dispose(await loadState(good, options)));
      assert.equal(loaded > 0, name !== "js");
      assert.deepEqual(bytes, kept);
      await assert.rejects(loadState(bytes, { ...options, device }), refused);
      // The undamaged file, given the device: the backend's error.
      await assert.rejects(loadState(good, { ...options, device }), TypeError);
    });
  }
}
