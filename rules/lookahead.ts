/**
 * LookAhead's part of every rule's step (Zhang et al. 2019; the wrapper is `lookahead()` in
 * core/optimizer.ts, its scalars `sync` and `alpha` in every block's header): on a sync step,
 * `slow = slow + alpha · (p − slow); p = slow`. The WGSL and AssemblyScript kernels fuse it into
 * the rule's loop's end (the WGSL here; the AssemblyScript in assembly/lookahead.ts); the
 * TypeScript backend runs it as a pass over the range after the rule's loop: the same
 * operations on the same f32 values (the loop stores the new parameters, already rounded, and
 * the pass reads them back), so the same bits. A pass keeps the rule's loop free of calls: V8
 * peels such a loop, hoisting its checks out, and RAdam's loop with the sync fused in as a call
 * (even one V8 inlined, even on steps that do not sync) ran at about 0.75× the speed.
 *
 * @module
 */

const f32 = Math.fround;

/**
 * LookAhead's sync of elements `[start, end)`: `slow = slow + alpha · (p − slow); p = slow`, in
 * f32 (each operation rounded), after the rule's loop stored the new parameters in `p`.
 */
export function syncJs(
  p: Float32Array,
  slow: Float32Array,
  start: number,
  end: number,
  alpha: number,
): void {
  for (let i = start; i < end; i++) {
    const si = slow[i];
    const synced = f32(si + f32(alpha * f32(p[i] - si)));
    slow[i] = synced;
    p[i] = synced;
  }
}

/**
 * WGSL of the end of every step kernel's update of vec4 `i` (f32 moments or 8-bit), after the
 * rule's `rule_values`: `finish_update(i, p0, pi, ps, sync, alpha, keep)` stores the new
 * parameters `pi` with their special `ps` (RULE_VALUES_WGSL in base/rule.ts: the bits of a NaN or
 * an infinity, else 0), synced into `slow` first when `sync` is set, keeping `p0` in the lanes
 * `keep` marks (past the chunk's end, or a block's padding). The sync's NaN and infinities are
 * decided from `ps` and the slow weights' bits as stored, as IEEE-754 has them on the CPU (WGSL
 * lets a compiler assume that no float value is either).
 */
export const FINISH_WGSL = /* wgsl */ `
fn finish_update(i: u32, p0: vec4<f32>, pi: vec4<f32>, ps: vec4<u32>, sync: u32, alpha: f32, keep: vec4<bool>) {
  var pn = with_special(pi, ps);
  if (sync != 0u) {
    // LookAhead sync: slow += alpha · (p − slow); p = slow.
    let s0 = slow[i];
    let ss = special_times(bitcast<vec4<u32>>(s0), 1.0);
    let d = pi - s0;
    let sd = difference_checked(pi, ps, s0, ss);
    pn = select(with_special(s0 + alpha * d, sum_checked(s0, ss, alpha * d, times_checked(d, sd, alpha))), p0, keep);
    slow[i] = select(pn, s0, keep);
  }
  p[i] = select(pn, p0, keep);
}
`;
