/**
 * How bench/compare.ts times its contenders: every contender is set up at one size, then takes
 * its turn in every round, each round in a new random order; a figure is the median over rounds
 * of the mean step time within a round, so that ratios come from one run under the same load.
 *
 * @module
 */
import { collectGarbage, shuffled } from "../order.ts";

/** A size: its label (`4M`) and its parameter count. */
export type Size = [label: string, n: number];

/** One contender, set up at one size. */
export interface Runner {
  /** Called before each timed sample (switches the tfjs backend, for example). */
  enter?(): Promise<void>;
  /** Seconds per step, over `steps` steps. */
  time(steps: number): Promise<number>;
  dispose?(): void;
}

/** One row of the bench: what it is, its key, and how it is set up at a size. */
export interface Contender {
  name: string;
  /** Short key, used in the ratio columns and by `--only`. */
  key: string;
  /** A runner, or the reason this contender is skipped at this size. */
  setup(n: number): Promise<Runner | string>;
}

/** One contender's figure at one size. */
export interface Measure {
  /** Median seconds per step, or the reason there is none. */
  seconds?: number;
  note?: string;
}

/** The rounds, and the orders of set-up and of turns. */
export interface Timing {
  /** Rounds, each contender one sample a round. */
  rounds: number;
  /** Target length of one timed sample, in seconds. */
  sampleSeconds: number;
  /** The random orders (seeded: bench/order.ts). */
  random: () => number;
}

/** A contender whose single step takes longer than this is timed over one round only. */
const SLOW_STEP_SECONDS = 1.5;

/** A runner's `time` that calls `stepOnce` `steps` times. */
export function syncTimer(stepOnce: () => void): (steps: number) => Promise<number> {
  return (steps) => {
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) stepOnce();
    return Promise.resolve((performance.now() - t0) / 1e3 / steps);
  };
}

/** A contender that runs at size `n` whatever size it is set up at. */
export function atSize(contender: Contender, n: number): Contender {
  return { ...contender, setup: () => contender.setup(n) };
}

interface Entry {
  contender: Contender;
  /** Absent once let go: a slow contender's, after its one sample. */
  runner?: Runner;
  steps: number;
  samples: number[];
}

/** Sets up every contender at `n` in a random order: the runners, and why the others are not. */
async function setUp(
  n: number,
  contenders: Contender[],
  timing: Timing,
  results: Map<string, Measure>,
): Promise<Entry[]> {
  const entries: Entry[] = [];
  for (const index of shuffled(contenders.length, timing.random)) {
    const contender = contenders[index];
    const runner = await contender.setup(n);
    if (typeof runner === "string") {
      results.set(contender.key, { note: runner });
      // what a failed set-up left (TensorFlow.js at 64M) goes before the next state is made
      collectGarbage();
      continue;
    }
    await runner.enter?.();
    const warm = await runner.time(1);
    const steps = Math.max(1, Math.min(100_000, Math.round(timing.sampleSeconds / warm)));
    // a slow contender's one sample is this one: it takes no turn, so its memory goes now
    const slow = warm > SLOW_STEP_SECONDS;
    if (slow) {
      runner.dispose?.();
      collectGarbage();
    }
    entries.push({
      contender,
      runner: slow ? undefined : runner,
      steps,
      samples: slow ? [warm] : [],
    });
  }
  return entries;
}

/** Times every contender at size `n`, alternating them within each round. */
export async function measureSize(
  n: number,
  contenders: Contender[],
  timing: Timing,
): Promise<Map<string, Measure>> {
  const results = new Map<string, Measure>();
  // the last size's memories are freed first (where run with --expose-gc); states are made, and
  // take their turns in each round, in random orders (bench/order.ts)
  collectGarbage();
  const entries = await setUp(n, contenders, timing, results);
  for (let round = 0; round < timing.rounds; round++) {
    for (const k of shuffled(entries.length, timing.random)) {
      const entry = entries[k];
      if (entry.runner === undefined || entry.samples[0] > SLOW_STEP_SECONDS) continue;
      await entry.runner.enter?.();
      entry.samples.push(await entry.runner.time(entry.steps));
    }
  }
  for (const { contender, runner, samples } of entries) {
    runner?.dispose?.();
    const sorted = samples.toSorted((a, b) => a - b);
    results.set(contender.key, {
      seconds: sorted[Math.floor(sorted.length / 2)],
      note: samples.length === 1 ? "one sample (slow)" : undefined,
    });
  }
  return results;
}
