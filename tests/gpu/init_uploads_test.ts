/**
 * A WebGPU state's init of many tensors: it uploads the host params of consecutive tensors
 * together (a model of many small tensors took one `writeBuffer` each, most of its init), and
 * its work grows linearly with the tensors (a scan of all the names for each name made it grow
 * with their square, from a state too). The params read back are the ones given, bit for bit,
 * whatever their sizes (a tensor above the gathered upload's bytes is uploaded by itself).
 */
import assert from "node:assert/strict";
import { dispose, radam, readParams } from "../../mod.ts";
import { bits, randoms } from "../util.ts";
import { assertLinear, counted } from "../work_counts.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";
import { smallParams, uploads } from "./uploads.ts";

Deno.test({
  name: "WebGPU init uploads as many times for 1000 small host tensors as for 50",
  ignore,
  fn: async () => {
    const counts = [];
    for (const n of [50, 1000]) {
      const params = smallParams(n);
      counts.push(
        await uploads(async () => dispose(await radam({ lr: 1e-3 }).init(params, { device }))),
      );
    }
    assert.equal(counts[1], counts[0], `writeBuffer calls at 50 and 1000 tensors`);
  },
});

Deno.test({
  name: "WebGPU init's params read back bit-exact, small tensors, one above an upload's bytes",
  ignore,
  fn: async () => {
    const params = smallParams(300);
    params["big.w"] = randoms(300_000, 7); // 1.2 MB: more than one gathered upload takes
    params["after.w"] = new Float32Array([-0, 1e-45, -3.4e38]);
    params["last.w"] = randoms(3, 8);
    const state = await noGpuErrors(() => radam({ lr: 1e-3 }).init(params, { device }));
    const read = await readParams(state);
    for (const [name, values] of Object.entries(params)) {
      assert.deepEqual(bits(read[name]), bits(values), name);
    }
    dispose(state);
  },
});

Deno.test({
  name: "WebGPU init, and init from a WebGPU state, do work linear in the tensors",
  ignore,
  fn: async () => {
    const n = 100;
    const opt = radam({ lr: 1e-3 });
    const work = async (n: number) => {
      const params = smallParams(n);
      const previous = await opt.init(params, { device });
      const counts = await counted(async () => {
        dispose(await opt.init(params, { device }));
        dispose(await opt.init(params, { device, from: previous }));
      });
      dispose(previous);
      return counts;
    };
    await work(n); // (what is done once, the first time, is not counted)
    assertLinear(await work(n), await work(2 * n), await work(4 * n), n);
  },
});
