/**
 * A step size that is an f32 subnormal: RAdam's first rectified step at a tiny learning rate
 * (lr · r · √bc2 below 2⁻¹²⁶) is held by the kernels with an absolute rounding of 2⁻¹⁵⁰, not a
 * relative one, and the float64 reference's bound on the params says so. Found by the random
 * cases of tests/rules_test.ts (a group's `lrScale` of 1e-30), which failed on it now and then.
 */
import { type Case, checkAgainstReference, optimizerFor } from "./cases.ts";

const CASE = {
  rule: "adam",
  optimizer: "radam",
  options: {
    lr: 1e-5,
    betas: [0, 0.999999],
    eps: 0,
    weightDecay: 0,
    decoupledWeightDecay: false,
    maximize: false,
    threshold: 4,
    degenerateToSgd: false,
    nesterov: false,
  },
  schedule: false,
  lengths: [0, 4096],
  steps: 8,
  seed: 0,
  extras: { gc: false, group: { lrScale: 1e-30, weightDecay: 0 }, badCalls: [] },
};

for (const states of ["32bit", "8bit"] as const) {
  for (const backend of ["wasm", "js"] as const) {
    Deno.test(`radam (${states}), ${backend}: a subnormal f32 step size is within the reference's bound`, async () => {
      const c = { ...CASE, states } as unknown as Case;
      await checkAgainstReference(c, (params) => optimizerFor(c, backend).init(params));
    });
  }
}
