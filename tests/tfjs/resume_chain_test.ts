/**
 * Through the TensorFlow.js adapter, a resume is the uninterrupted run: a random rule and mix of
 * options (tests/resume_chain.ts: groups, a schedule, clipping, centralization, LookAhead, Ranger,
 * 32-bit or 8-bit moments on variables either side of the 8-bit threshold, kernels of rank 2 and
 * 3, a non-finite policy with steps skipped or refused, gradients whose moments overflow), on the
 * library's js or wasm backend (one or two threads) under tfjs's cpu and wasm backends, and on
 * tfjs's webgpu backend on the GPU, trained by `applyGradients`, some steps leaving variables out
 * (frozen, their state kept aside; not on webgpu, which keeps the first step's variables), is
 * resumed at random steps in a new `tfOptimizer` of the same options, either by
 * `setWeights(await getWeights())` or, where every step took every variable, by
 * `optimizer.loadState(await saveState(optimizer.state))`. At the end the variables,
 * `getWeights()` (moments, 8-bit codes and scales, slow weights, `iter`) and the step counts are
 * the uninterrupted run's, bit for bit (the skip count too where it went by `loadState`: the
 * weights carry none).
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type NonFinitePolicy, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { type Chained, chainedArb, optimizerAt, type Place } from "../resume_chain.ts";
import { prng, randomTensor } from "../util.ts";
import { CPU_BACKENDS, tf, uniqueNames, useBackend, webgpuTestOptions } from "./helpers.ts";

const RUNS = 40;
const SEED = 20261207;

const PLACES: readonly Place[] = [
  { backend: "js", threads: 1 },
  { backend: "wasm", threads: 1 },
  { backend: "wasm", threads: 2 },
];

/** Variable shapes: rank 1, kernels of rank 2 and 3, either side of the 8-bit threshold. */
const SHAPES = [[1], [7], [5, 3], [4, 2, 3], [65, 64], [4097], [3, 40, 35]];

interface TfChained {
  c: Chained;
  shapes: number[][];
  /** Per call, which variables it leaves out (none where `frozen` is false). */
  frozen: boolean;
  leftOut: boolean[][];
  /** Per resume: through `getWeights`/`setWeights` (else `loadState`, where it can). */
  byWeights: boolean[];
}

const POLICIES: readonly NonFinitePolicy[] = ["skip", "skip", "throw", "propagate"];

/**
 * Random cases over `places`. WebGPU (`gpu`) keeps the variables of the first step (none left
 * out), centralizes with tfjs's ops before its norm could be taken (no `gc` with clipping) and
 * says a non-finite gradient under `"throw"` at a later call (left out).
 */
const tfChainedArb = (places: number, gpu: boolean): fc.Arbitrary<TfChained> =>
  fc.record({
    c: chainedArb(places, gpu ? ["skip", "propagate"] : POLICIES).map((c) =>
      gpu && (c.gc || c.ranger) ? { ...c, clipGradNorm: undefined } : c
    ),
    shapes: fc.array(fc.constantFrom(...SHAPES), { minLength: 1, maxLength: 3 }),
    frozen: gpu ? fc.constant(false) : fc.constantFrom(false, false, true),
    leftOut: fc.array(fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), {
      minLength: 10,
      maxLength: 10,
    }),
    byWeights: fc.array(fc.constantFrom(false, false, true), { minLength: 3, maxLength: 3 }),
  });

const name = uniqueNames("chain");

/** A run's variables, named `<prefix>/layers.<i>.weight` (groups match by `i`). */
function variablesOf(t: TfChained, tag: string): tf.Variable[] {
  const rand = prng(t.c.seed);
  const prefix = name(tag);
  return t.shapes.map((shape, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return tf.variable(tf.tensor(randomTensor(rand, n), shape), true, `${prefix}.${i}.weight`);
  });
}

/** The gradients of call `i`, for the variables it takes. */
function gradsOf(t: TfChained, i: number): (Float32Array | undefined)[] {
  const rand = prng(t.c.seed * 31 + i);
  const g = t.shapes.map((shape) => randomTensor(rand, shape.reduce((a, b) => a * b, 1)));
  const call = t.c.calls[i];
  if (call.kind === "ok" && call.huge) g.forEach((x) => x.forEach((v, j) => (x[j] = v * 1e34)));
  if (call.kind === "nonFinite") {
    const k = Math.floor(rand() * g.length);
    g[k][Math.floor(rand() * g[k].length)] = call.value;
  }
  return g.map((x, k) => t.frozen && t.leftOut[i][k] && k > 0 ? undefined : x);
}

/** One call: the message of its error (the variable's name made neutral), or "". */
function callOn(opt: TfOptimizer, vars: tf.Variable[], g: (Float32Array | undefined)[]): string {
  const tensors = g.map((x, k) => x && tf.tensor(x, vars[k].shape));
  try {
    const given = vars.flatMap((v, k) => tensors[k] ? [[v.name, tensors[k]] as const] : []);
    opt.applyGradients(Object.fromEntries(given));
    return "";
  } catch (error) {
    const prefix = vars[0].name.split(".")[0];
    return `${(error as Error).name}: ${(error as Error).message.replaceAll(prefix, "P")}`;
  } finally {
    tf.dispose(tensors.filter((x) => x !== undefined));
  }
}

/**
 * The variables' bits, `getWeights` (names made neutral, in the order given: those kept aside
 * follow the last step's, in an order a resume by weights keeps) and the counts.
 */
async function snapshot(opt: TfOptimizer, vars: tf.Variable[], skipped: boolean) {
  const prefix = vars[0].name.split(".")[0];
  const weights = await opt.getWeights();
  const out = {
    iterations: opt.iterations,
    skipped: skipped ? opt.skippedSteps : 0,
    variables: await Promise.all(
      vars.map(async (v) => new Uint32Array((await v.data()).slice().buffer)),
    ),
    weights: await Promise.all(weights.map(async (w) => {
      const data = (await w.tensor.data()).slice();
      return [w.name.replaceAll(prefix, "P"), w.tensor.dtype, new Uint32Array(data.buffer)];
    })),
  };
  return out;
}

async function runTfChained(t: TfChained, places: readonly Place[]): Promise<void> {
  const { c } = t;
  const make = (place: number) => tfOptimizer(optimizerAt(c, places[place]), { warnOnSkip: false });
  const straightVars = variablesOf(t, "s"), resumedVars = variablesOf(t, "r");
  const straight = make(0);
  let resumed = make(c.start);
  const optimizers = [straight, resumed];
  let byLoadOnly = true;
  try {
    let next = 0;
    for (let i = 0; i <= c.calls.length; i++) {
      for (; next < c.resumes.length && c.resumes[next].at === i; next++) {
        const r = c.resumes[next];
        const byWeights = t.byWeights[next] || t.frozen || resumed.state === undefined;
        const where = `resume ${next + 1} after call ${i} (${byWeights ? "weights" : "loadState"})`;
        const fresh = make(r.place);
        optimizers.push(fresh);
        if (byWeights) {
          byLoadOnly = false;
          let weights;
          try {
            weights = await resumed.getWeights();
          } catch (error) {
            // Only a state holding non-finite values ("propagate") is refused.
            assert.match((error as Error).message, /not finite|NaN|Infinity/, where);
            continue;
          }
          await fresh.setWeights(weights);
        } else {
          let bytes;
          try {
            bytes = await saveState(resumed.state!);
          } catch (error) {
            assert.match((error as Error).message, /^Cannot checkpoint: /, where);
            continue;
          }
          await fresh.loadState(bytes);
        }
        resumed.dispose();
        resumed = fresh;
      }
      if (i === c.calls.length) break;
      const g = gradsOf(t, i);
      const said = [callOn(straight, straightVars, g), callOn(resumed, resumedVars, g)];
      assert.equal(said[1], said[0], `call ${i + 1}`);
    }
    let want, got;
    try {
      want = await snapshot(straight, straightVars, byLoadOnly);
      got = await snapshot(resumed, resumedVars, byLoadOnly);
    } catch (error) {
      // A NaN kept ("propagate"), or a moment that overflowed (gradients of 10³⁴).
      assert.match((error as Error).message, /not finite|NaN|Infinity/);
      assert.ok(
        c.nonFinite === "propagate" || c.calls.some((call) => call.kind === "ok" && call.huge),
      );
      return;
    }
    assert.deepEqual(got, want, "the resumed run is not the uninterrupted one");
  } finally {
    for (const opt of optimizers) opt.dispose();
    tf.dispose([...straightVars, ...resumedVars]);
  }
}

for (const tfBackend of CPU_BACKENDS) {
  Deno.test(`tfjs (${tfBackend}): a chain of resumes by setWeights or loadState in a new tfOptimizer is the uninterrupted run, every rule and option (${RUNS} cases, seed ${SEED})`, async () => {
    await useBackend(tfBackend);
    const cases = tfChainedArb(PLACES.length, false);
    await fc.assert(fc.asyncProperty(cases, (t) => runTfChained(t, PLACES)), {
      numRuns: RUNS,
      seed: SEED,
      endOnFailure: true,
    });
  });
}

Deno.test({
  name:
    `tfjs (webgpu): a chain of resumes by setWeights or loadState in a new tfOptimizer is the uninterrupted run on the GPU, every rule and option (${
      RUNS / 4
    } cases, seed ${SEED})`,
  ...await webgpuTestOptions(),
  async fn() {
    await useBackend("webgpu");
    try {
      const cases = tfChainedArb(1, true);
      const gpu: readonly Place[] = [{ backend: "webgpu" }];
      await fc.assert(fc.asyncProperty(cases, (t) => runTfChained(t, gpu)), {
        numRuns: RUNS / 4,
        seed: SEED,
        endOnFailure: true,
      });
    } finally {
      await useBackend("cpu");
    }
  },
});
