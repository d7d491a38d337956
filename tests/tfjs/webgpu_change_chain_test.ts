/**
 * Changes of the set of variables on tfjs's webgpu backend one after another, before the device
 * has reported the steps of the states they replace: two changes in a row (the variables read
 * between calls), and a change at every call with nothing read between (each new state goes on
 * with the count of one that took a single step, every report still to come). The steps the
 * device skipped (a NaN under `nonFinite: "skip"`) and had not reported count as skipped across
 * every change, as on tfjs's cpu backend: the same `iterations`, `skippedSteps`, option `ema`'s
 * overwrites and variables; with 8-bit moments, and with a schedule (each new state writes the
 * scalars of every step the device may be at).
 *
 * Without a WebGPU adapter these tests fail, unless RADAM_NO_GPU=1 says the machine has none.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { adam, radam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  countReadbacks,
  randoms,
  readValues,
  seededVars,
  tf,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
} from "./helpers.ts";

const sanitize = await webgpuTestOptions();
const named = uniqueNames("change_chain");

const CALLS = 12;
/** The calls whose gradients hold a NaN (each one skipped): before, at and between changes. */
const BAD = [1, 3, 4, 5, 8];

/**
 * Which of the two variables each call steps; whether the variables are read between calls
 * (their averages compared: the device reports its steps meanwhile, or not).
 */
const PATTERNS: [string, (call: number) => number[], boolean][] = [
  ["two changes in a row", (c) => c === 4 ? [0] : c === 5 ? [1] : [0, 1], true],
  ["a change at every call, nothing read between", (c) => [[0], [1], [0, 1]][c % 3], false],
];

const MAKES: [string, () => TfOptimizer][] = [
  [
    "8-bit adam",
    () =>
      tfOptimizer(adam({ lr: 0.05, nonFinite: "skip", states: "8bit" }), {
        ema: { momentum: 0.9, overwriteFrequency: 2 },
        warnOnSkip: false,
      }),
  ],
  [
    "radam on a schedule, with a group",
    () =>
      tfOptimizer(
        radam({
          lr: (t: number) => 0.05 / t,
          nonFinite: "skip",
          groups: [{ match: /1$/, lrScale: 0.5 }],
        }),
        { ema: { momentum: 0.9, overwriteFrequency: 3 }, warnOnSkip: false },
      ),
  ],
];

interface Outcome {
  /** Per call: whether the first variable holds its average after it. */
  overwrites: boolean[];
  iterations: number;
  skipped: number;
  variables: Float32Array[];
}

/**
 * `CALLS` calls of `make`'s optimizer over the variables `pattern` gives, a NaN at `BAD`; with
 * `between`, the variables and their averages read after each.
 */
async function run(
  backend: string,
  make: () => TfOptimizer,
  pattern: (call: number) => number[],
  between: boolean,
): Promise<Outcome> {
  await useBackend(backend);
  const vars = seededVars(named, 21, 40);
  const opt = make();
  const overwrites: boolean[] = [];
  for (let c = 0; c < CALLS; c++) {
    const stepped = pattern(c).map((i) => vars[i]);
    const grads = stepped.map((v, i) => {
      const values = randoms(v.size, c * 7 + i + 1);
      if (BAD.includes(c)) values[0] = NaN;
      return tf.tensor(values, v.shape);
    });
    const reads = countReadbacks(() =>
      opt.applyGradients(Object.fromEntries(stepped.map((v, i) => [v.name, grads[i]])))
    );
    tf.dispose(grads);
    if (backend === "webgpu") assert.equal(reads, 0, `call ${c} read back`);
    if (!between) continue;
    const [kernel] = await readValues(vars);
    opt.averages!.swap();
    const [average] = await readValues(vars);
    opt.averages!.swap();
    overwrites.push(kernel.every((x, k) => Object.is(x, average[k])));
  }
  // (The weights read: the device has reported every step.)
  tf.dispose((await opt.getWeights()).map((w) => w.tensor));
  const out = {
    overwrites,
    iterations: opt.iterations,
    skipped: opt.skippedSteps,
    variables: await readValues(vars),
  };
  opt.dispose();
  tf.dispose(vars);
  return out;
}

for (const [rule, make] of MAKES) {
  for (const [pattern, of, between] of PATTERNS) {
    Deno.test({
      name:
        `tfjs webgpu: ${pattern}: skips the device had not reported at each change count as skipped, as on cpu (${rule})`,
      ...sanitize,
      async fn() {
        const want = await run("cpu", make, of, between);
        assert.equal(want.skipped, BAD.length);
        const got = await run("webgpu", make, of, between);
        assert.deepEqual(
          { overwrites: got.overwrites, iterations: got.iterations, skipped: got.skipped },
          { overwrites: want.overwrites, iterations: want.iterations, skipped: want.skipped },
        );
        want.variables.forEach((w, i) =>
          w.forEach((x, k) => {
            const y = got.variables[i][k];
            assert.ok(
              Math.abs(y - x) <= 1e-5 * Math.max(1, Math.abs(x)),
              `${i}[${k}]: ${y} vs ${x}`,
            );
          })
        );
      },
    });
  }
}
