/**
 * The plain TypeScript backend: the same per-element f32 arithmetic as the WASM kernel
 * (assembly/index.ts), operation for operation, each result rounded with `Math.fround`. Since
 * every operation is a correctly rounded IEEE-754 add, mul, div or sqrt (float64 then rounded
 * to f32 gives the f32 result for these), both backends agree bit for bit.
 *
 * @module
 */
import {
  type ArenaLayout,
  EXP_AVG,
  EXP_AVG_SQ,
  GRADS,
  PARAMS,
  sectionView,
} from "../core/arena.ts";
import { MODE_ADAPTIVE, MODE_MOMENTUM, type StepScalars } from "../core/scalars.ts";
import { CpuBackend } from "./cpu_backend.ts";

const f32 = Math.fround;

/** One step over `n` elements of the four sections, in f32 arithmetic. */
export function jsStep(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  n: number,
  s: StepScalars,
): void {
  const gs = f32(s.gradScale), wd = f32(s.coupledDecay);
  const b1 = f32(s.beta1), c1 = f32(s.oneMinusBeta1);
  const b2 = f32(s.beta2), c2 = f32(s.oneMinusBeta2);
  const pd = f32(s.paramDecay), ss = f32(s.stepSize), eps = f32(s.eps);
  const mode = s.mode;
  const coupled = wd !== 0;
  for (let i = 0; i < n; i++) {
    const pi = p[i];
    let gi = f32(gs * g[i]);
    if (coupled) gi = f32(gi + f32(wd * pi));
    const mi = f32(f32(b1 * m[i]) + f32(c1 * gi));
    const vi = f32(f32(b2 * v[i]) + f32(c2 * f32(gi * gi)));
    m[i] = mi;
    v[i] = vi;
    if (mode === MODE_ADAPTIVE) {
      p[i] = f32(pi * pd) - f32(ss * f32(mi / f32(f32(Math.sqrt(vi)) + eps)));
    } else if (mode === MODE_MOMENTUM) {
      p[i] = f32(pi * pd) - f32(ss * mi);
    }
  }
}

/** Allocates a TypeScript-backend arena for `layout`. */
export function createJsBackend(layout: ArenaLayout): CpuBackend {
  let buffer: ArrayBuffer;
  try {
    buffer = new ArrayBuffer(layout.byteLength);
  } catch (cause) {
    throw new RangeError(
      `Cannot allocate the ${layout.byteLength}-byte arena for ${layout.total} parameters`,
      { cause },
    );
  }
  const p = sectionView(buffer, 0, layout, PARAMS);
  const g = sectionView(buffer, 0, layout, GRADS);
  const m = sectionView(buffer, 0, layout, EXP_AVG);
  const v = sectionView(buffer, 0, layout, EXP_AVG_SQ);
  const n = layout.total;
  return new CpuBackend("js", layout, buffer, 0, (s) => jsStep(p, g, m, v, n, s));
}
