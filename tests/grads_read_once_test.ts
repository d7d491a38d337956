/**
 * `step(state, grads)` reads each gradient from the record once: what the check saw is what the
 * step loads. A record whose getter answers a valid array on its first read and something else
 * after (an array of the wrong length, not a Float32Array, NaNs) steps as if given the first
 * array, bit for bit, on every CPU backend, for every path of the loop (the copy with the fused
 * non-finite check, the copy then the norm of clipping, the copy alone of "propagate"), with
 * 32-bit and 8-bit moments; and a Proxy sees one read of each name. `init` reads a shaped
 * tensor's `data` and `shape` once too.
 */
import assert from "node:assert/strict";
import { dispose, type OptimizerState, radam, type RAdamOptions, saveState, step } from "../mod.ts";
import { parseSafetensors } from "../base/safetensors.ts";
import { assertSameBits, CPU_BACKENDS } from "./cases.ts";
import { countingReads, prng, randomTensor } from "./util.ts";

/** Tensors of a few lengths: empty, tiny, and (for 8-bit moments) over the 4096 threshold. */
const LENGTHS = [0, 7, 4100];
const NAMES = ["a", "b", "c"];

/** What a two-faced getter answers from its second read on. */
const SECOND_READS: Record<string, (valid: Float32Array) => unknown> = {
  "a shorter Float32Array": (v) => new Float32Array(Math.max(0, v.length - 1)),
  "a longer Float32Array": (v) => new Float32Array(v.length + 3).fill(1e30),
  "a Float64Array": (v) => new Float64Array(v.length).fill(1e30),
  "a plain array": (v) => Array.from(v, () => 1e30),
  "a Float32Array of NaN": (v) => new Float32Array(v.length).fill(NaN),
  "undefined": () => undefined,
};

/** The loop's paths from the check to the update (see core/state_step.ts `stepOnHost`). */
const LOOPS: Record<string, RAdamOptions> = {
  "the fused non-finite check": {},
  "clipping": { clipGradNorm: 0.5 },
  "propagate": { nonFinite: "propagate" },
  "throw": { nonFinite: "throw" },
};

function gradsOf(seed: number): Record<string, Float32Array> {
  const rand = prng(seed);
  return Object.fromEntries(NAMES.map((n, i) => [n, randomTensor(rand, LENGTHS[i])]));
}

/**
 * `grads` as a record whose property `name` is a getter: `grads[name]` on the first read,
 * `second` after. `reads` counts its reads.
 */
function twoFaced(
  grads: Record<string, Float32Array>,
  name: string,
  second: unknown,
): { record: Record<string, Float32Array>; reads: () => number } {
  let reads = 0;
  const record: Record<string, Float32Array> = {};
  for (const n of NAMES) {
    if (n !== name) {
      record[n] = grads[n];
      continue;
    }
    Object.defineProperty(record, n, {
      enumerable: true,
      get: () => reads++ === 0 ? grads[n] : second as Float32Array,
    });
  }
  return { record, reads: () => reads };
}

/** Twin states: the same optimizer on the same params, two steps in. */
async function twins(
  options: RAdamOptions,
): Promise<[OptimizerState, OptimizerState]> {
  const params = gradsOf(1);
  const make = async () => {
    let s = await radam({ ...options, threadThreshold: 0 }).init(params);
    for (let k = 0; k < 2; k++) s = step(s, gradsOf(10 + k));
    return s;
  };
  return [await make(), await make()];
}

for (const backend of CPU_BACKENDS) {
  const where = `${backend.backend}${backend.threads > 1 ? ` (${backend.threads} threads)` : ""}`;
  for (const states of ["32bit", "8bit"] as const) {
    Deno.test(`${where}, ${states}: a gradient is read from the record once, and that array is the one stepped`, async () => {
      for (const [loop, extra] of Object.entries(LOOPS)) {
        for (const [kind, second] of Object.entries(SECOND_READS)) {
          for (const name of ["a", "c"]) {
            const what = `${loop}, ${name} then ${kind}`;
            const options: RAdamOptions = { ...backend, states, ...extra };
            let [tested, twin] = await twins(options);
            try {
              const grads = gradsOf(20);
              const { record, reads } = twoFaced(grads, name, second(grads[name]));
              tested = step(tested, record);
              twin = step(twin, grads);
              assert.equal(reads(), 1, `${what}: reads`);
              await assertSameBits(tested, twin, what);
              // And the next step (its gradients given in the slots) agrees too.
              for (const s of [tested, twin]) s.grads.b.fill(0.25);
              tested = step(tested);
              twin = step(twin);
              await assertSameBits(tested, twin, `${what}, the step after`);
            } finally {
              dispose(tested);
              dispose(twin);
            }
          }
        }
      }
    });
  }

  Deno.test(`${where}: a Proxy record sees one read of each gradient`, async () => {
    for (const [loop, extra] of Object.entries(LOOPS)) {
      let [tested, twin] = await twins({ ...backend, ...extra });
      try {
        const grads = gradsOf(30);
        const [proxy, reads] = countingReads(grads);
        tested = step(tested, proxy);
        twin = step(twin, grads);
        assert.deepEqual(reads, { a: 1, b: 1, c: 1 }, `${loop}: reads`);
        await assertSameBits(tested, twin, loop);
      } finally {
        dispose(tested);
        dispose(twin);
      }
    }
  });
}

Deno.test("init reads a shaped tensor's data and shape once: its length is its shape's", async () => {
  // `data` was read three times: a getter answering a 4-element array to the check of the shape
  // [2, 2] and a 5-element one after made a state of 5 elements under that shape (centralized
  // as rows of 2.5, and saved as a file of 5 values under the shape [2, 2]).
  const first = new Float32Array([1, 2, 3, 4]);
  let reads = 0;
  const w = {
    get data() {
      return ++reads === 1 ? first : new Float32Array([1, 2, 3, 4, 5]);
    },
    shape: new Proxy([2, 2], {
      // Each dimension answers 2 once, then 3: the shape checked is the shape kept.
      get: (target, key, receiver) => {
        const value = Reflect.get(target, key, receiver);
        if (key !== "0" && key !== "1") return value;
        const seen = (target as unknown as { seen?: Set<string> }).seen ??= new Set();
        return seen.has(key) ? 3 : (seen.add(key), value);
      },
    }),
  };
  let state = await radam({ backend: "js", gc: true }).init({ w });
  assert.equal(reads, 1);
  assert.deepEqual(state.params.w, first);
  const twin = await radam({ backend: "js", gc: true }).init({
    w: { data: first, shape: [2, 2] },
  });
  state = step(state, { w: new Float32Array([1, -2, 3, 5]) });
  const stepped = step(twin, { w: new Float32Array([1, -2, 3, 5]) });
  await assertSameBits(state, stepped, "a shaped tensor read once");
  assert.deepEqual(parseSafetensors(await saveState(state)).tensors.get("w")?.shape, [2, 2]);
});
