/**
 * The state kept aside (kept.ts) written into a new host state: the kept moments and slow weights
 * of the variables they fit, fresh ones for the others.
 *
 * @module
 */
import { EXP_AVG, EXP_AVG_SQ, PARAMS, SLOW } from "../base/arena.ts";
import { holdsCodes, type HostBackend } from "../base/backend.ts";
import { decodeTensor, encodeTensor } from "../base/q8_tensor.ts";
import type { Fitting } from "./kept.ts";
import { type Entry, toArena } from "./layout.ts";

/**
 * Writes the parameters (`values[i]`: variable i's, in the tfjs layout) and the state `sections`
 * of a new host state over `entries` (the variables' order), from the kept states that fit them,
 * else fresh (zero moments; slow weights = the parameters). Kept f32 values are written as they
 * are (encoded, lossy, where the state holds that moment in 8 bits: from 32-bit weights); kept
 * codes and scales are copied as they are where it holds them in 8 bits too (exact), decoded
 * where it does not.
 *
 * @example
 * ```ts
 * import { writeKept } from "./kept_write.ts";
 * import { entryOf } from "./layout.ts";
 * import { EXP_AVG, EXP_AVG_SQ, planArena, PARAMS } from "../base/arena.ts";
 * import { createJsBackend } from "../cpu/js_backend.ts";
 * import { ADAM } from "../rules/adam.ts";
 * import assert from "node:assert/strict";
 *
 * const backend = createJsBackend(planArena(["w"], [2], { moments: 2 }), ADAM);
 * const entry = entryOf("w", [2], false);
 * const kept = new Map([["w", { entry, sections: [, , new Float32Array([1, 2])] }]]);
 * writeKept(backend, [entry], [new Float32Array([5, 6])], [EXP_AVG, EXP_AVG_SQ], kept);
 * assert.deepEqual(backend.viewSection(PARAMS).w, new Float32Array([5, 6]));
 * assert.deepEqual(backend.viewSection(EXP_AVG).w, new Float32Array([1, 2]));
 * assert.deepEqual(backend.viewSection(EXP_AVG_SQ).w, new Float32Array(2)); // fresh
 * ```
 */
export function writeKept(
  backend: HostBackend,
  entries: readonly Entry[],
  values: readonly Float32Array[],
  sections: readonly number[],
  fitting: ReadonlyMap<string, Fitting>,
): void {
  const layout = backend.layout;
  const compact = new Map(layout.names.map((name, i) => [name, layout.compact[i]]));
  const params: Record<string, Float32Array> = {};
  entries.forEach((e, i) => {
    params[e.name] = new Float32Array(e.size);
    toArena(e, values[i], params[e.name]);
  });
  backend.writeSection(PARAMS, params);
  for (const s of sections) {
    const k = s - EXP_AVG;
    const moment = s === EXP_AVG || s === EXP_AVG_SQ;
    // Each tensor written once: codes kept as they are copied, the others' values encoded
    // where the state holds them in 8 bits (as writeSection would), else copied.
    const views = backend.viewSection(s);
    const held = moment && holdsCodes(backend) ? backend.viewCompact(k) : undefined;
    for (const e of entries) {
      const kept = fitting.get(e.name);
      const codes = moment ? kept?.codes?.[k] : undefined;
      const target = held !== undefined && compact.get(e.name) ? held[e.name] : undefined;
      if (codes !== undefined && target !== undefined) {
        target.codes.set(codes.codes);
        target.scales.set(codes.scales);
        continue;
      }
      let value = kept?.sections[s];
      if (codes !== undefined) {
        decodeTensor(codes.codes, codes.scales, value = new Float32Array(e.size));
      }
      value ??= s === SLOW ? params[e.name] : new Float32Array(e.size);
      if (target !== undefined) encodeTensor(value, target.codes, target.scales);
      else views[e.name].set(value);
    }
  }
}
