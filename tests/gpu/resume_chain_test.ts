/**
 * A checkpoint resume on WebGPU is the uninterrupted run on WebGPU, bit for bit (the same
 * backend and format; on Mesa's llvmpipe in CI): a random rule (RAdam, Adam, AdamW, Lion, SGD
 * with momentum or Nesterov, Ranger) with a random mix of options (groups, a schedule, clipping,
 * centralization, LookAhead, 32-bit or 8-bit moments either side of the 8-bit threshold, steps
 * skipped by `nonFinite: "skip"` or NaN kept by `"propagate"`), saved and loaded back onto the
 * device at random steps, `lr` passed again or not, `states` given or not, an 8-bit state sometimes
 * sent through a 32-bit checkpoint and back. At every cut the loaded state is the run's and saves
 * to the same bytes; at the end params, moments (codes and scales), slow weights and counts are the
 * uninterrupted run's. (`"throw"` halts the state on a later call: webgpu_state_test.ts.)
 */
import fc from "fast-check";
import { chainedArb, type Place, runChained } from "../resume_chain.ts";
import { device, ignore, noGpuErrors } from "./gpu_device.ts";

const PLACES: readonly Place[] = [{ backend: "webgpu", device }];
const RUNS = 20;
const SEED = 20261207;

Deno.test({
  name:
    `webgpu: a chain of resumes on the device is the uninterrupted run, every rule and option (${RUNS} cases, seed ${SEED})`,
  ignore,
  async fn() {
    await noGpuErrors(() =>
      fc.assert(
        fc.asyncProperty(chainedArb(1, ["skip", "skip", "throw", "propagate"]), (c) =>
          runChained(c, PLACES)),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      )
    );
  },
});
