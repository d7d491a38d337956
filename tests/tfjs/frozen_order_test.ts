/**
 * `getWeights` after a resume by `setWeights` lists the weights in the order of the uninterrupted
 * run's: the variables of the last step, then those kept aside (frozen), whatever steps left out
 * which variables before and after the resume.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { adam } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { tf, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("frozenorder");

/** One step of `opt` over the variables of `vars` that `take` marks. */
function stepSome(opt: TfOptimizer, vars: tf.Variable[], take: readonly boolean[], t: number) {
  const grads = vars.map((v, i) => take[i] ? tf.fill(v.shape, 0.1 * (t + 1) + i) : undefined);
  const given = vars.flatMap((v, i) => grads[i] ? [[v.name, grads[i]] as const] : []);
  opt.applyGradients(Object.fromEntries(given));
  tf.dispose(grads.filter((g) => g !== undefined));
}

/** The weights' names, the variables' prefix made neutral, in the order given. */
async function names(opt: TfOptimizer, prefix: string): Promise<string[]> {
  return (await opt.getWeights()).map((w) => w.name.replaceAll(prefix, "P"));
}

Deno.test("tfjs: getWeights after a resume by setWeights lists the frozen variables in the uninterrupted run's order", async () => {
  await useBackend("cpu");
  const steps = fc.array(fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), {
    minLength: 2,
    maxLength: 6,
  }).map((s) => s.map((take) => take.some((x) => x) ? take : [true, ...take.slice(1)]));
  const cases = fc.record({ steps, at: fc.nat() });
  await fc.assert(
    fc.asyncProperty(cases, async ({ steps, at }) => {
      const resumeAt = 1 + (at % steps.length);
      const ps = name("s"), pr = name("r");
      const make = (p: string) =>
        [0, 1, 2, 3].map((i) => tf.variable(tf.ones([i + 1]), true, `${p}.${i}`));
      const sv = make(ps), rv = make(pr);
      const straight = tfOptimizer(adam({ lr: 0.1 }));
      let resumed = tfOptimizer(adam({ lr: 0.1 }));
      try {
        for (let t = 0; t < steps.length; t++) {
          if (t === resumeAt) {
            const fresh = tfOptimizer(adam({ lr: 0.1 }));
            await fresh.setWeights(await resumed.getWeights());
            resumed.dispose();
            resumed = fresh;
          }
          stepSome(straight, sv, steps[t], t);
          stepSome(resumed, rv, steps[t], t);
        }
        assert.deepEqual(await names(resumed, pr), await names(straight, ps));
      } finally {
        straight.dispose();
        resumed.dispose();
        tf.dispose([...sv, ...rv]);
      }
    }),
    { numRuns: 60, seed: 20261206 },
  );
});

Deno.test("tfjs: a step leaving variables out keeps them after the last step's, in the order getWeights gave them", async () => {
  await useBackend("cpu");
  const p = name("o");
  const vars = ["a", "b", "c"].map((n) => tf.variable(tf.ones([2]), true, `${p}.${n}`));
  const opt = tfOptimizer(adam({ lr: 0.1 }));
  try {
    stepSome(opt, vars, [true, true, true], 0);
    stepSome(opt, vars, [true, true, false], 1); // c frozen
    assert.deepEqual(await names(opt, p), [
      "iter",
      "P.a/m",
      "P.b/m",
      "P.c/m",
      ...["a", "b", "c"].map((n) => `P.${n}/v`),
    ]);
    stepSome(opt, vars, [true, false, false], 2); // b frozen too: after a, before c, as given
    assert.deepEqual(await names(opt, p), [
      "iter",
      "P.a/m",
      "P.b/m",
      "P.c/m",
      ...["a", "b", "c"].map((n) => `P.${n}/v`),
    ]);
  } finally {
    opt.dispose();
    tf.dispose(vars);
  }
});
