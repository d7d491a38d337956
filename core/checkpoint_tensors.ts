/**
 * The tensors of a checkpoint: which a state of given settings holds (its parameters, each
 * moment, LookAhead's slow weights), reading and checking them from a parsed file, and writing
 * them into a new state's backend, converting moments between their f32 and 8-bit forms where
 * the file and the state hold them differently.
 *
 * A moment of a tensor is in a file either as `<tensor>.<moment>` (F32, the tensor's shape) or,
 * for a tensor whose moments are 8-bit, as `<tensor>.<moment>.codes` (I8 codes of a signed
 * moment, U8 of a non-negative one, the tensor's shape) and `<tensor>.<moment>.scales` (F32, one
 * per block of 256 elements); docs/SPEC.md "Compact states".
 *
 * @module
 */
import { type ArenaLayout, type CompactMoment, EXP_AVG, PARAMS, SLOW } from "../base/arena.ts";
import { type AnyBackend, holdsCodes } from "../base/backend.ts";
import { blocksOf, Q8_BLOCK } from "../base/q8.ts";
import { codesFault, decodeTensor, encodeTensor } from "../base/q8_tensor.ts";
import {
  CheckpointError,
  METADATA_KEY,
  type parseSafetensors,
  type TensorEntry,
} from "../base/safetensors.ts";
import type { Settings } from "../base/settings.ts";
import { signedNumber } from "../base/_errors.ts";
import { momentsOf } from "./origins.ts";
import { checkAccumulated, checkExtraTensor, isExtraTensor } from "./extra_tensors.ts";

/**
 * The per-parameter tensors of a checkpoint: name suffix and arena section (the parameters, the
 * rule's moments, LookAhead's slow weights where the configuration has them).
 */
export interface StateTensor {
  readonly suffix: string;
  readonly section: number;
  /** Values must be ≥ 0 (second moments; their codes are unsigned). */
  readonly nonNegative: boolean;
  /** The moment's index, for a moment (it may be held as codes). */
  readonly moment?: number;
}

/** The tensors a state of `config` holds per parameter, in arena section order. */
export function stateTensors(config: Settings<unknown>): readonly StateTensor[] {
  const kinds: StateTensor[] = [{ suffix: "", section: PARAMS, nonNegative: false }];
  momentsOf(config).forEach((m, k) =>
    kinds.push({
      suffix: `.${m.name}`,
      section: EXP_AVG + k,
      nonNegative: m.nonNegative,
      moment: k,
    })
  );
  if (config.lookahead) kinds.push({ suffix: ".slow", section: SLOW, nonNegative: false });
  return kinds;
}

/**
 * Throws a TypeError unless each tensor a checkpoint of a state of `config` on `layout` would
 * hold or read has a name of its own: parameters named `"w"` and `"w.exp_avg"` (a moment of
 * `"w"`, or `"w.exp_avg.codes"`, its 8-bit form, which a file of either format may hold), or one
 * named `"__metadata__"` (the header's key), could be trained but never saved, or not loaded.
 *
 * @example
 * ```ts
 * import { checkSavableNames } from "./checkpoint_tensors.ts";
 * import { planState } from "./plan.ts";
 * import { radam } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const config = radam().settings;
 * checkSavableNames(config, planState(config, ["w", "w.slow"], [1, 1])); // no LookAhead: fine
 * assert.throws(
 *   () => checkSavableNames(config, planState(config, ["w", "w.exp_avg"], [1, 1])),
 *   TypeError,
 * );
 * ```
 */
export function checkSavableNames(config: Settings<unknown>, layout: ArenaLayout): void {
  const kinds = stateTensors(config);
  const suffixes = kinds.flatMap((k) =>
    k.moment === undefined ? [k.suffix] : [k.suffix, `${k.suffix}.codes`, `${k.suffix}.scales`]
  );
  if (!mayCollide(layout.names, suffixes)) return;
  // By file name, who takes it: a parameter's index, its kind and its form (0: f32 values, 1:
  // codes, 2: scales), packed in one number; said in words only for an error (a model may have
  // hundreds of thousands of tensors: no string is built per tensor beyond its file name).
  const holder = new Map<string, number>();
  const what = (taker: number) => {
    const form = taker % 3, k = kinds[Math.floor(taker / 3) % kinds.length];
    const name = JSON.stringify(layout.names[Math.floor(taker / 3 / kinds.length)]);
    const of = k.suffix === "" ? `the parameter ${name}` : `the ${k.suffix.slice(1)} of ${name}`;
    return form === 0 ? of : `${of} (${form === 1 ? "codes" : "scales"})`;
  };
  const claim = (file: string, taker: number) => {
    const other = file === METADATA_KEY ? "the header's metadata" : holder.get(file);
    if (other !== undefined) {
      throw new TypeError(
        `A checkpoint would hold ${JSON.stringify(file)} twice, as ${
          typeof other === "string" ? other : what(other)
        } and as ${what(taker)}: rename the tensor`,
      );
    }
    holder.set(file, taker);
  };
  layout.names.forEach((name, i) => {
    kinds.forEach((k, j) => {
      const file = name + k.suffix, taker = 3 * (i * kinds.length + j);
      claim(file, taker);
      // A moment is read from either form, whatever the state holds: both are taken.
      if (k.moment !== undefined) {
        claim(`${file}.codes`, taker + 1);
        claim(`${file}.scales`, taker + 2);
      }
    });
  });
}

/**
 * Whether two of the tensors named each of `names` with each of `suffixes` (all different), or
 * one and the header's metadata, may have one name: false proves that none do, with one lookup
 * per name and pair of suffixes, where taking each name would hold one string per tensor. Two
 * names `a` and `b` make one only where `a` is `b` and what one suffix has before another that
 * ends it (`a + s === b + t`), or one is `__metadata__` less the end that is a suffix.
 * A name given twice makes one with itself: true.
 */
function mayCollide(names: readonly string[], suffixes: readonly string[]): boolean {
  if (new Set(suffixes).size !== suffixes.length) return true;
  const tails = new Set<string>();
  for (const s of suffixes) {
    for (const t of suffixes) {
      if (t !== s && t.endsWith(s)) tails.add(t.slice(0, t.length - s.length));
    }
  }
  const heads = suffixes.filter((s) => METADATA_KEY.endsWith(s))
    .map((s) => METADATA_KEY.slice(0, METADATA_KEY.length - s.length));
  const known = new Set(names);
  if (known.size !== names.length) return true; // (a name given twice: its tensors collide)
  for (const name of names) {
    if (heads.includes(name)) return true;
    for (const tail of tails) {
      if (name.endsWith(tail) && known.has(name.slice(0, name.length - tail.length))) return true;
    }
  }
  return false;
}

/** A tensor's state of one kind as a file holds it: f32 values, or a moment's codes. */
export type HeldTensor = Float32Array | CompactMoment;

/** Index of the first non-finite element (or negative one, with `nonNegative`), or -1. */
export function firstBadValue(data: Float32Array, nonNegative: boolean): number {
  if (nonNegative) {
    for (let i = 0; i < data.length; i++) {
      const x = data[i];
      if (!(x >= 0 && x !== Infinity)) return i;
    }
  } else {
    for (let i = 0; i < data.length; i++) {
      const x = data[i];
      if (x - x !== 0) return i;
    }
  }
  return -1;
}

/** The first block whose scale is not finite (a NaN: the block's moment is), or -1. */
export function firstBadScale(scales: Float32Array): number {
  for (let b = 0; b < scales.length; b++) if (scales[b] - scales[b] !== 0) return b;
  return -1;
}

/** The checked tensors of a file: lengths and shapes by parameter, data by kind then name. */
export interface ReadTensors {
  lengths: number[];
  shapes: number[][];
  data: Record<string, HeldTensor>[];
  /** Whether some moment is held as codes. */
  codes: boolean;
}

/**
 * The tensors of a parsed file, checked: exactly those of `names` and `kinds` (parameters,
 * moments in either form, slow weights), one shape per parameter, every value valid, besides
 * those a holder saved beside the state (`<name>.accum`, `<name>.average`: checked as it saves
 * them, core/extra_tensors.ts, sums with their count `accum_count` and the count with sums, then
 * left to it). Views of `bytes` where aligned (as this library writes them), else copies. With
 * `values` false, the header alone: each tensor's name, dtype and shape checked, no value read
 * (`data` is then empty; `checkpointInfo`).
 */
export function readTensors(
  bytes: Uint8Array,
  file: ReturnType<typeof parseSafetensors>,
  names: readonly string[],
  kinds: readonly StateTensor[],
  values = true,
): ReadTensors {
  const { tensors } = file;
  const held = (name: string, kind: StateTensor) => {
    const file = name + kind.suffix;
    if (kind.moment === undefined) return [file];
    const codes = `${file}.codes`, scales = `${file}.scales`;
    return tensors.has(codes) || tensors.has(scales) ? [codes, scales] : [file];
  };
  // The names of each parameter's tensors of each kind, made once (read twice).
  const forms = names.map((n) => kinds.map((k) => held(n, k)));
  const expected = forms.flat(2);
  const known = new Set(expected);
  for (const tensorName of tensors.keys()) {
    // (A holder's tensors saved beside the state, core/checkpoint_extras.ts, are left to it.)
    if (!known.has(tensorName) && !isExtraTensor(tensorName)) {
      throw new CheckpointError(
        `Checkpoint has an unexpected tensor ${JSON.stringify(tensorName)}`,
      );
    }
  }
  if (known.size !== expected.length) {
    throw new CheckpointError(
      "Checkpoint metadata tensor_order has names whose tensors collide (e.g. a and a.exp_avg)",
    );
  }
  const out: ReadTensors = { lengths: [], shapes: [], data: [], codes: false };
  // Null-prototype records: a tensor may be named "__proto__".
  out.data = kinds.map(() => Object.create(null));
  names.forEach((name, i) => {
    const param = tensors.get(name);
    const shape = param?.shape ?? [];
    kinds.forEach((kind, j) => {
      const [first, scales] = forms[i][j];
      const entry = entryOf(tensors, first, name, shape);
      if (scales === undefined) {
        checkDtype(entry, "F32", first, "f32 values");
        if (!values) return;
        out.data[j][name] = tensorValues(bytes, file.dataStart, entry, first, kind.nonNegative);
      } else {
        const scaleEntry = tensors.get(scales);
        if (scaleEntry === undefined) {
          throw new CheckpointError(`Checkpoint lacks the tensor ${JSON.stringify(scales)}`);
        }
        checkCompactEntries(entry, scaleEntry, first, kind);
        out.codes = true;
        if (!values) return;
        out.data[j][name] = compactValues(bytes, file.dataStart, entry, scaleEntry, first, kind);
      }
    });
    out.lengths.push(shape.reduce((a, b) => a * b, 1));
    out.shapes.push(shape.slice());
  });
  // A holder's tensors saved beside the state (core/checkpoint_extras.ts), checked as it saves
  // them, so that a damaged file's tensor of a name so ending is not taken for one.
  const lengths = new Map(names.map((name, i) => [name, out.lengths[i]]));
  const extras = [...tensors.keys()].filter((tensorName) => !known.has(tensorName));
  for (const tensorName of extras) {
    checkExtraTensor(tensorName, tensors.get(tensorName)!, lengths, file.metadata);
  }
  checkAccumulated(extras, file.metadata);
  return out;
}

/** The entry of `tensorName`, of the shape of its parameter `name`. */
function entryOf(
  tensors: ReadonlyMap<string, TensorEntry>,
  tensorName: string,
  name: string,
  shape: readonly number[],
): TensorEntry {
  const entry = tensors.get(tensorName);
  if (entry === undefined) {
    throw new CheckpointError(`Checkpoint lacks the tensor ${JSON.stringify(tensorName)}`);
  }
  if (entry.shape.join(",") !== shape.join(",")) {
    throw new CheckpointError(
      `Tensor ${JSON.stringify(tensorName)} has shape [${entry.shape.join(",")}], unlike ${
        JSON.stringify(name)
      } [${shape.join(",")}]`,
    );
  }
  return entry;
}

/** Throws unless `entry` is of `dtype`, saying what the tensor is. */
function checkDtype(entry: TensorEntry, dtype: string, tensorName: string, what: string): void {
  if (entry.dtype !== dtype) {
    throw new CheckpointError(
      `Tensor ${JSON.stringify(tensorName)} is ${entry.dtype}; expected ${dtype} (${what})`,
    );
  }
}

/**
 * The F32 values of an entry: a view of `bytes` when aligned, else a copy (made through a plain
 * Uint8Array: the `slice` of a subclass may be a view, as Node.js's Buffer's is).
 */
function floats(bytes: Uint8Array, dataStart: number, entry: TensorEntry): Float32Array {
  const length = (entry.end - entry.begin) / 4;
  const at = bytes.byteOffset + dataStart + entry.begin;
  return at % 4 === 0
    ? new Float32Array(bytes.buffer, at, length)
    : new Float32Array(new Uint8Array(bytes.buffer, at, length * 4).slice().buffer);
}

/** A tensor's F32 values (its dtype checked), checked finite (and ≥ 0 with `nonNegative`). */
function tensorValues(
  bytes: Uint8Array,
  dataStart: number,
  entry: TensorEntry,
  tensorName: string,
  nonNegative: boolean,
): Float32Array {
  const values = floats(bytes, dataStart, entry);
  const problem = valuesProblem(values, tensorName, nonNegative);
  if (problem) throw new CheckpointError(problem);
  return values;
}

/** What is wrong with a tensor's f32 values (not finite, or negative with `nonNegative`). */
function valuesProblem(
  values: Float32Array,
  tensorName: string,
  nonNegative: boolean,
): string | undefined {
  const bad = firstBadValue(values, nonNegative);
  if (bad < 0) return undefined;
  return `Tensor ${JSON.stringify(tensorName)}[${bad}] is ${values[bad]}; expected a finite${
    nonNegative ? " non-negative" : ""
  } number`;
}

/**
 * Throws unless a moment's codes and scales are of its kind (I8 codes of a signed moment, U8 of
 * a non-negative one; F32 scales) and there is one scale a block of the codes.
 */
function checkCompactEntries(
  codeEntry: TensorEntry,
  scaleEntry: TensorEntry,
  codesName: string,
  kind: StateTensor,
): void {
  const scalesName = codesName.replace(/\.codes$/, ".scales");
  const signed = !kind.nonNegative;
  checkDtype(
    codeEntry,
    signed ? "I8" : "U8",
    codesName,
    `the codes of a ${signed ? "signed" : "non-negative"} moment`,
  );
  checkDtype(scaleEntry, "F32", scalesName, "one scale a block");
  const n = codeEntry.end - codeEntry.begin;
  const blocks = blocksOf(n);
  if (scaleEntry.shape.length !== 1 || scaleEntry.shape[0] !== blocks) {
    throw new CheckpointError(
      `Tensor ${JSON.stringify(scalesName)} has shape [${
        scaleEntry.shape.join(",")
      }]; expected [${blocks}] (one scale per block of ${Q8_BLOCK} of its ${n} codes)`,
    );
  }
}

/**
 * A moment's codes and scales (their entries checked: `checkCompactEntries`), checked: no signed
 * code −128, each scale +0 or a positive normal finite number, and a block of scale 0 (zeros) all
 * codes 0.
 */
function compactValues(
  bytes: Uint8Array,
  dataStart: number,
  codeEntry: TensorEntry,
  scaleEntry: TensorEntry,
  codesName: string,
  kind: StateTensor,
): CompactMoment {
  const n = codeEntry.end - codeEntry.begin;
  const at = bytes.byteOffset + dataStart + codeEntry.begin;
  const codes = kind.nonNegative
    ? new Uint8Array(bytes.buffer, at, n)
    : new Int8Array(bytes.buffer, at, n);
  const scales = floats(bytes, dataStart, scaleEntry);
  const problem = compactProblem({ codes, scales }, codesName);
  if (problem) throw new CheckpointError(problem);
  return { codes, scales };
}

/**
 * What is wrong with a moment's codes and scales (`codesName`: its codes' tensor's): a scale
 * not +0 nor a positive normal finite number (−0 included), a signed code −128, a block of
 * scale 0 with a code not 0.
 */
function compactProblem(held: CompactMoment, codesName: string): string | undefined {
  const fault = codesFault(held.codes, held.scales);
  if (fault === undefined) return undefined;
  if (fault.element === undefined) {
    const scalesName = codesName.replace(/\.codes$/, ".scales");
    return `Tensor ${JSON.stringify(scalesName)}[${fault.block}] is ${
      signedNumber(fault.scale)
    }; expected +0 or a positive normal finite number`;
  }
  return `Tensor ${JSON.stringify(codesName)}[${fault.element}] is ${fault.code}; ${fault.why}`;
}

/**
 * Checks again, once copied into a state, the tensors of a file that `readTensors` checked
 * (`data`, by kind then name; views of the caller's bytes): a RangeError where one no longer
 * passes, its bytes changed during loadState's await (one more pass over the values, cheaper
 * than a copy of the file at the call), rather than a state holding what was never checked.
 */
export function recheckTensors(
  names: readonly string[],
  kinds: readonly StateTensor[],
  data: readonly Readonly<Record<string, HeldTensor>>[],
): void {
  kinds.forEach((kind, j) => {
    for (const name of names) {
      const held = data[j][name];
      const problem = held instanceof Float32Array
        ? valuesProblem(held, name + kind.suffix, kind.nonNegative)
        : compactProblem(held, `${name}${kind.suffix}.codes`);
      if (problem === undefined) continue;
      throw new RangeError(
        `The checkpoint's bytes changed while loadState() copied them, after its checks: ${problem} ` +
          "(the bytes are read after an await: leave them unchanged until the Promise settles, " +
          "or pass bytes.slice())",
      );
    }
  });
}

/**
 * Writes the checked tensors of a file (`data`, by kind then name) into a new state's backend:
 * as they are where the file and the state hold a moment alike (a resume is bit-exact),
 * encoded where the state holds codes of what the file holds as f32 values, decoded where the
 * reverse.
 */
export function restoreTensors(
  backend: AnyBackend,
  layout: ArenaLayout,
  kinds: readonly StateTensor[],
  data: readonly Readonly<Record<string, HeldTensor>>[],
): void {
  kinds.forEach((kind, j) => {
    const k = kind.moment;
    if (k !== undefined && holdsCodes(backend) && layout.compact.includes(true)) {
      const codes = backend.viewCompact(k);
      const values = backend.viewSection(kind.section);
      layout.names.forEach((name, i) => {
        const held = data[j][name];
        if (!layout.compact[i]) values[name].set(asValues(held, layout.lengths[i]));
        else if (held instanceof Float32Array) {
          encodeTensor(held, codes[name].codes, codes[name].scales);
        } else {
          codes[name].codes.set(held.codes);
          codes[name].scales.set(held.scales);
        }
      });
    } else if (k !== undefined && backend.kind === "device" && layout.compact.includes(true)) {
      // A device's compact tensors: their codes as the file holds them, or encoded from values.
      const values: Record<string, Float32Array> = Object.create(null);
      const codes: Record<string, CompactMoment> = Object.create(null);
      layout.names.forEach((name, i) => {
        const held = data[j][name];
        if (layout.compact[i] && !(held instanceof Float32Array)) codes[name] = held;
        else values[name] = asValues(held, layout.lengths[i]);
      });
      backend.writeSection(kind.section, values);
      backend.writeCompact(k, codes);
    } else {
      const values: Record<string, Float32Array> = Object.create(null);
      layout.names.forEach((name, i) => values[name] = asValues(data[j][name], layout.lengths[i]));
      backend.writeSection(kind.section, values);
    }
  });
}

/** The f32 values of `held` (decoded, for codes) of a tensor of `n` elements. */
function asValues(held: HeldTensor, n: number): Float32Array {
  if (held instanceof Float32Array) return held;
  const out = new Float32Array(n);
  decodeTensor(held.codes, held.scales, out);
  return out;
}
