/**
 * Safetensors files as the checkpoint tests take them apart, read independently of the library:
 * a header and data, edited freely; and a sample checkpoint.
 */
import { CheckpointError, loadState, type OptimizerState, radam, saveState, step } from "../mod.ts";
import { setHeaderCap } from "../base/_json_bounds.ts";

/** A parsed header, edited freely by the tests. */
// deno-lint-ignore no-explicit-any
export type Header = Record<string, any>;

/** Header JSON and data of a safetensors file, read independently of the library. */
export function split(bytes: Uint8Array): { header: Header; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return { header, data: bytes.subarray(8 + n) };
}

/** A file from header text and data. */
export function join(headerText: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** The file with its header edited. */
export function edit(
  bytes: Uint8Array,
  change: (header: Header) => void,
): Uint8Array {
  const { header, data } = split(bytes);
  change(header);
  return join(JSON.stringify(header), data);
}

/** A checkpoint of an RAdam state of two tensors after three steps. */
export async function sample(): Promise<Uint8Array> {
  let state = await radam({ lr: 0.01 }).init({
    "fc.weight": new Float32Array([1, -2, 3, 0.5, 0.25, -1]),
    "fc.bias": new Float32Array([0.1, 0.2]),
  });
  for (let t = 0; t < 3; t++) {
    state = step(state, {
      "fc.weight": new Float32Array([0.1, 0.2, -0.3, 0.4, 0.5, 0.6]),
      "fc.bias": new Float32Array([1, -1]),
    });
  }
  return saveState(state);
}

/**
 * A checkpoint of an RAdam state with 8-bit moments after three steps: `fc.weight` (4100
 * elements: 17 blocks, the last one partial) holds codes and scales, `fc.bias` f32 moments.
 */
export async function sample8bit(): Promise<Uint8Array> {
  const n = 4100;
  let state = await radam({ lr: 0.01, states: "8bit" }).init({
    "fc.weight": Float32Array.from({ length: n }, (_, i) => Math.sin(i)),
    "fc.bias": new Float32Array([0.1, 0.2]),
  });
  for (let t = 0; t < 3; t++) {
    state = step(state, {
      "fc.weight": Float32Array.from(
        { length: n },
        (_, i) => Math.cos(i * t + 1) * 10 ** (i % 7 - 3),
      ),
      "fc.bias": new Float32Array([1, -1]),
    });
  }
  return saveState(state);
}

/**
 * The state `bytes` load to on the js backend, or undefined when they are refused with a
 * CheckpointError (what a damaged file may do); any other error is thrown.
 */
export async function loadOrRefused(bytes: Uint8Array): Promise<OptimizerState | undefined> {
  try {
    return await loadState(bytes, { backend: "js" });
  } catch (e) {
    if (e instanceof CheckpointError) return undefined;
    throw e;
  }
}

/** A `Deno.test` run with the cap on a checkpoint header's length lowered to `cap`, restored after. */
export function cappedTest(cap: number, name: string, fn: () => Promise<void>): void {
  Deno.test(name, async () => {
    setHeaderCap(cap);
    try {
      await fn();
    } finally {
      setHeaderCap();
    }
  });
}
