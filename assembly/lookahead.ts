// The end of every rule's element loop: LookAhead's sync, fused (the wrapper's part of the
// loop: `slow = slow + alpha * (p - slow); p = slow` on a sync step), then the parameter's store.

/** Stores `pNew` (one lane) at `params`, synced into the slow weights at `slow` first. */
// @ts-ignore: decorator
@inline
export function finishScalar(params: usize, slow: usize, pNew: f32, alpha: f32, sync: bool): void {
  if (sync) {
    const s = load<f32>(slow);
    pNew = s + alpha * (pNew - s);
    store<f32>(slow, pNew);
  }
  store<f32>(params, pNew);
}

/** Stores `pNew` (one vector) at `params`, synced into the slow weights at `slow` first. */
// @ts-ignore: decorator
@inline
export function finishVector(params: usize, slow: usize, pNew: v128, al: v128, sync: bool): void {
  if (sync) {
    const s = v128.load(slow);
    pNew = f32x4.add(s, f32x4.mul(al, f32x4.sub(pNew, s)));
    v128.store(slow, pNew);
  }
  v128.store(params, pNew);
}
