/**
 * The words of errors about optimizer states: one that was disposed, `undefined` where a state
 * goes, and what else was given in its place. Private to the library; values are worded by
 * `_errors.ts`.
 *
 * @module
 */
import { factoryName } from "./_call_hints.ts";
import { isIdentifier, isOptimizerValue, isStateLike, memberAccess } from "./_errors.ts";
import { refusingReads } from "./_read_hints.ts";
import { isRecord } from "./tensors.ts";

/**
 * The error of a disposed state used (stepped, read, saved): it says that `dispose` ended every
 * state of its line, and how to start one again.
 *
 * @example
 * ```ts
 * import { DISPOSED_STATE_MESSAGE } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(DISPOSED_STATE_MESSAGE, /^This optimizer state was disposed \(/);
 * ```
 */
export const DISPOSED_STATE_MESSAGE = "This optimizer state was disposed (dispose ends it and " +
  "every state step() made from it: start again from await opt.init(params), or from a " +
  "checkpoint saved before, await loadState(bytes))";

/**
 * The TypeError of a threaded state refused because a step of it failed half way (`half` says
 * how: a thread failed as the step ran), so that it may hold part of that step: `refusal` says
 * who refuses what (`saveState refuses this threaded optimizer state`), `keeper` what would keep
 * that part (`a checkpoint`), `made` what was not (`saved`), and `also` what else to do after the
 * resume from a checkpoint saved before. The one wording of `saveState`'s, init's option `from`'s
 * and the TensorFlow.js adapter's refusals.
 *
 * @example
 * ```ts
 * import { halfStepRefusal } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * const error = halfStepRefusal(
 *   "saveState refuses this threaded optimizer state",
 *   "a kernel worker failed (RuntimeError: unreachable)",
 *   "a checkpoint",
 *   "saved",
 *   ", and dispose(state)",
 * );
 * assert.ok(error instanceof TypeError);
 * assert.match(error.message, /^saveState refuses .*: a step of it failed half way \(a kernel/);
 * assert.match(error.message, /which a checkpoint would keep\. Nothing was saved: resume/);
 * ```
 */
export function halfStepRefusal(
  refusal: string,
  half: string,
  keeper: string,
  made: string,
  also: string,
): TypeError {
  return new TypeError(
    `${refusal}: a step of it failed half way (${half}), so it may hold part of that step, ` +
      `which ${keeper} would keep. Nothing was ${made}: resume from the last checkpoint saved ` +
      `before that step (loadState)${also}`,
  );
}

/**
 * The hint of `undefined` given where an optimizer state goes: how a state is made, and why a
 * TensorFlow.js optimizer's `state` is undefined (no step has made it yet: before its first step
 * or while its `loadState`'s Promise has not settled, and after its `setWeights`, or a
 * `loadState` of a checkpoint laid out otherwise, until the next) and how its state is saved then.
 */
export const UNDEFINED_STATE_HINT = " (no state yet: make one with await opt.init(params) or " +
  "await loadState(bytes); a TensorFlow.js optimizer's state, optimizer.state, is undefined until " +
  "its first step (applyGradients, or model.fit's first batch) makes it, or its loadState once " +
  "awaited, await optimizer.loadState(bytes) (a Promise), and again after its " +
  "setWeights, or a loadState of a checkpoint laid out otherwise (other moments, gc or states), " +
  "until the next step: until then, what it holds (its step count, " +
  "moments loaded, gradients accumulated) is in await optimizer.getWeights(), which model.save(handler, " +
  "{ includeOptimizer: true }) saves)";

/**
 * The hint of a Promise given where an optimizer state goes: an `await` was forgotten on `init`
 * or `loadState`, and how the call is written with it.
 */
export const PROMISE_STATE_HINT = " (init() and loadState() return a Promise: await it, " +
  "const state = await opt.init(params), or await loadState(bytes))";

/** What the Promise of each read or save of a state that {@linkcode markRead} marks holds. */
const READS = {
  readParams: "copies of the parameters",
  readMoments: "copies of the moments",
  readSlowWeights: "copies of the slow weights",
  saveState: "the checkpoint's bytes",
} as const;

/** The call that made each Promise {@linkcode markRead} marked. */
const readBy = new WeakMap<object, keyof typeof READS>();

/**
 * Returns `promise`, which `call` (`"readParams"`, `"readMoments"`, `"readSlowWeights"`,
 * `"saveState"`) returned, marked as that call's: given where a state goes
 * (`readMoments(readParams(state))`), the error names that call and says to give the state
 * itself, not that `init()` or `loadState()` returns a Promise.
 *
 * @example
 * ```ts
 * import { markRead, stateHint } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * const read = markRead(Promise.resolve({}), "readParams");
 * assert.match(stateHint(read), /^ \(readParams\(\) returns a Promise of copies/);
 * ```
 */
export function markRead<P extends Promise<unknown>>(promise: P, call: keyof typeof READS): P {
  readBy.set(promise, call);
  return promise;
}

/** The hint of a Promise that {@linkcode markRead} marked, given where a state goes. */
function readPromiseHint(value: object): string | undefined {
  const call = readBy.get(value);
  if (call === undefined) return undefined;
  const after = call === "saveState"
    ? "; a state is made of those bytes by await loadState(bytes)"
    : "";
  return ` (${call}() returns a Promise of ${READS[call]}, not a state: pass the state ` +
    `itself, as ${call}(state) takes it${after})`;
}

/** How a state's checkpoint is saved and resumed, as the errors write the calls. */
export interface CheckpointCalls {
  /** The call that saves it, e.g. `await saveState(state)`. */
  readonly save: string;
  /** The call that resumes from its bytes, e.g. `await loadState(bytes)`. */
  readonly resume: string;
}

/** The calls of a state of one's own. */
const DEFAULT_CALLS: CheckpointCalls = {
  save: "await saveState(state)",
  resume: "await loadState(bytes)",
};

/**
 * The error of `JSON.stringify(state)`, which would otherwise write `{}` (a state's tensors live
 * in its backend, not in properties of its own): that a state is not JSON, how to keep one as
 * bytes, or as text, and how to write an object that holds one (as `optimisticStep`'s result).
 *
 * @example
 * ```ts
 * import { STATE_JSON_MESSAGE } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(STATE_JSON_MESSAGE, /await saveState\(state\)/);
 * ```
 */
export const STATE_JSON_MESSAGE: string = stateJsonMessage();

/**
 * {@linkcode STATE_JSON_MESSAGE} with the calls that save and resume the state written as its
 * holder writes them: `save` (default `await saveState(state)`) and `resume` (default
 * `await loadState(bytes)`; a TensorFlow.js optimizer's, `await optimizer.loadState(bytes)`).
 *
 * @example
 * ```ts
 * import { stateJsonMessage } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * const message = stateJsonMessage({ save: "S", resume: "R" });
 * assert.match(message, /const bytes = S, .* resume with R;/);
 * ```
 */
export function stateJsonMessage(
  { save, resume }: CheckpointCalls = DEFAULT_CALLS,
): string {
  return "An optimizer state is not JSON (JSON.stringify would write it as {}, which holds " +
    `nothing: its tensors live in its backend): keep its checkpoint, const bytes = ${save}, a ` +
    "Uint8Array, or where text is needed base64 of it " +
    '(Node\'s Buffer.from(bytes).toString("base64")), and resume with ' + resume + "; " +
    "to write an object that holds one, leave the state out first, const { state, ...rest } = " +
    "result (a replacer of JSON.stringify cannot: a state's toJSON runs before it)";
}

/**
 * The error of a structured clone of a state (`structuredClone(state)`, `postMessage(state)`,
 * Deno KV's `kv.set(key, state)`), which would otherwise copy `{}` (a state's tensors live in its
 * backend, not in properties of its own), silently: how to store its checkpoint instead (one
 * Deno KV value holds 64 KiB at most), how to resume, and how to store an object that holds one.
 *
 * @example
 * ```ts
 * import { STATE_CLONE_MESSAGE } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(STATE_CLONE_MESSAGE, /await saveState\(state\)/);
 * ```
 */
export const STATE_CLONE_MESSAGE: string = stateCloneMessage();

/**
 * {@linkcode STATE_CLONE_MESSAGE} with the calls that save and resume the state written as its
 * holder writes them (see {@linkcode stateJsonMessage}).
 *
 * @example
 * ```ts
 * import { stateCloneMessage } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * const message = stateCloneMessage({ save: "S", resume: "R" });
 * assert.match(message, /const bytes = S, .* resume with R;/);
 * ```
 */
export function stateCloneMessage(
  { save, resume }: CheckpointCalls = DEFAULT_CALLS,
): string {
  return "An optimizer state cannot be cloned (structuredClone, postMessage and Deno KV would " +
    "copy it as {}, which holds nothing: its tensors live in its backend): store its " +
    `checkpoint, const bytes = ${save}, a Uint8Array (one Deno KV value holds 64 KiB at most: ` +
    `kvCheckpointStore of @optim/radam/kv stores any size), and resume with ${resume}; to ` +
    "store an object that holds one, leave the state out first, const { state, ...rest } = " +
    "result";
}

/**
 * What to add to an error about a value that should have been an optimizer state: for a
 * Promise, to await it (`init` and `loadState` return one); for an optimizer (an object with
 * `init` and `settings`), to make its state, and for a factory given uncalled (`radam`), to call
 * it and make its state; for `undefined`, {@linkcode UNDEFINED_STATE_HINT};
 * for a TensorFlow.js optimizer of this library (`applyGradients` and `state`), to pass its
 * `state`; for a state of another copy of the library (its class has a state's getters, but is
 * not this copy's: two versions in node_modules, a bundle beside the package), that it is one,
 * and how to move it across; for an empty plain object (a state copied by `structuredClone`,
 * spread or JSON), how a state is carried. Empty for anything else.
 *
 * @example
 * ```ts
 * import { stateHint } from "./_state_errors.ts";
 * import { optimizerFactory } from "./_call_hints.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(stateHint({ w: 1 }), "");
 * assert.match(stateHint({ w: new Float32Array(1) }), /not a state: make a state of them/);
 * assert.match(stateHint({}), /structuredClone\(state\)/);
 * assert.match(stateHint(undefined), /optimizer\.state, is undefined until its first step/);
 * assert.match(stateHint({ applyGradients() {}, state: undefined }), /pass optimizer\.state/);
 * assert.match(stateHint(Promise.resolve()), /await/);
 * assert.match(stateHint({ init() {}, settings: {} }), /opt\.init\(params\)/);
 * const radam = optimizerFactory(() => ({}), "radam");
 * assert.match(stateHint(radam), /await radam\(\)\.init\(params\)/);
 * class Foreign {
 *   get optimizer() { return "radam"; }
 *   get names() { return []; }
 *   get params() { return {}; }
 *   get grads() { return {}; }
 * }
 * assert.match(stateHint(new Foreign()), /another copy of this library/);
 * ```
 */
export function stateHint(value: unknown): string {
  if (value === undefined) return UNDEFINED_STATE_HINT;
  const factory = factoryName(value);
  if (factory !== undefined) {
    return ` (a factory: call it, and make its state, await ${factory}().init(params))`;
  }
  if (typeof value !== "object" || value === null) return "";
  const { then, applyGradients } = value as Record<string, unknown>;
  if (typeof then === "function") return readPromiseHint(value) ?? PROMISE_STATE_HINT;
  if (isOptimizerValue(value)) {
    return " (an optimizer: make its state with await opt.init(params))";
  }
  if (typeof applyGradients === "function" && "state" in value) {
    return " (a TensorFlow.js optimizer: pass optimizer.state, its library state, made by its " +
      "first step)";
  }
  if (isStateLike(value)) {
    return " (a state made by another copy of this library, loaded beside this one, e.g. another " +
      "version: use one copy, or carry the state across with that copy's saveState and this " +
      "one's loadState)";
  }
  if (isStateCopy(value)) return EMPTY_COPY_HINT;
  return isTensorRecord(value) ? TENSORS_STATE_HINT : "";
}

/**
 * The hint of a record of tensors (a model's parameters, or a state's `state.params` or
 * `state.grads`) given where a state goes: that a state is made of them, and holds them.
 */
const TENSORS_STATE_HINT = " (a record of tensors, not a state: make a state of them, " +
  "const state = await opt.init(params), whose state.params and state.grads they are then, " +
  "and pass the state itself)";

/**
 * Whether `value` is a record (a plain object, or a state's `state.params`) of at least one
 * tensor (Float32Array), and of nothing else. A typed array or a list is no record: its
 * elements are not read (a model's 10M parameters given bare, `step(w, g)`, made a list of
 * them, which took seconds). Each value is read once, up to the first that is no tensor.
 */
function isTensorRecord(value: object): boolean {
  try {
    if (!isRecord(value)) return false;
    const keys = Object.keys(value);
    const tensors = value as Record<string, unknown>;
    return keys.length > 0 && keys.every((key) => tensors[key] instanceof Float32Array);
  } catch {
    return false; // a getter that throws: no hint, the error is still the state's
  }
}

/**
 * Whether `value` is what `structuredClone(state)`, `{ ...state }` and
 * `JSON.parse(JSON.stringify(state))` make of a state: a plain object with no keys, `{}`.
 *
 * @example
 * ```ts
 * import { isStateCopy } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isStateCopy(JSON.parse("{}")));
 * assert.ok(!isStateCopy({ w: 1 }) && !isStateCopy(new Map()) && !isStateCopy(null));
 * ```
 */
export function isStateCopy(value: unknown): boolean {
  return typeof value === "object" && value !== null &&
    Object.getPrototypeOf(value) === Object.prototype && Reflect.ownKeys(value).length === 0;
}

/**
 * The hint of an empty plain object where a state goes: what `structuredClone(state)`,
 * `{ ...state }` and `JSON.parse(JSON.stringify(state))` make of a state (which holds nothing of
 * its own that they copy), as a serverless function may have stored it.
 */
const EMPTY_COPY_HINT = " (an empty object: structuredClone(state), { ...state } and JSON copy " +
  "nothing of a state, whose tensors live in its backend; carry a state across with " +
  "await saveState(state) and await loadState(bytes))";

/**
 * What a state reports that no assignment changes, and what to write instead where there is
 * something to write (see {@linkcode readOnlyStateMessage}).
 */
const READ_ONLY: Readonly<Record<string, string>> = {
  optimizer: "",
  backend: "; to move a state to another backend, load its checkpoint there, " +
    'state = await loadState(await saveState(state), { backend: "js" })',
  step: "; step() counts the steps, one each, for the bias corrections and a schedule: to go " +
    "on at a run's step count, load that run's checkpoint, state = await loadState(bytes), or " +
    "make a state of new tensors that takes a state's moments and step count, " +
    "await opt.init(params, { from: state })",
  names: "; a state's tensors are those given to init: a state of others that takes this " +
    "one's moments and step count is await opt.init(params, { from: state })",
  skippedSteps: "",
  lastGradNorm: "",
  threads: "; the optimizer's option threads sets it, radam({ threads: 4 }), or a checkpoint " +
    "loaded with it, await loadState(bytes, { threads: 4 })",
};

/**
 * The properties of a state that are read-only, whose assignment says so (not `params`, `grads`).
 */
export const READ_ONLY_STATE_KEYS: readonly string[] = Object.keys(READ_ONLY);

/**
 * The error of an assignment to what a state reports (`state.step = 5`): that it is read-only
 * and the assignment would change nothing, which a sloppy-mode script's did, silently (strict
 * mode's was JavaScript's "has only a getter"), and what to write instead.
 *
 * @example
 * ```ts
 * import { readOnlyStateMessage } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(readOnlyStateMessage("step"), /^Cannot set state\.step: .*loadState\(bytes\)/);
 * ```
 */
export function readOnlyStateMessage(key: string): string {
  return `Cannot set state.${key}: what a state reports is read-only (the assignment would ` +
    `change nothing)${READ_ONLY[key] ?? ""}`;
}

/** A state's properties: read from a Promise of one, each says to await it. */
const STATE_KEYS = [
  "optimizer",
  "backend",
  "step",
  "names",
  "params",
  "grads",
  "skippedSteps",
  "lastGradNorm",
  "threads",
];

/**
 * Returns `promise`, a Promise of a state that `call` (`"init"` or `"loadState"`) returned, its
 * reads of a state's properties made TypeErrors that say to await it: where an `await` is
 * forgotten, `state.params.w` would otherwise fail as JavaScript's own "Cannot read properties
 * of undefined", and `state.step` read undefined. (Getters of its own, not enumerable: it stays
 * a Promise, awaited, inspected and typed as any.)
 *
 * @example
 * ```ts
 * import { awaitHinted } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * const pending = awaitHinted(Promise.resolve(1), "init");
 * assert.throws(() => (pending as unknown as { params: unknown }).params, /await opt\.init/);
 * assert.equal(await pending, 1);
 * ```
 */
export function awaitHinted<P extends Promise<unknown>>(promise: P, call: "init" | "loadState"): P {
  const write = call === "init" ? "await opt.init(params)" : "await loadState(bytes)";
  return readsRefused(
    promise,
    STATE_KEYS,
    (key) =>
      `Cannot read ${key} of a Promise: ${call}() returns a Promise of the state; await it, ` +
      `const state = ${write}`,
  );
}

/**
 * Returns `promise`, a Promise of a record of copies by name that `call` (`"readParams"`,
 * `"readMoments"`, `"readSlowWeights"`) returned, its reads of the names the record will hold
 * (`keys`: the state's tensors, or its moments) made TypeErrors that say to await it: where an
 * `await` is forgotten, `const { w } = readParams(state)` would otherwise give `undefined`,
 * silently. A name a Promise has already (`then`, `constructor`, `toString`, …) is left as it is.
 * (Getters of a prototype shared by the Promises of the same `keys`, base/_read_hints.ts: it
 * stays a Promise, awaited, inspected and typed as any, and nothing is made per key per call.)
 *
 * @example
 * ```ts
 * import { recordHinted } from "./_state_errors.ts";
 * import assert from "node:assert/strict";
 *
 * const pending = recordHinted(Promise.resolve({ w: 1 }), "readParams", ["w", "then"]);
 * assert.throws(() => (pending as unknown as { w: unknown }).w, /await readParams\(state\)/);
 * assert.deepEqual(await pending, { w: 1 });
 * ```
 */
export function recordHinted<P extends Promise<unknown>>(
  promise: P,
  call: string,
  keys: readonly string[],
): P {
  return refusingReads(promise, keys, call, (key) => {
    const plain = isIdentifier(key);
    const write = plain
      ? `const { ${key} } = await ${call}(state)`
      : `(await ${call}(state))${memberAccess(key)}`;
    return `Cannot read ${plain ? key : JSON.stringify(key)} of a Promise: ${call}() returns a ` +
      `Promise of the copies; await it, ${write}`;
  });
}

/**
 * `promise`, each read of `keys` (but those it has already: `then`, `constructor`, …) made a
 * TypeError of `message(key)` by a getter of its own, not enumerable.
 */
function readsRefused<P extends Promise<unknown>>(
  promise: P,
  keys: readonly string[],
  message: (key: string) => string,
): P {
  for (const key of keys) {
    if (key in promise) continue;
    Object.defineProperty(promise, key, {
      configurable: true,
      get() {
        throw new TypeError(message(key));
      },
    });
  }
  return promise;
}
