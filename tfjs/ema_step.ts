/**
 * A step of the TensorFlow.js adapter with option `ema`: the moving averages (ema.ts) updated
 * where the step was taken.
 *
 * @module
 */
import type { Settings } from "../base/settings.ts";
import { onWebGpu } from "./backend_choice.ts";
import type { DeviceDecision } from "./_step_decision.ts";
import type { WeightAverages } from "./ema.ts";
import type { GradItem } from "./gradients.ts";

/**
 * The step of an optimizer of `config`: `run` (a step over the items it is given, returning the
 * step count after it), then, with `averages`, their update where the step was taken: where the
 * count (`count()`) grew, overwriting the variables where it reached a multiple of
 * `overwriteFrequency`; on webgpu, where the device decides and the count grows at every step
 * submitted, where the device took it, and overwriting them where it took it at such a multiple
 * of the steps it took, as `decided(overwriteFrequency)` gives both after the step (boolean
 * scalars on the device, from the step kernel's own decision: no readback). Throws the TypeError
 * of `checkNotSwapped` at once, before anything changes.
 */
export function averagedStep(
  averages: WeightAverages | undefined,
  config: Settings,
  count: () => number,
  run: (items: readonly GradItem[]) => number,
  decided: (every?: number) => DeviceDecision,
): (items: readonly GradItem[]) => void {
  if (averages === undefined) return run;
  averages.checkNotSwapped();
  const onDevice = onWebGpu(config);
  return (items) => {
    const before = count();
    const after = run(items);
    if (!onDevice) {
      if (after > before) averages.update(items, after);
      return;
    }
    const decision = decided(averages.settings.overwriteFrequency);
    try {
      averages.update(items, after, decision);
    } finally {
      decision.taken.dispose();
      decision.overwrite?.dispose();
    }
  };
}
