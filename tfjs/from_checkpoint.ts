/**
 * The way back from this library's checkpoints (`loadState`): a checkpoint's moments, slow
 * weights and step counts read into kept states, each in the arena layout it was saved in.
 *
 * @module
 */
import type { HostBackend } from "../base/backend.ts";
import type { LearningRate } from "../base/options.ts";
import type { Settings } from "../base/settings.ts";
import { stateInternals } from "../core/state.ts";
import { dispose, loadState } from "../core/operations.ts";
import { compactCopies, stateViews } from "./host_state.ts";
import type { Kept } from "./kept.ts";
import { entryOf } from "./layout.ts";
import { checkSameKinds, inTfjsLayout } from "./matching.ts";
/**
 * Reads a library checkpoint's moments, slow weights and step counts into kept states, each in
 * the arena layout it was saved in (changing nothing). Rejects with the library's
 * `CheckpointError` for a damaged file.
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
): Promise<{ steps: number; skipped: number; kept: Map<string, Kept> }> {
  const state = await loadState(bytes, {
    backend: "js",
    lr: config.hyperparameters.lr as LearningRate,
  });
  try {
    const internals = stateInternals(state);
    checkSameKinds(config, internals.config);
    const backend = internals.backend as HostBackend;
    const layout = backend.layout;
    const views = stateViews(backend);
    const compact = compactCopies(backend);
    const kept = new Map<string, Kept>();
    layout.names.forEach((name, i) => {
      const codes = compact.map((c) => c[name]);
      const read: Kept = {
        entry: entryOf(name, [layout.lengths[i]], false),
        arenaShape: internals.shapes[i],
        sections: views.map((v) => v?.[name]?.slice()),
        ...(codes.some((c) => c) ? { codes } : {}),
      };
      const gc = internals.config.loop.gc;
      kept.set(name, gc === config.loop.gc ? read : inTfjsLayout(read, gc));
    });
    return { steps: internals.steps, skipped: internals.skipped, kept };
  } finally {
    dispose(state);
  }
}
