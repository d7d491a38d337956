/**
 * A step of the TensorFlow.js adapter with option `ema`: the moving averages (ema.ts) updated
 * where the step was taken.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Settings } from "../base/settings.ts";
import { onWebGpu } from "./backend_choice.ts";
import type { WeightAverages } from "./ema.ts";
import type { GradItem } from "./gradients.ts";

/**
 * The step of an optimizer of `config`: `run` (a step over the items it is given, returning the
 * step count after it), then, with `averages`, their update where the step was taken: where the
 * count (`count()`) grew, or on webgpu under `nonFinite: "skip"`, where the device decides and
 * the count grows at every step submitted, by a check of the gradients on the device (no
 * readback). Throws the TypeError of `checkNotSwapped` at once, before anything changes.
 */
export function averagedStep(
  averages: WeightAverages | undefined,
  config: Settings,
  count: () => number,
  run: (items: readonly GradItem[]) => number,
): (items: readonly GradItem[]) => void {
  if (averages === undefined) return run;
  averages.checkNotSwapped();
  const onDevice = onWebGpu(config) && config.loop.nonFinite === "skip";
  return (items) => {
    const before = count();
    const taken = onDevice
      ? tf.tidy(() => tf.all(tf.stack(items.map((i) => tf.all(tf.isFinite(i.tensor))))))
      : undefined;
    try {
      const after = run(items);
      if (onDevice || after > before) averages.update(items, after, taken);
    } finally {
      taken?.dispose();
    }
  };
}
