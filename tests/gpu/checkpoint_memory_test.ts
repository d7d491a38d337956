/**
 * `checkpointInfo(bytes).memory.webgpuBuffer` is the largest buffer `loadState` on webgpu
 * creates (with a step and a save after it): a section of the arena, or, for a small model or one
 * of several parameter groups, the ring of step scalars, which was larger than the section given
 * for it.
 */
import assert from "node:assert/strict";
import {
  adam,
  checkpointInfo,
  dispose,
  lion,
  loadState,
  type Optimizer,
  radam,
  ranger,
  saveState,
  sgd,
  step,
} from "../../mod.ts";
import { device, ignore } from "./gpu_device.ts";
import { randoms } from "../util.ts";

const GROUPS = [{ match: /^a/, lrScale: 2 }, { match: /^b/, weightDecay: 0 }];
const MAKERS: readonly [string, boolean, () => Optimizer<unknown>][] = [
  ["radam", false, () => radam()],
  ["radam 8-bit", false, () => radam({ states: "8bit" })],
  ["ranger 8-bit, groups", true, () => ranger({ states: "8bit", groups: GROUPS })],
  ["ranger, groups", true, () => ranger({ groups: GROUPS })],
  ["adam, clipping", false, () => adam({ clipGradNorm: 1, nonFinite: "propagate" })],
  ["lion 8-bit", false, () => lion({ states: "8bit" })],
  ["sgd", false, () => sgd()],
];

Deno.test({
  name:
    "checkpointInfo: memory.webgpuBuffer is the largest buffer of the state loadState makes on webgpu",
  ignore,
  async fn() {
    const d = device!;
    const create = d.createBuffer;
    let sizes: number[] = [];
    d.createBuffer = (descriptor: GPUBufferDescriptor) => {
      sizes.push(descriptor.size);
      return create.call(d, descriptor);
    };
    try {
      for (const [label, groups, make] of MAKERS) {
        for (const lengths of [[1], [5000, 10], [70_000, 4097, 3], [16_000, 200_000, 5, 7]]) {
          if (groups && lengths.length < 2) continue;
          const of = (seed: number) =>
            Object.fromEntries(lengths.map((n, i) => [`${"ab"[i % 2]}${i}`, randoms(n, i + seed)]));
          const bytes = await saveState(await make().init(of(0)));
          const { memory } = checkpointInfo(bytes);
          sizes = [];
          let state = await loadState(bytes, { backend: "webgpu", device: d });
          state = step(state, of(9));
          await saveState(state);
          dispose(state);
          assert.equal(Math.max(...sizes), memory.webgpuBuffer, `${label}, ${lengths}`);
        }
      }
    } finally {
      d.createBuffer = create;
    }
  },
});
