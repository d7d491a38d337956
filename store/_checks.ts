/**
 * Checks of the arguments and options of the store's functions, and the wording of their
 * errors. Private to store/ and kv/.
 *
 * @module
 */
import type { LoadOptions, Optimizer } from "../mod.ts";
import { MAX_META_BYTES } from "./contract.ts";
import type { TrainingStore } from "./training.ts";
import { utf8Length } from "../base/_utf8.ts";
import { isThenable, optionValueHint, promiseHint, textHint } from "../base/_errors.ts";
import { factoryHint, scheduleStandInHint } from "../base/_call_hints.ts";
import { float32ConvertHint } from "../base/_input_hints.ts";
import { misplacedHint } from "../base/_option_names.ts";

/**
 * The error of an option that fails its check, worded as the library's own option errors
 * (`Option <name> must be <expected>, got <what it got>`; the store is built on mod.ts, with
 * base/_utf8.ts for its UTF-8 and base/_errors.ts and _call_hints.ts for its hints, and shows
 * values by its own {@linkcode described}, which gives a Float32Array's length; for 1 or 0 given
 * for a boolean, the boolean to write, as theirs): a RangeError
 * when `range` (by default, when the value is a number: out of range, NaN or infinite), else a
 * TypeError.
 */
export function optionError(
  name: string,
  expected: string,
  value: unknown,
  range: boolean = typeof value === "number",
): Error {
  const message = `Option ${name} must be ${expected}, got ${described(value)}${
    optionValueHint(name, expected, value)
  }`;
  return range ? new RangeError(message) : new TypeError(message);
}

/**
 * A value as an error message shows it after "got", as the library's own errors do: strings
 * quoted, arrays with their length, objects by their constructor's name (a `Float32Array` with
 * its length), a bigint with its `n` (`10n`, not the number 10), others as themselves.
 */
export function described(value: unknown): string {
  if (typeof value === "string") {
    return `a string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  }
  if (typeof value === "function") return "a function";
  if (typeof value === "bigint") return `a bigint ${value}n`; // not the number it holds
  if (value instanceof Float32Array) return `a Float32Array of ${value.length}`;
  if (Array.isArray(value)) return `Array(${value.length})`;
  if (typeof value === "object" && value !== null) return value.constructor?.name ?? "an object";
  return String(value);
}

/**
 * Throws a TypeError unless `optimizer` is an optimizer of the library (an object with `init`),
 * saying what it got; a factory given uncalled (`optimizer: radam`) is told to call it.
 */
export function checkOptimizerOption(optimizer: unknown): void {
  if (typeof optimizer === "object" && optimizer !== null) {
    if (typeof (optimizer as { init?: unknown }).init === "function") return;
  }
  throw new TypeError(
    `Option optimizer must be an optimizer, e.g. radam(), got ${described(optimizer)}${
      factoryHint(optimizer)
    }`,
  );
}

/**
 * What to add to an error about a value that should have been a `Float32Array`, as the
 * library's own errors add: for a Promise, to await it; for numbers in an `Array` (a gradient
 * decoded from JSON) or in a typed array of another type, how to convert them (a Node.js
 * `Buffer` of f32 bytes: how to take them). Empty for anything else (a `Float32Array` too).
 */
export function float32Hint(value: unknown): string {
  if (isThenable(value)) return promiseHint(value);
  const numbers = Array.isArray(value)
    ? value.length > 0 && value.every((x) => typeof x === "number")
    : ArrayBuffer.isView(value) && !(value instanceof Float32Array) &&
      !(value instanceof DataView) &&
      !(value instanceof BigInt64Array) && !(value instanceof BigUint64Array);
  return numbers ? float32ConvertHint(value) : "";
}

/**
 * Throws unless `meta` is undefined or a string (of text: no lone surrogate) of at most
 * {@linkcode MAX_META_BYTES} bytes of UTF-8.
 */
export function checkMeta(meta: unknown): asserts meta is string | undefined {
  if (meta === undefined) return;
  if (typeof meta !== "string") {
    throw new TypeError(`Checkpoint metadata must be a string, got ${typeof meta}`);
  }
  // Stored as UTF-8 where it is long (kv/format.ts), where a lone surrogate becomes U+FFFD:
  // it would load as another string than the one saved.
  const lone = /\p{Cs}/u.exec(meta);
  if (lone !== null) {
    throw new TypeError(
      `Checkpoint metadata must be text: it has a lone surrogate at ${lone.index}, which ` +
        "UTF-8 cannot hold",
    );
  }
  const size = utf8Length(meta);
  if (size > MAX_META_BYTES) {
    throw new RangeError(
      `Checkpoint metadata must be at most ${MAX_META_BYTES} bytes of UTF-8, got ${size}`,
    );
  }
}

/** Throws unless `bytes` is a non-empty Uint8Array and `expected` a string or null. */
export function checkSaveArguments(bytes: unknown, expected: unknown): void {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
    throw new TypeError("Checkpoint bytes must be a non-empty Uint8Array");
  }
  if (expected !== null && typeof expected !== "string") {
    throw new TypeError(
      `Expected version must be a string or null (an empty store), got ${typeof expected}`,
    );
  }
}

/**
 * Throws unless `options` (of the function `of`) is an object whose keys are all in `known`: a
 * misspelled option would otherwise be ignored, and with it what it asked for (a `tensors`
 * check, a staleness bound). A learning rate, or another library's name of an option, says
 * where it goes, as the optimizers' factories say (base/_option_names.ts `misplacedHint`);
 * `more` may add a hint of the caller's for a key none of those explains.
 */
export function checkOptionsObject(
  options: unknown,
  of: string,
  known: readonly string[],
  more: (key: string) => string = () => "",
): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(`Options of ${of} must be an object, got ${described(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(
        `Unknown option ${key} for ${of}; expected one of ${known.join(", ")}${
          resumeLrHint(key, known) || misplacedHint(key, known) || loadOptionHint(key, known) ||
          otherModeHint(key, of) ||
          more(key)
        }`,
      );
    }
  }
}

/**
 * Where an `lr` given among the options of a training loop goes: the optimizer's, for a state
 * `init` makes, but a stored checkpoint resumes with its own, which only `loadOptions.lr`
 * replaces (the optimizer's alone, as the factories' hint says, changes nothing mid-run).
 * Empty where `known` has no `loadOptions` or `key` is not `lr`.
 */
function resumeLrHint(key: string, known: readonly string[]): string {
  if (key !== "lr" || !known.includes("loadOptions")) return "";
  return " (lr is an option of the optimizer, optimizer: radam({ lr }), for a new state; a " +
    "stored checkpoint resumes with its own lr, which loadOptions: { lr } replaces)";
}

/**
 * Where a `loadState` option (`backend`, `states`…) given among the options of a training loop
 * goes: into `loadOptions` for a checkpoint loaded from the store, or the optimizer's own options
 * for a state `init` makes. Empty where `known` has no `loadOptions` or `key` is not one.
 */
function loadOptionHint(key: string, known: readonly string[]): string {
  if (!known.includes("loadOptions") || !LOAD_OPTIONS.includes(key)) return "";
  return ` (${key} is an option of loading a checkpoint, loadOptions: { ${key} }, or of the ` +
    `optimizer, optimizer: radam({ ${key} }))`;
}

/**
 * The data-parallel mode's own options, which `optimisticStep` does not take: every key of
 * `DataParallelOptions` that `OptimisticStepOptions` has not (a test derives that list from the
 * two interfaces and checks each key's hint).
 */
const DATA_PARALLEL_ONLY = [
  "staleness",
  "waitMs",
  "leaseMs",
  "maxFold",
  "handoffMs",
  "handoffLimit",
  "pollMs",
];

/**
 * `optimisticStep`'s own options, which `dataParallel` does not take (but `gradient` and `id`,
 * which have hints of their own): a test derives the list from the two interfaces.
 */
const OPTIMISTIC_ONLY = ["timeoutMs", "serialize", "maxAttempts", "backoffMs", "maxBackoffMs"];

/**
 * Where an option of the other training mode goes (`gradient` given to `dataParallel`, as
 * `optimisticStep` takes it, or `staleness` to `optimisticStep`). Empty for any other key.
 */
function otherModeHint(key: string, of: string): string {
  if (of === "dataParallel" && key === "gradient") {
    return " (in the data-parallel mode each request computes its gradient at " +
      "trainer.params()'s parameters and gives it: trainer.submit({ id, base, samples, gradient }))";
  }
  if (of === "optimisticStep" && DATA_PARALLEL_ONLY.includes(key)) {
    return ` (${key} is an option of the data-parallel mode, dataParallel(store, options))`;
  }
  if (of === "dataParallel" && key === "id") {
    return " (in the data-parallel mode each contribution gives its own id: " +
      "trainer.submit({ id, base, samples, gradient }))";
  }
  if (of === "dataParallel" && OPTIMISTIC_ONLY.includes(key)) {
    return ` (${key} is an option of the other training mode, optimisticStep(store, options))`;
  }
  return "";
}

/**
 * What an option of `optimizer` (its hyperparameters, training-loop and LookAhead options, as
 * its settings name them, `betas` for `beta1`/`beta2`) given in `loadOptions` does instead: a
 * stored checkpoint keeps its own. Empty for any other key (`lr` is a load option).
 */
function keptOnResumeHint(key: string, optimizer: unknown): string {
  const settings = (optimizer as Partial<Optimizer> | undefined)?.settings;
  if (typeof settings !== "object" || settings === null) return "";
  const { hyperparameters, loop, lookahead } = settings;
  const names = [hyperparameters, loop, lookahead ?? {}].flatMap((o) => Object.keys(o));
  if (names.includes("beta1")) names.push("betas");
  return names.includes(key)
    ? ` (a stored checkpoint resumes with its own ${key}, whatever the optimizer's: it cannot ` +
      "change on resume; start a new store from its parameters to change it)"
    : "";
}

/** The options `loadState` takes (each one of its `LoadOptions`, and every one). */
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

/**
 * Checks the options `tensors` (name → number of values, each an integer ≥ 0) and `loadOptions`
 * (an object of `loadState`'s options) of the function `of` when it is called, not only when a
 * request first compares a checkpoint with them or loads one: on an empty store a misspelled
 * load option would pass unseen until the next request, and `tensors: { w: "2" }` was refused
 * as "has 2 values, expected 2".
 */
export function checkModelOptions(
  options: {
    readonly tensors?: unknown;
    readonly loadOptions?: unknown;
    readonly optimizer?: unknown;
  },
  of: string,
): void {
  const { tensors, loadOptions, optimizer } = options;
  if (tensors !== undefined) {
    if (typeof tensors !== "object" || tensors === null || Array.isArray(tensors)) {
      throw optionError("tensors", "an object of tensor lengths by name", tensors, false);
    }
    for (const [name, length] of Object.entries(tensors)) {
      checkCount(`tensors[${JSON.stringify(name)}]`, length, 0, true);
    }
  }
  if (loadOptions !== undefined) {
    checkOptionsObject(
      loadOptions,
      `${of}'s loadOptions`,
      LOAD_OPTIONS,
      (key) => keptOnResumeHint(key, optimizer),
    );
    // (loadState refuses it too, but only at the first load: on an empty store, much later.)
    const standIn = scheduleStandInHint((loadOptions as { lr?: unknown }).lr);
    if (standIn !== "") {
      throw new TypeError(
        `Option loadOptions.lr must be a number or a schedule (t) => lr, got ${standIn}`,
      );
    }
  }
}

/**
 * The option `name`'s value: a number ≥ `min` (an integer with `integer`), finite unless
 * `infinite`; otherwise an error naming it, as every option's: a TypeError for a value that is
 * not a number, a RangeError for a number out of range (NaN included).
 */
export function checkCount(
  name: string,
  value: unknown,
  min: number,
  integer: boolean,
  infinite = false,
): number {
  if (
    typeof value !== "number" || !(value >= min) || (value === Infinity && !infinite) ||
    (integer && !Number.isInteger(value) && value !== Infinity)
  ) {
    const what = integer ? "an integer" : infinite ? "a number" : "a finite number";
    throw optionError(name, `${what} ≥ ${min}`, value);
  }
  return value;
}

/** The longest `rememberMs`, within what Deno KV takes as `expireIn` (about 8·10¹⁵ ms). */
const MAX_REMEMBER_MS = 1e15;

/**
 * The stores' option `rememberMs`: an integer from 1 to 10¹⁵, as Deno KV's `expireIn` takes it
 * (it refuses a fraction, or one past about 8·10¹⁵, at every write of a request's record); both
 * stores take the same values.
 */
export function checkRememberMs(value: unknown): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > MAX_REMEMBER_MS
  ) {
    throw optionError("rememberMs", `an integer from 1 to ${MAX_REMEMBER_MS}`, value);
  }
  return value;
}

/**
 * What to add to the error for `store` given where `call`'s store goes: where it is `call`'s
 * options (an object with an `optimizer`), given first, that the store goes first.
 */
function swappedHint(store: unknown, call: string | undefined): string {
  if (call === undefined || typeof store !== "object" || store === null) return "";
  if (!("optimizer" in store)) return "";
  return ` (the options came first: ${call} takes the store first, ${call}(store, options))`;
}

/**
 * Throws a TypeError unless `store` has a checkpoint store's `load` and `save` (a Deno.Kv
 * given as it is, not as `kvCheckpointStore(kv, key)`, has neither). `call`, the function it
 * was given to, says so where its options were given in its place.
 */
export function checkStore(store: unknown, call?: string): void {
  const s = store as Record<string, unknown> | null;
  if (typeof s?.load !== "function" || typeof s?.save !== "function") {
    throw new TypeError(
      `Expected a checkpoint store, e.g. kvCheckpointStore(kv, key), got ${described(store)}${
        swappedHint(store, call)
      }`,
    );
  }
}

/**
 * Throws a TypeError naming option `name` and what it got unless `value` is a function (or,
 * where not `required`, undefined); an `init` that is not one says what it must return, a
 * `meta` given as the metadata itself how to give it.
 */
export function checkFunctionOption(name: string, value: unknown, required: boolean): void {
  if (typeof value === "function" || (value === undefined && !required)) return;
  const hint = name === "init" && value !== undefined
    ? " (a function that returns the parameters, called when the store holds no checkpoint: " +
      "init: () => params)"
    : name === "meta" && value !== null
    ? " (a function that gives each new checkpoint's metadata, a string, from the previous " +
      "one's and the new step: meta: (previous, step) => JSON.stringify({ step, … }))"
    : "";
  throw new TypeError(`${optionError(name, "a function", value, false).message}${hint}`);
}

/**
 * The methods a TrainingStore has that a training loop calls (all but `save`, which the
 * conformance kit checks too).
 */
export const TRAINING_METHODS = [
  "load",
  "head",
  "loadParams",
  "commit",
  "request",
  "submit",
  "pending",
  "gradient",
  "acquire",
  "release",
  "waiting",
  "journal",
] as const satisfies readonly (keyof TrainingStore)[];

/** The methods a TrainingStore has; a TypeError naming the first one missing. */
export function checkTrainingStore(
  store: unknown,
  what: string,
  call?: string,
): asserts store is TrainingStore {
  const missing = TRAINING_METHODS.find((m) =>
    typeof (store as Record<string, unknown> | null)?.[m] !== "function"
  );
  if (missing !== undefined) {
    throw new TypeError(
      `${what} needs a store that keeps the TrainingStore contract (kvCheckpointStore, ` +
        `memoryCheckpointStore); this one has no ${missing}()${swappedHint(store, call)}`,
    );
  }
}

/**
 * Throws unless `token` is a lease's token, as a request id is (see {@linkcode checkRequestId}:
 * Deno KV keys a waiting note by it, within the room a store's prefix leaves), and, for `acquire`,
 * `ms` a lease's term (given or not): a finite number > 0 (a TypeError for what is not a number,
 * `undefined` among them, else a RangeError). The stores took any: a term of NaN or Infinity was a
 * lease's end, and a token too long for a key was Deno KV's own error, naming neither.
 */
export function checkLeaseAsk(call: "acquire" | "release", token: unknown, ms?: unknown): void {
  checkRequestId(token, `The lease's token (${call}'s first argument)`);
  if (call === "release") return;
  if (typeof ms !== "number" || !(ms > 0) || ms === Infinity) {
    const message = `The lease's term (acquire's ms) must be a finite number > 0, got ${
      described(ms)
    }`;
    throw typeof ms === "number" ? new RangeError(message) : new TypeError(message);
  }
}

/**
 * Throws a TypeError unless `id` is a request id: a string of 1 to 64 UTF-16 units that is
 * text (no lone surrogate: Deno KV keeps a key's string as UTF-8, where each becomes U+FFFD,
 * so that two such ids would be one, and the second answered as the first's duplicate).
 * `what` names it ("Option id", "A contribution's id").
 */
export function checkRequestId(id: unknown, what: string): asserts id is string {
  if (typeof id !== "string" || id.length < 1 || id.length > 64) {
    const got = typeof id === "string" ? `${id.length} characters` : described(id);
    throw new TypeError(`${what} must be a string of 1 to 64 characters, got ${got}`);
  }
  const lone = /\p{Cs}/u.exec(id);
  if (lone !== null) {
    throw new TypeError(
      `${what} must be text: it has a lone surrogate (\\u${
        lone[0].charCodeAt(0).toString(16)
      }) at ${lone.index}, which a database that keeps text as UTF-8 cannot tell from another`,
    );
  }
}

/**
 * A rejected promise unless `limit` is an integer ≥ 0 or Infinity and `from` (for `journal`) a
 * number, not NaN: the arguments of a store's listing `method`; a TypeError for what is not a
 * number, else a RangeError. Null when they hold. (The stores answered others each its own
 * way: the in-process one took a negative limit as "all but that many", Deno KV threw its own
 * errors; a `from` left out listed nothing in one and was Deno KV's own TypeError in the other.)
 * A number as text says to convert it; an argument left out, how the call is written.
 */
export function refusedListing(
  method: "journal" | "pending",
  limit: unknown,
  from: unknown = method === "pending" ? 0 : undefined,
): Promise<never> | null {
  const bad = typeof from !== "number" || Number.isNaN(from)
    ? ["from", "a number", from] as const
    : typeof limit !== "number" ||
        !(limit === Infinity || (Number.isInteger(limit) && limit >= 0))
    ? ["limit", "an integer ≥ 0 or Infinity", limit] as const
    : null;
  if (bad === null) return null;
  const [name, expected, value] = bad;
  const message = `${method}'s ${name} must be ${expected}, got ${described(value)}${
    value === undefined ? listingCallHint(method) : textHint(expected, value)
  }`;
  return Promise.reject(
    typeof value === "number" ? new RangeError(message) : new TypeError(message),
  );
}

/** How a listing is called, for an argument left out. */
function listingCallHint(method: "journal" | "pending"): string {
  return method === "journal"
    ? " (it takes two: journal(from, limit), the first step and how many records at most; " +
      "journal(0, Infinity) lists every record kept)"
    : " (pending(limit), how many at most; pending(Infinity) lists every one)";
}

/** What a closed trainer's calls say: close() ended it, and what to do instead. */
export const CLOSED_TRAINER_MESSAGE =
  "This trainer is closed (its close() was called): make a new one, dataParallel(store, options)";
