/**
 * A checkpoint resume is the uninterrupted run, through a chain of resumes: a random rule (RAdam,
 * Adam, AdamW, Lion, SGD with momentum or Nesterov, Ranger) with a random mix of options (groups
 * of their own lr scale and weight decay, a schedule, clipping, centralization, LookAhead, 32-bit
 * or 8-bit moments on tensors either side of the 8-bit threshold, a non-finite policy with some
 * steps skipped or refused) is run once without a break on wasm, and once saved and loaded at
 * several random steps, each time onto a random CPU backend (wasm, js, wasm on 2 or 3 threads,
 * with `threadThreshold` 0 or the default), the `lr` passed again or not (a constant's is the
 * stored one), `states` given or not, and an 8-bit state sometimes sent through a 32-bit
 * checkpoint and back (8 → 32 → 8, which docs/SPEC.md says gives every later step the same).
 * At every cut, saving the loaded state again gives the same bytes (where it went through no
 * other format); at the end, params, moments (codes and scales), slow weights, step and skip
 * counts are the uninterrupted run's, bit for bit. tests/combinations_test.ts covers a single cut
 * with the three backends in lockstep; this one resumes a resumed state, on other thread counts.
 */
import fc from "fast-check";
import { chainedArb, CPU_PLACES, runChained } from "./resume_chain.ts";
import { setting } from "./util.ts";

/** `RADAM_RESUME_RUNS` and `RADAM_RESUME_SEED` (with `--allow-env`) run more cases, or others. */
const RUNS = setting("RADAM_RESUME_RUNS") ?? 25;
const SEED = setting("RADAM_RESUME_SEED") ?? 20261207;

Deno.test(`a chain of resumes on random CPU backends and thread counts is the uninterrupted run, every rule and option (${RUNS} cases, seed ${SEED})`, async () => {
  await fc.assert(
    fc.asyncProperty(
      chainedArb(CPU_PLACES.length, ["skip", "skip", "throw", "propagate"]),
      (c) => runChained(c, CPU_PLACES),
    ),
    {
      numRuns: RUNS,
      seed: SEED,
      endOnFailure: true,
    },
  );
});
