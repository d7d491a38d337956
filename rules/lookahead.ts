/**
 * LookAhead's part of every rule's element loop (Zhang et al. 2019; the wrapper is
 * `lookahead()` in core/optimizer.ts, its scalars `sync` and `alpha` in every block's header):
 * on a sync step, `slow = slow + alpha · (p − slow); p = slow`, fused into the loop's end, in
 * TypeScript here and in WGSL (the AssemblyScript one is assembly/lookahead.ts).
 *
 * @module
 */

const f32 = Math.fround;

/**
 * Stores `pNew` as element `i` of `p`, synced into the slow weights first on a sync step: the
 * end of every rule's TypeScript loop.
 */
export function finishJs(
  p: Float32Array,
  slow: Float32Array,
  i: number,
  pNew: number,
  alpha: number,
  sync: boolean,
): void {
  if (sync) {
    const si = slow[i];
    pNew = f32(si + f32(alpha * f32(pNew - si)));
    slow[i] = pNew;
  }
  p[i] = pNew;
}

/**
 * WGSL of the end of every step kernel's update of vec4 `i` (f32 moments or 8-bit), after the
 * rule's `rule_values`: `finish_update(i, p0, pi, sync, alpha, keep)` stores the new parameters
 * `pi` (synced into `slow` first when `sync` is set), keeping `p0` in the lanes `keep` marks
 * (past the chunk's end, or a block's padding).
 */
export const FINISH_WGSL = /* wgsl */ `
fn finish_update(i: u32, p0: vec4<f32>, pi: vec4<f32>, sync: u32, alpha: f32, keep: vec4<bool>) {
  var pn = pi;
  if (sync != 0u) {
    // LookAhead sync: slow += alpha · (p − slow); p = slow.
    let s0 = slow[i];
    pn = select(s0 + alpha * (pi - s0), p0, keep);
    slow[i] = select(pn, s0, keep);
  }
  p[i] = select(pn, p0, keep);
}
`;
