/**
 * What `setWeights` takes, read and checked before anything changes: the optimizer's own weights
 * (set_weights.ts), the gradients accumulated (accumulate.ts) and the moving averages (ema.ts).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Settings } from "../base/settings.ts";
import type { LoadedSums } from "./accumulate.ts";
import { bothRead, disposeSums, splitWeights } from "./accum_weights.ts";
import { splitAverages } from "./ema_weights.ts";
import type { NamedTensor } from "./gradients.ts";
import type { KeptStates } from "./kept.ts";
import { checkSomeTensorFits } from "./matching.ts";
import { keptFromWeights } from "./set_weights.ts";

/** Weights read for `setWeights`, every check passed: the caller takes them all. */
export interface LoadedWeights {
  /** The step count. */
  steps: number;
  /** The states by variable name, to keep aside until their variables' next step. */
  kept: Parameters<KeptStates["replace"]>[0];
  /** The gradients accumulated, if the weights hold some. */
  sums: LoadedSums | undefined;
  /** Copies of the moving averages, by variable name (none: an empty map). */
  averages: Map<string, tf.Tensor>;
}

/**
 * Reads `weights` for an optimizer of `config` accumulating `steps` calls: rejects (or throws,
 * for what is checked at the call) with the error of the first weight refused, and with the
 * error `check` throws once the reads ended (a disposed optimizer, a step taken meanwhile); no
 * tensor is then left behind. Every tensor's read starts at the call.
 */
export async function loadedWeights(
  config: Settings,
  weights: readonly NamedTensor[],
  steps: number,
  check: () => void,
): Promise<LoadedWeights> {
  const { rest: others, averages } = splitAverages(weights);
  const dropAverages = () => tf.dispose([...averages.values()]);
  let sums: LoadedSums | undefined;
  try {
    const { rest, read } = splitWeights(others, steps, config.loop.nonFinite === "throw");
    const [{ steps: taken, kept }, loaded] = await bothRead(keptFromWeights(config, rest), read);
    sums = loaded;
    check();
    if (kept.size > 0) {
      const names = rest.map((w) => w.name).filter((n) => n !== "iter");
      checkSomeTensorFits(kept, taken, config.loop.gc, names);
    }
    return { steps: taken, kept, sums, averages };
  } catch (error) {
    disposeSums(sums);
    dropAverages();
    throw error;
  }
}
