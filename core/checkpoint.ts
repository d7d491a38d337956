/**
 * Checkpoints: an optimizer state written as a safetensors file and read back, on any backend.
 *
 * Tensors named as PyTorch users know them: each parameter under its own name (F32), and
 * `<name>.<moment>` (F32) for each moment its rule keeps (`exp_avg`, `exp_avg_sq` for
 * RAdam/Adam, `exp_avg` for Lion, `momentum_buffer` for SGD), or for a tensor whose moments are
 * 8-bit, `<name>.<moment>.codes` (I8, or U8 for `exp_avg_sq`) and `<name>.<moment>.scales` (F32,
 * one per block of 256: core/checkpoint_tensors.ts); `<name>.slow` (F32) for LookAhead's slow
 * weights. `__metadata__` (strings only) holds:
 *
 * - `format`: `"radam.checkpoint"`, `format_version`: `"1"`
 * - `optimizer`: a name of the registry (core/registry.ts: `"radam"`, `"adam"`, `"adamw"`,
 *   `"lion"`, `"sgd"`, `"ranger"`), or `"lookahead(<name>)"` (`"lookahead(ranger)"`, as 0.1.0
 *   named Ranger, reads as `"ranger"`)
 * - `hyperparameters`: JSON of the optimizer's options (as passed to its factory), as the
 *   schemas store them (the rule's, then the training-loop features'), with `lr` `null` when it
 *   was a schedule, and `lr_schedule`: `"true"` or `"false"`
 * - `step`, `skipped_steps`: decimal integers
 * - `tensor_order`: JSON array of the parameter names in the order given to `init` (or kept
 *   from the checkpoint the state was loaded from); the arena's order derives from it (8-bit
 *   states: base/arena_compact.ts), and so does the order of the tensors in the file
 * - `tensor_groups` (with parameter groups): JSON array of each tensor's group, in that order
 *   (1-based into `hyperparameters.groups`; 0: none)
 * - `states`: `"32bit"` or `"8bit"`, the format of the state's moments (absent: `"32bit"`), and
 *   `q8`, the version of the 8-bit codes, where the file holds some
 *
 * A state's holder may save more beside it (core/checkpoint_extras.ts): the TensorFlow.js
 * adapter's partial gradient sums (`<name>.accum`, F32, with `accum_count` in the metadata) and
 * moving averages (`<name>.average`, F32), after the F32 tensors of the state. Loading checks
 * them as the holder saves them (core/extra_tensors.ts), then leaves them (the adapter's
 * `loadState` reads them back).
 *
 * Loading validates the whole file before allocating the arena: see {@linkcode loadCheckpoint}.
 *
 * @module
 */
import type { ArenaLayout, CompactMoment } from "../base/arena.ts";
import { type AnyBackend, type DeviceCounter, holdsCodes } from "../base/backend.ts";
import { Q8_VERSION } from "../base/q8.ts";
import { checkCheckpointBytes } from "../base/_checkpoint_bytes.ts";
import { factoryName } from "../base/_call_hints.ts";
import { isOptimizerValue } from "../base/_errors.ts";
import { DISPOSED_STATE_MESSAGE, halfStepRefusal } from "../base/_state_errors.ts";
import {
  CheckpointError,
  type ParsedSafetensors,
  parseSafetensors,
  type TensorOut,
  writeSafetensors,
} from "../base/safetensors.ts";
import { checkKeys } from "../base/schema.ts";
import type { Settings } from "../base/settings.ts";
import { detachedError } from "../base/tensors.ts";
import { checkpointMetadata, checkpointTensors, checkSavableSize } from "./checkpoint_header.ts";
import { extrasOf } from "./checkpoint_extras.ts";
import { withExtraTensors } from "./extra_tensors.ts";
import {
  configOf,
  FORMAT,
  FORMAT_VERSION,
  type LoadOptions,
  meta,
  optionsOf,
  parseCount,
  readConfig,
  restoreSettings,
  type StoredSettings,
  storeSettings,
} from "./checkpoint_meta.ts";
import {
  firstBadScale,
  firstBadValue,
  readTensors,
  recheckTensors,
  restoreTensors,
  stateTensors,
} from "./checkpoint_tensors.ts";
import {
  CONSUMED_MESSAGE,
  groupsOf,
  halfStepOf,
  inLayoutOrder,
  type OptimizerState,
  planNamedState,
  restoreState,
  type StateInternals,
  stateInternals,
} from "./state.ts";

export {
  configOf,
  FORMAT,
  FORMAT_VERSION,
  type LoadOptions,
  optionsOf,
  restoreSettings,
  type StoredSettings,
  storeSettings,
};

/** The options `loadState` takes (see {@linkcode LoadOptions}). */
const LOAD_OPTIONS = Object.keys(
  {
    backend: true,
    lr: true,
    threads: true,
    threadThreshold: true,
    states: true,
    device: true,
  } satisfies Record<keyof LoadOptions, true>,
);

/** Writes a state as safetensors bytes; see `saveState` in mod.ts. */
export async function saveCheckpoint(
  state: OptimizerState<unknown>,
): Promise<Uint8Array<ArrayBuffer>> {
  // What its holder saves beside it (core/checkpoint_extras.ts), as it is at the call.
  const extras = extrasOf(state);
  // Where the device counts the steps, wait until it has reported every step submitted; its
  // reads then copy the sections at once, at these counts (later steps do not reach them).
  const first = stateInternals(state);
  if (first.backend.kind !== "host") await settledFor(state, first.backend.counter);
  // The groups' `match` functions are the caller's code, which may step or dispose the state:
  // they run before the arena is read (a state they consumed is then refused), not between.
  const groups = first.config.loop.groups.length > 0
    ? groupsOf(first.config, first.order)
    : undefined;
  const { config, backend, steps, skipped, shapes, order } = groups === undefined
    ? stateInternals(state)
    : afterMatch(state);
  const half = halfStepOf(backend);
  if (half !== undefined) {
    throw halfStepRefusal(
      "saveState refuses this threaded optimizer state",
      half,
      "a checkpoint",
      "saved",
      ", and dispose(state)",
    );
  }
  const layout = backend.layout;
  // A host arena is read in place, and written into the file before this call returns: an
  // await here would let the caller's next steps change it first (saveState(state).then(…),
  // then step on), a file of later values under this state's step count.
  const read = sectionsOf(config, backend);
  const sections = read instanceof Promise ? await read : read;
  const { tensors, codes } = tensorsOf(config, layout, shapes, order, sections);
  const metadata = checkpointMetadata(config, layout, { steps, skipped, order, groups, codes });
  if (extras === undefined) return writeSafetensors(tensors, metadata);
  // (A host arena's views are copied before the await: the file is of the state at the call.)
  const own = backend.kind === "host"
    ? tensors.map((t) => ({ ...t, data: t.data.slice() }))
    : tensors;
  const extra = await extras.tensors;
  return writeSafetensors(withExtraTensors(own, extra), { ...metadata, ...extras.metadata });
}

/**
 * The internals of `state` once its groups' `match` functions ran: a TypeError naming the match
 * where one stepped or disposed the state (it is then no longer live).
 */
function afterMatch(state: OptimizerState<unknown>): StateInternals {
  try {
    return stateInternals(state);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    const stepped = error.message === CONSUMED_MESSAGE;
    if (!stepped && error.message !== DISPOSED_STATE_MESSAGE) throw error;
    throw new TypeError(
      `A parameter group's match function ${
        stepped ? "stepped" : "disposed"
      } this state while saveState() called it (it is called on each tensor's name, to store ` +
        "the groups): nothing was written. A match should only test the name; save " +
        (stepped ? "the state that step() returned" : "a state a match leaves alone"),
      { cause: error },
    );
  }
}

/**
 * Waits for the device's step counts; a TypeError if `state` was stepped meanwhile (its counts
 * and sections are then of a later step than the call's).
 */
async function settledFor(
  state: OptimizerState<unknown>,
  counter: DeviceCounter,
): Promise<void> {
  await counter.settle();
  try {
    stateInternals(state);
  } catch (error) {
    if (!(error instanceof TypeError) || !/consumed/.test(error.message)) throw error;
    throw new TypeError(
      "The state was stepped before saveState() read it (WebGPU first waits for the GPU to report its steps): await saveState(state) before the next step",
      { cause: error },
    );
  }
}

/** The sections a checkpoint reads, and each moment's codes where the arena holds some. */
type Sections = readonly [
  readonly Readonly<Record<string, Float32Array>>[],
  readonly (Readonly<Record<string, CompactMoment>> | undefined)[],
];

/**
 * The sections of a state's arena that its checkpoint holds: views of a host arena, at once
 * (the file is then the only copy); a device's, read back, every read started before the first
 * await so that they all see the same step.
 */
function sectionsOf(config: Settings, backend: AnyBackend): Sections | Promise<Sections> {
  const layout = backend.layout;
  const kinds = stateTensors(config);
  if (backend.kind === "host") {
    return [
      kinds.map((k) => backend.viewSection(k.section)),
      kinds.map((k) =>
        k.moment !== undefined && holdsCodes(backend) ? backend.viewCompact(k.moment) : undefined
      ),
    ];
  }
  return Promise.all([
    Promise.all(kinds.map((k) => backend.readSection(k.section))),
    Promise.all(
      kinds.map((k) =>
        k.moment !== undefined && layout.compact.includes(true)
          ? backend.readCompact(k.moment)
          : undefined
      ),
    ),
  ]);
}

/**
 * The tensors a checkpoint of a state holds (F32 ones first, then the 8-bit codes, so that every
 * F32 tensor is 4-byte aligned in the file), checked finite: a state that is not could not be
 * loaded back. The error names the first tensor that is not in `order` (the state's: given to
 * `init`, or a checkpoint's), as a step's does, whatever order its arena keeps (an 8-bit one's
 * differs) and whichever format its moments are in.
 */
function tensorsOf(
  config: Settings,
  layout: ArenaLayout,
  shapes: readonly (readonly number[])[],
  order: readonly string[],
  [sections, compact]: Sections,
): { tensors: TensorOut[]; codes: boolean } {
  const kinds = stateTensors(config);
  const { tensors, codes } = checkpointTensors(config, layout, shapes, order);
  const failures: [string, RangeError][] = [];
  const out = tensors.map(({ name, shape, index, kind, part }): TensorOut => {
    const of = layout.names[index];
    if (part === "values") {
      const data = sections[kind][of];
      const bad = firstBadValue(data, kinds[kind].nonNegative);
      if (bad >= 0) failures.push([of, notFinite(name, bad, data[bad], kinds[kind].nonNegative)]);
      return { name, shape, data };
    }
    const held = compact[kind]![of]!;
    if (part === "codes") return { name, shape, data: held.codes };
    const bad = firstBadScale(held.scales);
    if (bad >= 0) failures.push([of, notFinite(name, bad, held.scales[bad], false)]);
    return { name, shape, data: held.scales };
  });
  if (failures.length > 0) throw firstIn(order, failures);
  return { tensors: out, codes };
}

/** The error of the failure whose tensor comes first in `order` (of one tensor: the first). */
function firstIn(order: readonly string[], failures: [string, RangeError][]): RangeError {
  const rank = new Map(order.map((name, i) => [name, i]));
  let first = failures[0];
  for (const failure of failures) if (rank.get(failure[0])! < rank.get(first[0])!) first = failure;
  return first[1];
}

/** The error of a state that cannot be saved: it would be refused on load. */
function notFinite(tensorName: string, i: number, value: number, nonNegative: boolean): Error {
  // Said now, while the run can still be inspected.
  return new RangeError(
    `Cannot checkpoint: ${JSON.stringify(tensorName)}[${i}] is ${value}; ` +
      `checkpoints hold only finite values${nonNegative ? " (≥ 0)" : ""}`,
  );
}

/**
 * Makes the backend a state resumes on; `fill` as core/state.ts `BackendFactory` says (called
 * during the call where the arena is made at once, else not at all).
 */
export type BackendMaker = (
  config: Settings,
) => (layout: ArenaLayout, fill?: (backend: AnyBackend) => void) => Promise<AnyBackend>;

/**
 * Reads a checkpoint into a new state on the chosen backend; see `loadState` in mod.ts.
 *
 * Everything is validated before the arena is allocated: the container (see
 * base/safetensors.ts), the metadata (format and version, optimizer, hyperparameters, step
 * counts, tensor order, the format of the moments and the version of their codes), that exactly
 * the expected tensors are present with one shape per parameter, and that every value is finite
 * (second moments also ≥ 0; codes and scales as core/checkpoint_tensors.ts checks them). Damage
 * throws a {@linkcode CheckpointError}; a missing schedule a TypeError. The values are then
 * copied during the call where the backend makes its arena at once; else after its await,
 * checked again once copied. `parsed`: `parseSafetensors(bytes)`, where the caller parsed the
 * file already (to read more of it: the TensorFlow.js adapter's sums and averages).
 */
export async function loadCheckpoint(
  bytes: Uint8Array,
  options: LoadOptions | undefined,
  makeBackend: BackendMaker,
  parsed?: ParsedSafetensors,
): Promise<OptimizerState<unknown>> {
  // The checkpoint first: loadState(optimizer, bytes) would read the bytes as options.
  checkCheckpointBytes(bytes);
  const held = " (the checkpoint holds its optimizer and options: loadState(bytes), " +
    "with { lr } for a schedule)";
  const factory = factoryName(options);
  if (isOptimizerValue(options) || factory !== undefined) {
    const got = factory === undefined ? "one" : `the factory ${factory}`;
    throw new TypeError(`loadState() takes no optimizer, got ${got} for its options${held}`);
  }
  options = checkKeys(
    options,
    LOAD_OPTIONS,
    "loadState",
    (lr) => `pass a learning rate as loadState(bytes, { lr: ${lr} })`,
    (key) => key === "optimizer" ? held : "",
  ) as LoadOptions;
  const file = parsed ?? parseSafetensors(bytes);
  const { metadata } = file;
  const read = readConfig(metadata, options);
  const config = read.config;
  const steps = parseCount(metadata, "step");
  // Skipped steps are not counted in `step` (a skipped step leaves the count as it was).
  const skipped = parseCount(metadata, "skipped_steps");
  const names = read.names();
  const kinds = stateTensors(config);
  const { lengths, shapes, data, codes } = readTensors(bytes, file, names, kinds);
  if (codes) checkCodes(metadata);
  // Everything is valid: only now allocate and fill.
  const { layout, inLayout } = planLoad(config, names, lengths, shapes);
  const length = bytes.byteLength;
  // The tensors (views of `bytes`) are copied as the arena is made, during this call, where the
  // backend can make it at once: what was just checked, in one pass. Else (WebGPU, a kernel not
  // yet compiled, bytes another thread may write at any time) after the await, checked again.
  let copied = false;
  const fill = isShared(bytes) ? undefined : (made: AnyBackend) => {
    restoreTensors(made, layout, kinds, data);
    copied = true;
  };
  const backend = await makeBackend(config)(layout, fill);
  try {
    if (!copied) {
      // A buffer transferred meanwhile (posted to a worker) is detached: its views hold nothing.
      if (bytes.byteLength !== length) {
        throw detachedError("the checkpoint's bytes", "loadState()", "bytes.slice()");
      }
      restoreTensors(backend, layout, kinds, data);
      recheckTensors(names, kinds, data); // (changed during the await: refused, not loaded)
    }
    return restoreState(config, backend, {
      steps,
      skipped,
      shapes: inLayout,
      order: names,
    });
  } catch (error) {
    backend.dispose(); // its workers or GPU buffers: no state holds them
    throw error;
  }
}

/**
 * The arena of the state a checkpoint's tensors make under `config` (`names` in `tensor_order`,
 * which `tensorOrder` has checked, with their `lengths` and `shapes`), and their shapes in its
 * order, planned as `loadState` plans it before anything is allocated; `checkpointInfo` plans the same, to refuse what it refuses. A
 * RangeError where the state's own checkpoint would pass the cap on a header's length: a file
 * within the cap may not be saved again (its step counts at their widest, another lr or format).
 */
export function planLoad(
  config: Settings,
  names: readonly string[],
  lengths: readonly number[],
  shapes: readonly (readonly number[])[],
): { layout: ArenaLayout; inLayout: (readonly number[])[] } {
  const layout = planNamedState(config, names, lengths); // (tensor_order: names checked)
  const inLayout = inLayoutOrder(layout, names, shapes);
  checkSavableSize(config, layout, inLayout, names);
  return { layout, inLayout };
}

/** Whether `bytes` lie in a SharedArrayBuffer (or one of another realm): others may write them. */
function isShared(bytes: Uint8Array): boolean {
  return !(bytes.buffer instanceof ArrayBuffer);
}

/** Throws unless a file holding 8-bit codes says so and holds codes of this version. */
export function checkCodes(metadata: Readonly<Record<string, string>>): void {
  if (meta(metadata, "states") !== "8bit") {
    throw new CheckpointError(
      `Checkpoint holds 8-bit codes, but its metadata states is ${JSON.stringify(metadata.states)}`,
    );
  }
  const version = meta(metadata, "q8");
  if (version !== Q8_VERSION) {
    throw new CheckpointError(
      `Checkpoint codes are of version ${JSON.stringify(version)}; this library reads ${
        JSON.stringify(Q8_VERSION)
      }`,
    );
  }
}
