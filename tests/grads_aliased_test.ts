/**
 * A gradient given as a view of the state's own gradient section, other than its tensor's slot
 * (another tensor's slot, a range across slots), is read as it was when `step` was called, on
 * every CPU backend, for every path of the loop, with 32-bit and 8-bit moments: the step equals,
 * bit for bit, a twin given copies of the same values. The WebGPU backend reads such ranges the
 * same way (tests/gpu/grads_own_buffers_test.ts).
 */
import assert from "node:assert/strict";
import { dispose, type OptimizerState, radam, type RAdamOptions, step } from "../mod.ts";
import { assertSameBits, CPU_BACKENDS } from "./cases.ts";
import { prng, randomTensor } from "./util.ts";

/** Equal lengths, so that slots can stand for each other; over 4096 for 8-bit moments. */
const LENGTH = 4100;
const NAMES = ["a", "b", "c"];

/** The loop's paths from the check to the update (see core/state_step.ts `stepOnHost`). */
const LOOPS: Record<string, RAdamOptions> = {
  "the fused non-finite check": {},
  "clipping": { clipGradNorm: 0.5 },
  "propagate": { nonFinite: "propagate" },
};

/** Gradients given as views of `state`'s own slots, by case. */
const VIEWS: Record<
  string,
  (g: Readonly<Record<string, Float32Array>>) => Record<string, Float32Array>
> = {
  "a and b swapped": (g) => ({ a: g.b, b: g.a, c: g.c }),
  "each the next one's slot": (g) => ({ a: g.b, b: g.c, c: g.a }),
  "one slot for two tensors": (g) => ({ a: g.c, b: g.b, c: g.c }),
  "a range across two slots": (g) => ({
    a: new Float32Array(g.a.buffer, g.a.byteOffset + 400, LENGTH),
    b: g.b,
    c: g.a,
  }),
};

function random(seed: number): Record<string, Float32Array> {
  const rand = prng(seed);
  return Object.fromEntries(NAMES.map((n) => [n, randomTensor(rand, LENGTH)]));
}

/** Twin states: the same optimizer on the same params, one step in. */
async function twins(options: RAdamOptions): Promise<[OptimizerState, OptimizerState]> {
  const make = async () => {
    const s = await radam({ ...options, threadThreshold: 0 }).init(random(1));
    return step(s, random(2));
  };
  return [await make(), await make()];
}

for (const backend of CPU_BACKENDS) {
  const where = `${backend.backend}${backend.threads > 1 ? ` (${backend.threads} threads)` : ""}`;
  for (const states of ["32bit", "8bit"] as const) {
    Deno.test(`${where}, ${states}: a gradient given as another view of the state's gradient section is read as it was at the call`, async () => {
      for (const [loop, extra] of Object.entries(LOOPS)) {
        for (const [kind, views] of Object.entries(VIEWS)) {
          const what = `${loop}, ${kind}`;
          let [tested, twin] = await twins({ ...backend, states, ...extra });
          try {
            const values = random(3);
            for (const n of NAMES) tested.grads[n].set(values[n]);
            const given = views(tested.grads);
            // What the views held at the call, copied, for the twin.
            const copies = Object.fromEntries(NAMES.map((n) => [n, given[n].slice()]));
            assert.notDeepEqual(copies.a, values.a, `${what}: the case gives a another view`);
            tested = step(tested, given);
            twin = step(twin, copies);
            await assertSameBits(tested, twin, what);
          } finally {
            dispose(tested);
            dispose(twin);
          }
        }
      }
    });
  }
}
