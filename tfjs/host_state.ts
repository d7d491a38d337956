/**
 * A host backend's state as the adapter reads and copies it: views of its f32 sections, copies of
 * the codes and scales of its 8-bit moments, and the copy of one host state into another.
 *
 * @module
 */
import {
  type CompactMoment,
  EXP_AVG,
  EXP_AVG_SQ,
  GRADS,
  hasSection,
  PARAMS,
  SLOW,
} from "../base/arena.ts";
import { holdsCodes, type HostBackend } from "../base/backend.ts";

/**
 * Live views of the f32 state sections of a host backend, by section index (undefined for the
 * params, the gradients, the sections its rule lacks, and the codes and scales of 8-bit moments:
 * see {@linkcode compactCopies}).
 *
 * @example
 * ```ts
 * import { stateViews } from "./host_state.ts";
 * import { EXP_AVG, PARAMS, SLOW } from "../base/arena.ts";
 * import { planArena } from "../base/arena.ts";
 * import { createJsBackend } from "../cpu/js_backend.ts";
 * import { ADAM } from "../rules/adam.ts";
 * import assert from "node:assert/strict";
 *
 * const backend = createJsBackend(planArena(["w"], [3], { moments: 2 }), ADAM);
 * const views = stateViews(backend);
 * assert.equal(views[PARAMS], undefined);
 * assert.equal(views[EXP_AVG]!.w.length, 3);
 * assert.equal(views[SLOW], undefined);
 * ```
 */
export function stateViews(
  backend: HostBackend,
): (Readonly<Record<string, Float32Array>> | undefined)[] {
  return backend.layout.sectionOffsets.map((_, s) =>
    s === PARAMS || s === GRADS || s > SLOW || !hasSection(backend.layout, s)
      ? undefined
      : backend.viewSection(s)
  );
}

/**
 * Copies of the codes and scales of each moment of each compact tensor of a host backend that
 * holds some (8-bit states), by moment, then name; none otherwise.
 *
 * @example
 * ```ts
 * import { compactCopies } from "./host_state.ts";
 * import { planCompactArena } from "../base/arena_compact.ts";
 * import { createJsBackend } from "../cpu/js_backend.ts";
 * import { ADAM } from "../rules/adam.ts";
 * import assert from "node:assert/strict";
 *
 * const options = { moments: 2, nonNegative: [false, true] };
 * const backend = createJsBackend(planCompactArena(["w"], [4096], options), ADAM);
 * const [m, v] = compactCopies(backend);
 * assert.ok(m.w.codes instanceof Int8Array && v.w.codes instanceof Uint8Array);
 * assert.equal(v.w.scales.length, 16);
 * ```
 */
export function compactCopies(backend: HostBackend): Record<string, CompactMoment>[] {
  return compactViews(backend).map((byName) => {
    const out: Record<string, CompactMoment> = {};
    for (const [name, c] of Object.entries(byName)) {
      out[name] = { codes: c.codes.slice(), scales: c.scales.slice() };
    }
    return out;
  });
}

/**
 * Live views of the codes and scales of each moment of each compact tensor of a host backend that
 * holds some (8-bit states), by moment, then name; none otherwise. (Copies:
 * {@linkcode compactCopies}.)
 *
 * @example
 * ```ts
 * import { compactViews } from "./host_state.ts";
 * import { planCompactArena } from "../base/arena_compact.ts";
 * import { createJsBackend } from "../cpu/js_backend.ts";
 * import { ADAM } from "../rules/adam.ts";
 * import assert from "node:assert/strict";
 *
 * const options = { moments: 2, nonNegative: [false, true] };
 * const backend = createJsBackend(planCompactArena(["w"], [4096], options), ADAM);
 * const [m] = compactViews(backend);
 * m.w.scales[0] = 2;
 * assert.equal(compactViews(backend)[0].w.scales[0], 2); // the arena's own
 * ```
 */
export function compactViews(backend: HostBackend): Readonly<Record<string, CompactMoment>>[] {
  const layout = backend.layout;
  if (!holdsCodes(backend) || layout.compactStart >= layout.total) return [];
  const moments = layout.unsignedCodes.length;
  return [...Array(moments).keys()].map((k) => backend.viewCompact(k));
}

/**
 * Copies the state of one host backend into another of the same layout (parameters, moments,
 * codes and scales, slow weights; not the gradients): the same bits.
 *
 * @example
 * ```ts
 * import { copyHostState } from "./host_state.ts";
 * import { EXP_AVG, planArena } from "../base/arena.ts";
 * import { createJsBackend } from "../cpu/js_backend.ts";
 * import { ADAM } from "../rules/adam.ts";
 * import assert from "node:assert/strict";
 *
 * const layout = planArena(["w"], [2], { moments: 2 });
 * const source = createJsBackend(layout, ADAM);
 * const target = createJsBackend(layout, ADAM);
 * source.viewSection(EXP_AVG).w.set([3, 4]);
 * copyHostState(source, target);
 * assert.deepEqual(target.viewSection(EXP_AVG).w, new Float32Array([3, 4]));
 * ```
 */
export function copyHostState(source: HostBackend, target: HostBackend): void {
  const layout = source.layout;
  for (const s of [PARAMS, EXP_AVG, EXP_AVG_SQ, SLOW]) {
    if (!hasSection(layout, s)) continue;
    const from = source.viewSection(s), to = target.viewSection(s);
    for (const name of Object.keys(from)) to[name].set(from[name]);
  }
  if (!holdsCodes(source) || !holdsCodes(target)) return;
  for (let k = 0; k < layout.unsignedCodes.length; k++) {
    const from = source.viewCompact(k), to = target.viewCompact(k);
    for (const name of Object.keys(from)) {
      to[name].codes.set(from[name].codes);
      to[name].scales.set(from[name].scales);
    }
  }
}
