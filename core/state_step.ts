/**
 * The step of an optimizer state (`step` in mod.ts): on the host, where the scalars, the
 * non-finite check, clipping, centralization and one fused update run here; on a device
 * (WebGPU), which counts the steps and skips, halts or takes each by itself. The handle stepped
 * is consumed; the step returns a fresh one (core/state.ts).
 *
 * @module
 */
import type { DeviceBackend, HostBackend } from "../base/backend.ts";
import { writeBlock } from "../base/scalars.ts";
import { checkGrads } from "../base/tensors.ts";
import { clip, computeScalars, nonFiniteError, scalarsOf } from "./step_scalars.ts";
import { type Core, coreOf, notAState, onHost, type OptimizerState, StateHandle } from "./state.ts";

/**
 * Empties `given`: the caller's gradient arrays are not held past the step. (A loop, outside a
 * `finally`: `fill` in a `finally` cost a 4K-parameter step about 5%.)
 */
function forget(given: unknown[]): void {
  for (let i = 0; i < given.length; i++) given[i] = undefined;
}

/** One optimizer step; see `step` in mod.ts. */
export function stepState<T>(
  state: OptimizerState<T>,
  grads?: unknown,
): OptimizerState<T> {
  if (!(state instanceof StateHandle) && grads instanceof StateHandle) {
    throw notAState(state, " (the state came second: step takes it first, step(state, grads))");
  }
  const core = coreOf(state);
  // A step from a schedule or getter it calls would end this one's gradients (given) halfway.
  core.stepping = true;
  try {
    return stepCore(core, grads) as OptimizerState<T>;
  } finally {
    core.stepping = false;
  }
}

function stepCore(core: Core, grads: unknown): StateHandle {
  const backend = core.backend;
  if (grads === undefined || grads === backend.grads) {
    // Zero copy: the kernel reads the gradient slots; nothing is checked or loaded.
    return onHost(backend) ? stepOnHost(core, backend) : stepOnDevice(core, backend);
  }
  let next: StateHandle;
  try {
    next = onHost(backend) ? stepOnHost(core, backend, grads) : stepOnDevice(core, backend, grads);
  } catch (error) {
    forget(core.given);
    throw error;
  }
  forget(core.given);
  return next;
}

/**
 * A step where the host decides: the scalars (`scalarsOf`), the gradients loaded with the check
 * (exponent bits, or with clipping the f64 sum of squares, the norm), then, for a step that
 * passed it, the scalar blocks written, centralization and one fused update.
 */
function stepOnHost(core: Core, backend: HostBackend, grads?: unknown): StateHandle {
  const layout = backend.layout;
  // Each gradient read from the record once: what is checked is what is loaded.
  const given = grads === undefined
    ? undefined
    : checkGrads(grads, layout.names, layout.lengths, core.given, core.visit);
  const t = scalarsOf(core, core.steps + 1);
  const { clipGradNorm, nonFinite } = core.config.loop;
  let norm = NaN;
  if (clipGradNorm === undefined && nonFinite !== "propagate") {
    // Without clipping, "skip" and "throw" need no norm: a test of the exponent bits (fused into
    // the copy when the gradients are copied in), and lastGradNorm is NaN.
    const found = given === undefined ? backend.gradsNonFinite() : backend.loadGradsChecked(given);
    if (found) return skipOrThrow(core, backend, norm);
  } else {
    if (given !== undefined) backend.loadGrads(given);
    if (clipGradNorm !== undefined) {
      // One f64 read of every gradient: non-finite iff some gradient is (no f32 overflow).
      norm = Math.sqrt(backend.gradSumSquares());
      if (!Number.isFinite(norm) && nonFinite !== "propagate") {
        return skipOrThrow(core, backend, norm);
      }
    }
  }
  // Nothing above has changed the state; the scalars are used (clipping scales them).
  core.scalarsAt = 0;
  core.lastNorm = norm;
  const blocks = core.groupScalars;
  if (clipGradNorm !== undefined && norm > clipGradNorm) clip(backend, blocks, clipGradNorm / norm);
  const { f32, u32 } = backend.blocks;
  const scalars = core.rule.scalars;
  for (let g = 0; g < blocks.length; g++) writeBlock(scalars, blocks[g], f32, u32, g);
  centralizeGradients(core);
  backend.update();
  core.steps = t;
  return new StateHandle(core);
}

/**
 * A step with a non-finite gradient: "throw" changes nothing; "skip" counts it (norm `norm`),
 * unless 2⁵³ − 1 were skipped: that one is refused as "throw" refuses it (the count would be
 * past what a checkpoint holds, and the state could not be saved; past 2⁵³ it stands still).
 */
function skipOrThrow(core: Core, backend: HostBackend, norm: number): StateHandle {
  if (core.config.loop.nonFinite === "throw") throw nonFiniteError(backend, core.order);
  if (core.skipped >= Number.MAX_SAFE_INTEGER) {
    throw nonFiniteError(
      backend,
      core.order,
      ", and the state cannot skip another step: it has skipped 2⁵³ − 1, the most a count " +
        "holds exactly (a checkpoint could not hold more)",
    );
  }
  core.lastNorm = norm;
  core.skipped++;
  return new StateHandle(core);
}

/**
 * A step where the device counts the steps (WebGPU): the scalars of the largest t the device
 * can be at (every step submitted and not yet reported taken) go into its ring if not there
 * yet (with those of every t below it from `scalarsFrom` that it does not hold, in a state that
 * goes on with another's count, which took that one's: one that fails there is left out, as one
 * above t, and the device stops for want of it if it gets there), then one submission; the
 * device skips, halts or takes the step by itself.
 */
function stepOnDevice(core: Core, backend: DeviceBackend, grads?: unknown): StateHandle {
  backend.checkUsable();
  const counter = backend.counter;
  const fault = counter.takeFault();
  if (fault) throw fault;
  const given = grads === undefined ? undefined : backend.checkGrads(grads, core.given, core.visit);
  const t = counter.steps + 1;
  // (Below t only where the state goes on with another's count: the device may be at any.)
  const from = Math.min(t, counter.scalarsFrom);
  if (from < t || !counter.hasScalars(t)) {
    // The scalars of t and of the next steps, written last to first: those of a later step
    // that fails (a schedule that throws there) are left out, computed again at their step.
    // None past 2⁵³ − 1, which no step reaches (and where k-- would stand still, forever).
    const last = Math.max(t, Math.min(t + counter.scalarsAhead - 1, Number.MAX_SAFE_INTEGER));
    for (let k = last; k >= from; k--) {
      // (Held already below or above t: a state that goes on with another's count took them.)
      if (k !== t && counter.hasScalars(k)) continue;
      try {
        // (Below or above t, a learning rate computed already: that of a state it went on from.)
        const lr = computeScalars(core, k, k === t ? undefined : counter.knownLearningRate(k));
        counter.writeScalars(k, core.groupScalars, lr);
      } catch (error) {
        if (k === t) throw error;
      }
    }
  }
  // Nothing above has changed the state (params, moments, slow weights, counts).
  if (given !== undefined) backend.loadGrads(given);
  centralizeGradients(core);
  backend.update();
  return new StateHandle(core);
}

/** Gradient centralization of every rank > 1 tensor (with `gc`), before the update. */
function centralizeGradients(core: Core): void {
  const gc = core.gcSegments;
  for (let i = 0; i < gc.length; i += 3) core.backend.centralize(gc[i], gc[i + 1], gc[i + 2]);
}
