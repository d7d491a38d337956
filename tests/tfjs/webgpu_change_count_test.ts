/**
 * A change of the set of variables on tfjs's webgpu backend (a layer frozen or unfrozen) before
 * the device has reported its last steps: the new state continues the device's own count, so
 * that a step it skipped (a non-finite gradient under `nonFinite: "skip"`) counts as skipped, as
 * on tfjs's cpu backend: the same `iterations` and `skippedSteps`, the same `t` in the later
 * steps (Adam's bias correction), the same variables, and option `ema`'s averages and
 * overwrites at the same calls. Also where the change adds or drops a parameter group (the new
 * state's scalar blocks differ from the old one's), and where the device did report first.
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, radam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  countReadbacks,
  readAverages,
  readValues,
  seededVars,
  stepWith,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const named = uniqueNames("change_count");

/** Calls; from `CHANGE` on only the kernel (the first variable) is stepped. */
const CALLS = 17;
const CHANGE = 5;
/**
 * The calls whose gradient of the first variable stepped holds a NaN: two before the change,
 * which the device has not reported at it; then one after the change's step (which the device
 * takes at a t the host has not counted: its scalars must be in the new state's ring), or at it.
 */
const BADS = [[1, 3, 6, 10], [1, 3, 5, 10]];

interface Outcome {
  /** Per call: whether the kernel holds its average after it (an overwrite, or the first step). */
  overwrites: boolean[];
  iterations: number;
  skipped: number;
  variables: Float32Array[];
  averages: Float32Array[];
}

/**
 * `CALLS` calls of `make`'s optimizer (with `ema`), a NaN at the calls `bad`, the bias frozen
 * from call `CHANGE` on (`unfreeze`: stepped from there on only); with `settle`, the weights read
 * before the change (so that the device reported the skips first). On webgpu, the calls read
 * nothing back (the variables are read between them, not during them).
 */
async function run(
  backend: string,
  make: () => TfOptimizer,
  bad: readonly number[],
  { settle = false, unfreeze = false } = {},
): Promise<Outcome> {
  await useBackend(backend);
  const vars = seededVars(named, 21, 40);
  const opt = make();
  const overwrites: boolean[] = [];
  for (let c = 0; c < CALLS; c++) {
    const stepped = (c < CHANGE) === unfreeze ? vars.slice(0, 1) : vars;
    if (c === CHANGE && settle) tf.dispose((await opt.getWeights()).map((w) => w.tensor));
    const reads = countReadbacks(() => stepWith(opt, stepped, c + 1, bad.includes(c)));
    if (backend === "webgpu") assert.equal(reads, 0, `call ${c} read back`);
    const [kernel] = await readValues(vars);
    opt.averages!.swap();
    const [average] = await readValues(vars);
    opt.averages!.swap();
    overwrites.push(kernel.every((x, k) => Object.is(x, average[k])));
  }
  const averages = await readAverages(opt);
  const out = {
    overwrites,
    iterations: opt.iterations,
    skipped: opt.skippedSteps,
    variables: await readValues(vars),
    averages,
  };
  opt.dispose();
  tf.dispose(vars);
  return out;
}

/** Asserts `got` within `tol` (relative) of `want`, value by value. */
function assertNear(got: Float32Array[], want: Float32Array[], tol: number, what: string) {
  assert.equal(got.length, want.length, what);
  want.forEach((w, i) => {
    assert.equal(got[i].length, w.length, `${what} ${i}`);
    w.forEach((x, k) => {
      const bound = tol * Math.max(1, Math.abs(x));
      assert.ok(Math.abs(got[i][k] - x) <= bound, `${what} ${i}[${k}]: ${got[i][k]} vs ${x}`);
    });
  });
}

function assertSame(got: Outcome, want: Outcome) {
  assert.deepEqual(
    { overwrites: got.overwrites, iterations: got.iterations, skipped: got.skipped },
    { overwrites: want.overwrites, iterations: want.iterations, skipped: want.skipped },
  );
  assertNear(got.variables, want.variables, 1e-5, "variable");
  assertNear(got.averages, want.averages, 1e-5, "average");
}

const MAKES: [string, (every: number) => TfOptimizer][] = [
  [
    "adam",
    (every) =>
      tfOptimizer(adam({ lr: 0.05, nonFinite: "skip" }), {
        ema: { momentum: 0.9, overwriteFrequency: every },
        warnOnSkip: false,
      }),
  ],
  [
    // The bias alone in group 1: a change that freezes or unfreezes it drops or adds a block
    // of scalars (the new state's ring entries are laid out otherwise than the old one's).
    "radam with a group",
    (every) =>
      tfOptimizer(
        radam({ lr: 0.05, nonFinite: "skip", groups: [{ match: /bias$/, lrScale: 0.5 }] }),
        { ema: { momentum: 0.9, overwriteFrequency: every }, warnOnSkip: false },
      ),
  ],
];

for (const [rule, make] of MAKES) {
  for (const bad of BADS) {
    for (const unfreeze of [false, true]) {
      for (const every of [2, 3]) {
        Deno.test({
          name: `tfjs webgpu: skipped steps not yet reported at a change (${
            unfreeze ? "unfrozen" : "frozen"
          }) count as skipped, as on cpu (${rule}, NaN at calls ${bad}, ema overwrite every ${every})`,
          ...sanitize,
          async fn() {
            const want = await run("cpu", () => make(every), bad, { unfreeze });
            assert.equal(want.iterations, CALLS - bad.length);
            assert.equal(want.skipped, bad.length);
            const got = await run("webgpu", () => make(every), bad, { unfreeze });
            assertSame(got, want);
          },
        });
      }
    }
  }
}

Deno.test({
  name: "tfjs webgpu: skipped steps reported before a change count as skipped, as on cpu",
  ...sanitize,
  async fn() {
    const [, make] = MAKES[0];
    const want = await run("cpu", () => make(2), BADS[0], { settle: true });
    const got = await run("webgpu", () => make(2), BADS[0], { settle: true });
    assertSame(got, want);
  },
});
