/**
 * What a checkpoint holds, read from its header alone: the optimizer and its settings, the step
 * counts, the tensors' names and shapes, the format of the moments, and what a holder saved
 * beside the state; checked as `loadState` checks them, with no tensor's values read.
 *
 * @module
 */
import type { ArenaLayout } from "../base/arena.ts";
import { scheduleStandIn } from "../base/_call_hints.ts";
import { checkCheckpointBytes } from "../base/_checkpoint_bytes.ts";
import type { StatesFormat } from "../base/options.ts";
import { parseSafetensors } from "../base/safetensors.ts";
import type { Settings } from "../base/settings.ts";
import { checkCodes, planLoad } from "./checkpoint.ts";
import { parseCount, readConfig } from "./checkpoint_meta.ts";
import { readTensors, stateTensors } from "./checkpoint_tensors.ts";
import { EXTRA_SUFFIXES, isExtraTensor } from "./extra_tensors.ts";
import { holdingLearningRate, READ_ONLY_SCHEDULE } from "./options.ts";
import { planOptionsOf } from "./plan.ts";
import { wasmMemoryBytes } from "../cpu/wasm_backend.ts";
import { centralizedBindingBytes, gpuBufferBytes, planGpuLayout } from "../gpu/arena_layout.ts";

/**
 * What {@linkcode checkpointInfo} reads from a checkpoint's header: plain values, frozen.
 *
 * @example
 * ```ts
 * import { type CheckpointInfo, checkpointInfo, radam, saveState } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const bytes = await saveState(await radam({ lr: 3e-4 }).init({ w: new Float32Array(2) }));
 * const info: CheckpointInfo = checkpointInfo(bytes);
 * assert.equal(info.settings.hyperparameters.lr, 3e-4);
 * assert.deepEqual(info.shapes, { w: [2] });
 * ```
 */
export interface CheckpointInfo {
  /**
   * The optimizer's name (`settings.name`): `"radam"`, `"adam"`, `"adamw"`, `"lion"`, `"sgd"`,
   * `"ranger"`, or `"lookahead(<one of them but ranger>)"`.
   */
  readonly optimizer: string;
  /**
   * The optimizer's settings, as its `settings` presents them, rebuilt from the header: its
   * hyperparameters (a constant `lr` included), `loop` (`clipGradNorm`, `nonFinite`, `gc`, the
   * parameter `groups`, each with its `lrScale` and `weightDecay` and a `match` that takes
   * exactly the tensors the file puts in it) and `lookahead` (`k`, `alpha`). `run` is how
   * `loadState(bytes)` would resume it, since checkpoints store none of it but the format of the
   * moments: backend `"auto"`, one thread, and the file's `states`. Where the state was trained
   * on a schedule (`lrSchedule`), which no checkpoint can store, `hyperparameters.lr` is a
   * stand-in that throws a TypeError when called: pass the schedule to `loadState(bytes, { lr })`.
   * Given for a schedule (an optimizer's `lr`, `loadState`'s, a store's `loadOptions.lr`, a part
   * of `chain()`), the stand-in is refused at once with a TypeError saying so, and so are these
   * settings, holding it, where an optimizer's are read (`lookahead()`, `tfOptimizer()`).
   */
  readonly settings: Settings;
  /** Whether `lr` was a schedule (the file's `lr_schedule`): `loadState` then needs `{ lr }`. */
  readonly lrSchedule: boolean;
  /** Steps taken (`state.step` of the state saved). */
  readonly step: number;
  /** Steps skipped by the non-finite guard (`state.skippedSteps`). */
  readonly skippedSteps: number;
  /** The parameters' names, in the order given to `init` (the file's `tensor_order`). */
  readonly names: readonly string[];
  /** Each parameter's shape, by name. */
  readonly shapes: Readonly<Record<string, readonly number[]>>;
  /**
   * How the state held its moments (`"32bit"` or `"8bit"`; the file's `states`, `"32bit"` where
   * an older file lacks it): `loadState` resumes in it unless given another.
   */
  readonly states: StatesFormat;
  /**
   * What the state's holder saved beside it (the TensorFlow.js adapter): the shapes of its
   * gradients accumulated (`<variable>.accum`, the calls summed in `metadata.accum_count`) and
   * of its moving averages (`<variable>.average`), by variable name; `{}` where none.
   */
  readonly extras: {
    readonly accumulated: Readonly<Record<string, readonly number[]>>;
    readonly averages: Readonly<Record<string, readonly number[]>>;
  };
  /**
   * The memory the state takes on each backend, in bytes, as `loadState(bytes)` plans it (its
   * moments in the file's `states`: `loadState`'s option `states` changes it), from the header
   * alone: nothing is allocated here. Compare it with a backend's limits before loading:
   * `loadState` refuses, with a RangeError before it allocates anything, a state above wasm's or
   * the WebGPU device's (below), and one whose arena the runtime cannot allocate.
   */
  readonly memory: {
    /** The arena of backend `"js"` (one ArrayBuffer). */
    readonly js: number;
    /**
     * The WebAssembly memory of a state on wasm on one thread (as `loadState(bytes)` resumes
     * it), at most, in whole 64 KiB pages (the arena, its descriptor and scalars, and a page for
     * the kernel's data): above 4 GiB (2³² bytes), what 32-bit WebAssembly addresses,
     * `loadState` on wasm refuses it, with backend `"wasm"` or `"auto"` where the kernel runs
     * (Deno, Node.js, browsers: `loadState(bytes)`), which does not fall back to `"js"`.
     *
     * On `threads: T` (T > 1) the state's shared memory holds more: a control block of 256
     * bytes, the norm's partial sums (8 bytes for each 16384 elements of the arena, ⌈n / 16384⌉
     * × 8 rounded up to a multiple of 64; n the parameters and the gaps that align its tensors),
     * and, with 8-bit moments, 2 KiB of scratch for each thread after the first: E bytes in
     * all. Its memory is this figure, or up to ⌈E / 65536⌉ pages more (none or one for millions
     * of parameters; under 1 MiB however many), and `loadState` on threads refuses it above
     * 4 GiB.
     */
    readonly wasm: number;
    /**
     * The largest GPU buffer of a state on WebGPU: a section of its arena (each tensor at a
     * 256-byte boundary), or, where that is smaller (a small model, or many parameter groups),
     * the ring of its step scalars (68 KiB for each group and one more): above its device's
     * `limits.maxBufferSize`, `loadState` on webgpu refuses it.
     */
    readonly webgpuBuffer: number;
    /**
     * The largest storage binding a state on WebGPU binds whole, in bytes: under option `gc`,
     * which centralizes each tensor of rank > 1 per row (`shape[0]` rows of the other
     * dimensions' product), the window of its longest row, bound from the 256-byte aligned
     * offset at or before the row's start (the row's bytes, and up to 252 more), or 32 bytes
     * where that is less (the table of the runs of rows bound beside a window); 0 without `gc`
     * or where no tensor is of rank > 1 (the step binds the sections in chunks of any size). The
     * same in any order of the tensors, loadState's or a WebGPU `init`'s of them: each tensor
     * starts at a 256-byte boundary, so where its rows start past one is its own.
     * Above its device's `limits.maxStorageBufferBindingSize` (128 MiB by default: rows of
     * about 33.5 million elements), or its `maxBufferSize` where that is smaller, `loadState` on
     * webgpu refuses it with a RangeError naming the tensor, before it steps; a CPU backend takes
     * it. (On a device whose `minStorageBufferOffsetAlignment` is below 256, up to that many
     * bytes less may do.)
     */
    readonly webgpuBinding: number;
  };
  /**
   * The header's `__metadata__`, every entry as the file holds it (strings; README
   * "Checkpoints" lists the library's keys). `saveState` writes no others: checkpoints keep no
   * metadata of the caller's, but entries another writer added are here, and ignored by
   * `loadState`.
   */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Reads a checkpoint's header: the optimizer and settings it resumes with (`lr` included), its
 * step counts, tensors and format, without loading it. For a stored checkpoint's learning rate
 * and hyperparameters, before changing one with `loadState(bytes, { lr })` (or a store's
 * `loadOptions: { lr }`), or to list a file's tensors.
 *
 * Needs no permissions, allocates nothing in proportion to the data and reads no tensor's
 * values, yet checks what it reads as {@linkcode loadState} does, refusing what it would refuse
 * with the same error: a `TypeError` where `bytes` is no `Uint8Array`, and a `CheckpointError`
 * naming the problem for a file that is no checkpoint of this library or is damaged in its
 * header (format, optimizer, hyperparameters, counts, tensor order, each tensor's dtype and
 * shape, missing or unexpected tensors), and the `RangeError` of a state `loadState` would not
 * make, whose own checkpoint would pass the cap on a header's length (another writer's file just
 * under it: its step counts may take more digits). It takes the whole file: one cut short is
 * refused as truncated, as `loadState` refuses it (the header gives each tensor's bytes, which
 * must be there). What only the values show, a NaN or a negative second moment, is not looked
 * for: `loadState` still refuses such a file. No backend is chosen here, so none's limits refuse
 * the file; {@linkcode CheckpointInfo.memory} gives the bytes the state needs on each (wasm's
 * 4 GiB, the WebGPU device's largest buffer and, under `gc`, its largest binding), which
 * `loadState` refuses above them, on the
 * backend it resumes on. A file saved with a schedule needs no `lr` here (see
 * {@linkcode CheckpointInfo.settings}).
 *
 * @example What a stored checkpoint holds, and a resume with another lr
 * ```ts
 * import { adamw, checkpointInfo, loadState, saveState, step } from "@optim/radam";
 * import assert from "node:assert/strict";
 *
 * const opt = adamw({ lr: 1e-3, weightDecay: 0.05, clipGradNorm: 1 });
 * let state = await opt.init({ "fc.weight": { data: new Float32Array(6), shape: [2, 3] } });
 * state = step(state, { "fc.weight": new Float32Array(6).fill(0.1) });
 * const bytes = await saveState(state);
 *
 * const info = checkpointInfo(bytes);
 * assert.equal(info.optimizer, "adamw");
 * assert.equal(info.settings.hyperparameters.lr, 1e-3);
 * assert.equal(info.settings.hyperparameters.weightDecay, 0.05);
 * assert.equal(info.settings.loop.clipGradNorm, 1);
 * assert.equal(info.step, 1);
 * assert.deepEqual(info.names, ["fc.weight"]);
 * assert.deepEqual(info.shapes["fc.weight"], [2, 3]);
 * assert.equal(info.states, "32bit");
 * assert.ok(info.memory.wasm < 2 ** 32); // it fits wasm (loadState's "auto" here)
 *
 * const resumed = await loadState(bytes, { lr: info.settings.hyperparameters.lr as number / 10 });
 * assert.equal(resumed.step, 1);
 * assert.throws(() => checkpointInfo(bytes.subarray(0, 100)), /truncated/);
 * ```
 */
export function checkpointInfo(bytes: Uint8Array): CheckpointInfo {
  checkCheckpointBytes(bytes);
  const file = parseSafetensors(bytes);
  const { metadata } = file;
  const lrSchedule = Object.hasOwn(metadata, "lr_schedule") && metadata.lr_schedule === "true";
  // As loadState(bytes) reads it; with a schedule, as loadState(bytes, { lr }) does, then
  // holding the stand-in, which no option takes, for that lr.
  const read = readConfig(metadata, lrSchedule ? { lr: READ_ONLY_SCHEDULE } : {});
  const settings = lrSchedule ? holdingLearningRate(read.config, UNSTORED_SCHEDULE) : read.config;
  const step = parseCount(metadata, "step");
  const skippedSteps = parseCount(metadata, "skipped_steps");
  const names = read.names();
  const kinds = stateTensors(settings);
  const { lengths, shapes, codes } = readTensors(bytes, file, names, kinds, false);
  if (codes) checkCodes(metadata);
  // The state's arena planned, as loadState plans it: what it refuses there, refused here.
  const { layout } = planLoad(settings, names, lengths, shapes);
  const shapeOf = new Map(names.map((name, i) => [name, shapes[i]]));
  const own = stateTensorNames(names, kinds);
  const extras = (suffix: string) =>
    frozenRecord(
      [...file.tensors].filter(([name]) =>
        !own.has(name) && isExtraTensor(name) && name.endsWith(suffix)
      ).map(([name, entry]) => [name.slice(0, -suffix.length), entry.shape]),
    );
  return Object.freeze({
    optimizer: settings.name,
    settings,
    lrSchedule,
    step,
    skippedSteps,
    names: Object.freeze(names),
    shapes: frozenRecord(names.map((name, i) => [name, shapes[i]])),
    states: settings.run.states,
    extras: Object.freeze({
      accumulated: extras(EXTRA_SUFFIXES[0]),
      averages: extras(EXTRA_SUFFIXES[1]),
    }),
    memory: memoryOf(settings, layout, (name) => shapeOf.get(name)!),
    metadata: Object.freeze({ ...metadata }),
  });
}

/**
 * {@linkcode CheckpointInfo.memory} of a state of `config` on the host arena `layout`, its
 * tensors of the shapes `shapeOf` gives by name.
 */
function memoryOf(
  config: Settings,
  layout: ArenaLayout,
  shapeOf: (name: string) => readonly number[],
): CheckpointInfo["memory"] {
  // The GPU's arena of the host's tensors, as loadState lays it out (core/webgpu_state.ts).
  const options = planOptionsOf(config, layout.names);
  const gpu = planGpuLayout(layout.names, layout.lengths, options, config.run.states);
  return Object.freeze({
    js: layout.byteLength,
    wasm: wasmMemoryBytes(layout),
    webgpuBuffer: gpuBufferBytes(gpu),
    webgpuBinding: config.loop.gc ? centralizedBindingBytes(gpu, gpu.names.map(shapeOf)) : 0,
  });
}

/**
 * The names of the state's own tensors, a moment's in either form (a parameter's name may end
 * in `.average`: it is no extra).
 */
function stateTensorNames(
  names: readonly string[],
  kinds: ReturnType<typeof stateTensors>,
): Set<string> {
  const own = new Set<string>();
  for (const name of names) {
    for (const k of kinds) {
      own.add(name + k.suffix).add(`${name}${k.suffix}.codes`).add(`${name}${k.suffix}.scales`);
    }
  }
  return own;
}

/**
 * A frozen record of frozen shapes (own properties: a variable saved beside may be `"__proto__"`).
 */
function frozenRecord(
  entries: readonly (readonly [string, readonly number[]])[],
): Readonly<Record<string, readonly number[]>> {
  return Object.freeze(
    Object.fromEntries(entries.map(([name, shape]) => [name, Object.freeze([...shape])])),
  );
}

/**
 * The `lr` of the settings of a checkpoint saved with a schedule: functions cannot be stored, so
 * this stands in for it, and says so where it is called; given as a schedule (an optimizer's
 * `lr`, `loadState`'s, a part of `chain()`), it is refused at once.
 */
const UNSTORED_SCHEDULE = scheduleStandIn(
  Object.freeze(function unstoredSchedule(_t: number): number {
    throw new TypeError(
      "This checkpoint was saved with a learning-rate schedule, which cannot be stored: its " +
        "checkpointInfo() settings hold this stand-in; pass the schedule as loadState(bytes, { lr })",
    );
  }),
  "the stand-in that checkpointInfo() gives for the schedule of a checkpoint saved with one",
);
