/**
 * `writeKept`, which makes a new state of the adapter from the state kept aside (frozen
 * variables, weights given to setWeights, a checkpoint given to loadState), writes each tensor
 * of each section once: codes kept in 8 bits are copied as they are, never first encoded from
 * zeros; and the state it makes holds the bits of writing every section whole, then the codes.
 */
import assert from "node:assert/strict";
import { type CompactMoment, EXP_AVG, EXP_AVG_SQ, PARAMS, SLOW } from "../../base/arena.ts";
import { planCompactArena } from "../../base/arena_compact.ts";
import type { CompactHostBackend } from "../../base/backend.ts";
import { decodeTensor, encodeTensor } from "../../base/q8_tensor.ts";
import { createJsBackend } from "../../cpu/js_backend.ts";
import { createWasmBackendSync } from "../../cpu/wasm_backend.ts";
import { ADAM } from "../../rules/adam.ts";
import type { Fitting } from "../../tfjs/kept.ts";
import { writeKept } from "../../tfjs/kept_write.ts";
import { entryOf } from "../../tfjs/layout.ts";
import { randoms } from "../util.ts";

const NAMES = ["w", "x", "y", "b", "c"];
/** Three tensors held in 8 bits (the last blocks of w and y partial), two in 32 bits. */
const LENGTHS = [4480, 4096, 5000, 3, 7];
const SECTIONS = [EXP_AVG, EXP_AVG_SQ, SLOW];

/** Codes and scales of `values` (a moment held in 8 bits). */
function encoded(values: Float32Array, unsigned: boolean): CompactMoment {
  const codes = unsigned ? new Uint8Array(values.length) : new Int8Array(values.length);
  const scales = new Float32Array(Math.ceil(values.length / 256));
  encodeTensor(values, codes, scales);
  return { codes, scales };
}

/**
 * Kept state: w as codes (both moments) and f32 slow weights, x as f32 sections (encoded where
 * the state holds it in 8 bits), b with an f32 `exp_avg` only; y and c fresh.
 */
function keptStates(): Map<string, Fitting> {
  const f32 = (n: number, seed: number, abs = false) =>
    randoms(n, seed).map((v) => abs ? Math.abs(v) : v);
  const [w, x, b] = [0, 1, 3].map((i) => entryOf(NAMES[i], [LENGTHS[i]], false));
  return new Map<string, Fitting>([
    ["w", {
      entry: w,
      sections: [, , , , f32(4480, 1)] as (Float32Array | undefined)[],
      codes: [encoded(f32(4480, 2), false), encoded(f32(4480, 3, true), true)],
    }],
    ["x", { entry: x, sections: [, , f32(4096, 4), f32(4096, 5, true), f32(4096, 6)] }],
    ["b", { entry: b, sections: [, , f32(3, 7)] }],
  ]);
}

/** What writeKept wrote before it copied codes without encoding zeros first: the reference. */
function writeWhole(
  backend: CompactHostBackend,
  params: Record<string, Float32Array>,
  fitting: Map<string, Fitting>,
): void {
  backend.writeSection(PARAMS, params);
  for (const s of SECTIONS) {
    const data: Record<string, Float32Array> = {};
    for (const [i, name] of NAMES.entries()) {
      const kept = fitting.get(name);
      const codes = s === SLOW ? undefined : kept?.codes?.[s - EXP_AVG];
      let value = kept?.sections[s];
      if (codes !== undefined && !backend.layout.compact[backend.layout.names.indexOf(name)]) {
        decodeTensor(codes.codes, codes.scales, value = new Float32Array(LENGTHS[i]));
      }
      data[name] = value ?? (s === SLOW ? params[name] : new Float32Array(LENGTHS[i]));
    }
    backend.writeSection(s, data);
    if (s === SLOW) continue;
    for (const [name, kept] of fitting) {
      const codes = kept.codes?.[s - EXP_AVG];
      if (codes === undefined) continue;
      backend.viewCompact(s - EXP_AVG)[name].codes.set(codes.codes);
      backend.viewCompact(s - EXP_AVG)[name].scales.set(codes.scales);
    }
  }
}

/** Every f32 section and every moment's codes and scales of `backend`, by tensor. */
function contents(backend: CompactHostBackend): unknown[] {
  const out: unknown[] = [];
  for (const s of [PARAMS, ...SECTIONS]) {
    out.push(Object.entries(backend.viewSection(s)).map(([n, v]) => [n, [...v]]));
  }
  for (const k of [0, 1]) {
    const codes = backend.viewCompact(k);
    out.push(Object.entries(codes).map(([n, c]) => [n, [...c.codes], [...c.scales]]));
  }
  return out;
}

for (const kind of ["js", "wasm"] as const) {
  Deno.test(`tfjs ${kind}: writeKept writes each tensor once (kept codes copied, not first encoded from zeros), with the bits of writing whole sections`, () => {
    const layout = planCompactArena(NAMES, LENGTHS, {
      moments: 2,
      nonNegative: [false, true],
      slow: true,
      states: "8bit",
    });
    assert.deepEqual(NAMES.map((n) => layout.compact[layout.names.indexOf(n)]), [
      true,
      true,
      true,
      false,
      false,
    ]);
    const make = () =>
      (kind === "js"
        ? createJsBackend(layout, ADAM)
        : createWasmBackendSync(layout)) as CompactHostBackend;
    const backend = make(), reference = make();
    // (Garbage where a fresh state's moments go: writeKept must write them.)
    for (const b of [backend, reference]) {
      for (const s of SECTIONS) for (const v of Object.values(b.viewSection(s))) v.fill(-7);
    }
    const entries = NAMES.map((n, i) => entryOf(n, [LENGTHS[i]], false));
    const values = LENGTHS.map((n, i) => randoms(n, 20 + i));
    const fitting = keptStates();
    // Each writeSection of a moment encodes every tensor it holds in 8 bits.
    const written: [number, string[]][] = [];
    const writeSection = backend.writeSection.bind(backend);
    backend.writeSection = (s, data) => {
      written.push([s, Object.keys(data)]);
      writeSection(s, data);
    };
    writeKept(backend, entries, values, SECTIONS, fitting);
    const kept = written.filter(([s, names]) => s !== PARAMS && names.includes("w"));
    assert.deepEqual(kept, [], "w's kept codes are not encoded from zeros first");
    writeWhole(reference, Object.fromEntries(NAMES.map((n, i) => [n, values[i]])), fitting);
    assert.deepEqual(contents(backend), contents(reference));
    // w's codes are those kept, exactly.
    const w = fitting.get("w")!.codes!;
    assert.deepEqual(backend.viewCompact(0).w.codes, w[0]!.codes);
    assert.deepEqual(backend.viewCompact(1).w.scales, w[1]!.scales);
  });
}
