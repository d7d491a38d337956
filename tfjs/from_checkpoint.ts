/**
 * The way back from this library's checkpoints (`loadState`): a checkpoint's moments, slow
 * weights and step counts read into kept states, each in the arena layout it was saved in.
 *
 * @module
 */
import type { HostBackend } from "../base/backend.ts";
import type { LearningRate } from "../base/options.ts";
import type { Settings } from "../base/settings.ts";
import { type OptimizerState, stateInternals } from "../core/state.ts";
import { dispose, loadParsedState } from "../core/operations.ts";
import { type ParsedSafetensors, parseSafetensors } from "../base/safetensors.ts";
import { compactCopies, compactViews, stateViews } from "./host_state.ts";
import type { Kept } from "./kept.ts";
import { entryOf } from "./layout.ts";
import { checkSameKinds, checkSomeTensorFits, inTfjsLayout } from "./matching.ts";
import { extrasAtCall, type ExtrasRead } from "./checkpoint_extras.ts";
import { checkedLoad } from "./loaded_state.ts";
import { MISSING_SCHEDULE } from "./options.ts";
import { READ_ONLY_SCHEDULE } from "../core/options.ts";
/**
 * Reads a library checkpoint's moments, slow weights and step counts into kept states, each in
 * the arena layout it was saved in (changing nothing), in the checkpoint's `tensor_order`.
 * Rejects with the library's `CheckpointError` for a damaged file. With `keep`, the state loaded
 * (on the js backend) is given too, the caller's to dispose, and the kept states are views of its
 * arena (`borrowed`: the caller copies them once it ends, `KeptStates.ownBorrowed`); else it is
 * disposed, and they are copies. `file`: the bytes parsed (`parseSafetensors(bytes)`), where the
 * caller parsed them to read more of the file.
 *
 * @example
 * ```ts
 * import { keptFromCheckpoint } from "./from_checkpoint.ts";
 * import { adam, CheckpointError, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const optimizer = adam({ states: "8bit" });
 * const state = await optimizer.init({ w: new Float32Array(4096) });
 * const bytes = await saveState(state);
 * const { steps, kept } = await keptFromCheckpoint(optimizer.settings, bytes);
 * assert.equal(steps, 0);
 * assert.equal(kept.get("w")!.codes!.length, 2); // both moments, as codes and scales
 * await assert.rejects(keptFromCheckpoint(optimizer.settings, bytes.subarray(1)), CheckpointError);
 * ```
 */
export async function keptFromCheckpoint(
  config: Settings,
  bytes: Uint8Array,
  keep = false,
  file: ParsedSafetensors = parseSafetensors(bytes),
): Promise<
  { steps: number; skipped: number; kept: Map<string, Kept>; state?: OptimizerState<unknown> }
> {
  // (The state is read, not stepped: the stand-in of an optimizer restored from a config saved
  // with a schedule, which no option takes, reads it as any schedule would.)
  const lr = config.hyperparameters.lr as LearningRate;
  const state = await loadParsedState(bytes, file, {
    backend: "js",
    lr: lr === MISSING_SCHEDULE ? READ_ONLY_SCHEDULE : lr,
  });
  let read = false;
  try {
    const internals = stateInternals(state);
    checkSameKinds(config, internals.config);
    const backend = internals.backend as HostBackend;
    const layout = backend.layout;
    const views = stateViews(backend);
    // Kept with the state (`keep`): views of its arena, copied once it ends (ownBorrowed).
    const compact = keep ? compactViews(backend) : compactCopies(backend);
    const kept = new Map<string, Kept>();
    // In the checkpoint's `tensor_order` (the variables' order at the step that made it), not
    // the arena's (an 8-bit one holds small tensors first): getWeights lists them so.
    const index = new Map(layout.names.map((name, i) => [name, i]));
    for (const name of internals.order) {
      const i = index.get(name)!;
      const codes = compact.map((c) => c[name]);
      const read: Kept = {
        entry: entryOf(name, [layout.lengths[i]], false),
        arenaShape: internals.shapes[i],
        sections: views.map((v) => keep ? v?.[name] : v?.[name]?.slice()),
        ...(codes.some((c) => c) ? { codes } : {}),
      };
      const gc = internals.config.loop.gc;
      const taken = gc === config.loop.gc ? read : inTfjsLayout(read, gc);
      kept.set(name, keep ? { ...taken, borrowed: true } : taken);
    }
    read = true;
    return { steps: internals.steps, skipped: internals.skipped, kept, ...(keep ? { state } : {}) };
  } finally {
    if (!keep || !read) dispose(state);
  }
}

/**
 * What `loadState` takes from `bytes`, read and checked before anything changes (the tensors
 * copied in the call): the kept states and counts ({@linkcode keptFromCheckpoint}), the sums and
 * averages (for an optimizer accumulating `steps` calls: its `Accumulator`), and the state loaded, the
 * caller's. `live` is called after each await, `settled` awaited between: where either throws,
 * or a check refuses (a RangeError naming a few tensors and variables where none fits a
 * registered variable), the state is disposed and the error thrown.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { checkpointForLoad } from "./from_checkpoint.ts";
 * import { adam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * await tf.setBackend("cpu");
 * const v = tf.variable(tf.zeros([2]), true, "for_load_doc/w");
 * const optimizer = adam();
 * const bytes = await saveState(await optimizer.init({ [v.name]: new Float32Array(2) }));
 * const read = await checkpointForLoad(optimizer.settings, bytes, { steps: 1 }, () => {}, async () => {});
 * assert.equal(read.state.step, 0);
 * assert.ok(read.kept.has(v.name));
 * ```
 */
export async function checkpointForLoad(
  config: Settings,
  bytes: Uint8Array,
  { steps: accumSteps }: { readonly steps: number },
  live: () => void,
  settled: () => Promise<void>,
): Promise<
  Awaited<ReturnType<typeof keptFromCheckpoint>> & {
    extras: ExtrasRead;
    state: OptimizerState<unknown>;
  }
> {
  // (Parsed once, for the state and for the sums and averages: a damaged file's error is the
  // one loadState throws.)
  const file = parseSafetensors(bytes);
  const loading = keptFromCheckpoint(config, bytes, true, file);
  const extrasRead = extrasAtCall(bytes, accumSteps, config.loop.nonFinite === "throw", file);
  const { steps, skipped, kept, state } = await loading;
  let extras: ExtrasRead | undefined;
  await checkedLoad(state!, async () => {
    live();
    checkSomeTensorFits(kept, steps, config.loop.gc);
    extras = extrasRead();
    await settled();
    live();
  });
  return { steps, skipped, kept, extras: extras!, state: state! };
}
