/**
 * The harness of the interleaving properties (tests/interleavings_test.ts, and the WebGPU one in
 * tests/gpu/): a program of operations on a line of states (steps, bad steps, reads, checkpoints,
 * a consumed handle used again, a step whose gradient getter calls back into the state,
 * dispose), run with its Promises released in an order fast-check's scheduler draws, awaited or
 * not, beside other lines. Each outcome is checked against the same call on an uninterrupted,
 * sequential run of the steps the program's `step` calls acknowledged: a read or a checkpoint
 * holds the state as it was at its call (bits, bytes), a call refused names the documented
 * reason (a TypeError or RangeError), and nothing hangs or fails inside the library.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adam,
  adamw,
  dispose,
  lion,
  loadState,
  lookahead,
  type Optimizer,
  type OptimizerState,
  radam,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { DISPOSED_STATE_MESSAGE } from "../base/_state_errors.ts";
import { bits, prng, randomTensor } from "./util.ts";

/** An operation of a program, on the line's live state unless it says otherwise. */
export type Op =
  | { t: "step"; seed: number; nan: boolean; zeroCopy: boolean }
  | { t: "bad"; missing: boolean }
  | { t: "reentrant"; call: "step" | "read" | "save" | "dispose" }
  | { t: "read"; what: "params" | "moments" | "slow"; awaited: boolean }
  | { t: "save"; awaited: boolean; load: boolean }
  | { t: "stale"; call: "step" | "read" | "save" }
  | { t: "dispose" }
  | { t: "yield" };

/** A line: its optimizer, tensors and program. */
export interface LineCase {
  rule: "radam" | "adam" | "adamw" | "lion" | "sgd";
  lookahead: boolean;
  groups: boolean;
  bits8: boolean;
  lengths: number[];
  ops: Op[];
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant("step" as const),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
      nan: fc.integer({ min: 0, max: 6 }).map((x) => x === 0),
      zeroCopy: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("bad" as const), missing: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("reentrant" as const),
      call: fc.constantFrom("step" as const, "read" as const, "save" as const, "dispose" as const),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant("read" as const),
      what: fc.constantFrom("params" as const, "moments" as const, "slow" as const),
      awaited: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("save" as const),
      awaited: fc.boolean(),
      load: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("stale" as const),
      call: fc.constantFrom("step" as const, "read" as const, "save" as const),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ t: "dispose" as const }) },
  { weight: 3, arbitrary: fc.constant({ t: "yield" as const }) },
);

/** A line of states: lengths up to `maxLength` (a 4096 one too where `compact`), ops. */
export function lineArb(maxOps: number, compact: boolean): fc.Arbitrary<LineCase> {
  const length = compact
    ? fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 4096, max: 4100 }))
    : fc.integer({ min: 1, max: 40 });
  return fc.record({
    rule: fc.constantFrom("radam" as const, "adam" as const, "adamw" as const, "lion", "sgd"),
    lookahead: fc.boolean(),
    groups: fc.boolean(),
    bits8: compact ? fc.boolean() : fc.constant(false),
    lengths: fc.array(length, { minLength: 1, maxLength: 3 }),
    ops: fc.array(opArb, { minLength: 1, maxLength: maxOps }),
  }) as fc.Arbitrary<LineCase>;
}

/** The optimizer of a line on `backend` (options such as `backend`, `threads`, `device`). */
export function optimizerOf(c: LineCase, backend: Record<string, unknown>): Optimizer<unknown> {
  const options = {
    lr: 1e-2,
    ...backend,
    ...(c.bits8 ? { states: "8bit" } : {}),
    // (t1 where there is one: init refuses a group that takes no tensor.)
    ...(c.groups && c.lengths.length > 1
      ? { groups: [{ match: (n: string) => n === "t1", lrScale: 0.5 }] }
      : {}),
  };
  const make = { radam, adam, adamw, lion, sgd }[c.rule] as (o: unknown) => Optimizer<unknown>;
  const inner = make(c.rule === "sgd" ? { ...options, momentum: 0.9 } : options);
  return c.lookahead ? lookahead(inner, { k: 2, alpha: 0.5 }) : inner;
}

/** The initial params of a line (`t0`, `t1`, …). */
export function paramsOf(c: LineCase): Record<string, Float32Array> {
  const rand = prng(c.lengths.length * 7919 + c.lengths[0]);
  return Object.fromEntries(c.lengths.map((n, i) => [`t${i}`, randomTensor(rand, n)]));
}

function gradsOf(c: LineCase, op: { seed: number; nan: boolean }): Record<string, Float32Array> {
  const rand = prng(op.seed);
  const grads = Object.fromEntries(c.lengths.map((n, i) => [`t${i}`, randomTensor(rand, n)]));
  if (op.nan) grads[`t${op.seed % c.lengths.length}`][0] = NaN;
  return grads;
}

/** What a call gave: a value (as comparable bits or bytes) or an error (its class and message). */
export type Outcome = { value: unknown } | { error: string };

/** A call whose outcome is checked against the reference run at `at` acknowledged steps. */
interface Check {
  at: number;
  what: string;
  outcome: Promise<Outcome>;
}

/** The comparable form of what a read or a checkpoint gave. */
function comparable(value: unknown): unknown {
  if (value instanceof Float32Array) return Array.from(bits(value));
  if (value instanceof Uint8Array) return Array.from(value);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).sort(([a], [b]) => a < b ? -1 : 1).map(([k, v]) => [k, comparable(v)]),
    );
  }
  return value;
}

/** An outcome of a Promise; an error that is no TypeError or RangeError fails the property. */
function outcomeOf(p: Promise<unknown>): Promise<Outcome> {
  return p.then((value) => ({ value: comparable(value) }), (error) => ({ error: named(error) }));
}

/** An error as its class and message; throws (fails the property) where it is not a user error. */
function named(error: unknown): string {
  if (!(error instanceof TypeError || error instanceof RangeError)) {
    throw new assert.AssertionError({ message: `not a TypeError/RangeError: ${error}` });
  }
  if (
    /undefined is not|is not a function|detached|unreachable|out of bounds|Cannot read/.test(
      error.message,
    )
  ) throw new assert.AssertionError({ message: `an internal error: ${error.message}` });
  return `${error.constructor.name}: ${error.message}`;
}

const REFUSED: Outcome = { error: "refused, saying why" };

/** `outcome` as {@linkcode REFUSED} where it is an error saying `why` (else as it is). */
function refused<T extends Outcome | Promise<Outcome>>(outcome: T, why: RegExp | string): T {
  const of = (o: Outcome): Outcome =>
    "error" in o && (typeof why === "string" ? o.error.includes(why) : why.test(o.error))
      ? REFUSED
      : o;
  return (outcome instanceof Promise ? outcome.then(of) : of(outcome)) as T;
}

const READS = {
  params: readParams,
  moments: readMoments,
  slow: readSlowWeights,
  save: saveState,
} as const;

/** What the scheduler (or, without one, a plain microtask) makes of a Promise. */
export type Release = <T>(p: Promise<T>) => Promise<T>;

/** What makes a line's first state (an optimizer, or one whose `init` passes a device). */
export interface Initializer {
  init(params: Record<string, Float32Array>): Promise<OptimizerState<unknown>>;
}

/** Writes a gradient into a state's own slot (a zero-copy step's). */
export type SlotWriter = (state: OptimizerState<unknown>, name: string, data: Float32Array) => void;

/** What a line's run acknowledged, and the checks its outcomes are to pass. */
export interface LineRun {
  acked: Record<string, Float32Array>[];
  checks: Check[];
  /** States to dispose at the end (the live one, loaded ones). */
  owned: OptimizerState<unknown>[];
}

/**
 * Runs a line's program on `opt`, each Promise released through `release`; returns what it
 * acknowledged and the checks to make.
 */
export async function runLine(
  c: LineCase,
  opt: Initializer,
  loadOptions: Record<string, unknown>,
  release: Release,
  sequential = false,
  writeSlot: SlotWriter = (state, name, data) => (state.grads[name] as Float32Array).set(data),
): Promise<LineRun> {
  const pure = sequential;
  const run: LineRun = { acked: [], checks: [], owned: [] };
  let state = await release(opt.init(paramsOf(c)));
  run.owned.push(state);
  const stale: OptimizerState<unknown>[] = [];
  let disposed = false;
  const syncCall = (f: () => unknown): Outcome => {
    try {
      f();
      return { value: undefined };
    } catch (error) {
      return { error: named(error) };
    }
  };
  const expect = (what: string, outcome: Promise<Outcome> | Outcome) =>
    run.checks.push({ at: run.acked.length, what, outcome: Promise.resolve(outcome) });
  for (const op of c.ops) {
    switch (op.t) {
      case "step": {
        const grads = gradsOf(c, op);
        const before = state;
        const outcome = syncCall(() => {
          if (op.zeroCopy) {
            for (const name of Object.keys(grads)) writeSlot(before, name, grads[name]);
            state = step(before);
          } else state = step(before, grads);
        });
        if ("value" in outcome) {
          run.acked.push(grads);
          stale.push(before);
          run.owned[0] = state;
        } else expect("step", outcome);
        break;
      }
      case "bad": {
        const grads = gradsOf(c, { seed: 1, nan: false });
        if (op.missing) delete grads.t0;
        else grads.t0 = new Float32Array(c.lengths[0] + 1);
        // Names the tensor; the sequential run makes no such call (it must change nothing).
        expect(
          "bad step",
          pure ? REFUSED : refused(
            syncCall(() => step(state, grads)),
            disposed ? DISPOSED_STATE_MESSAGE : /"t0"/,
          ),
        );
        break;
      }
      case "reentrant": {
        const grads = gradsOf(c, { seed: 2, nan: false });
        const before = state;
        let inner: Promise<Outcome> | Outcome = { value: "not called" };
        const record = { ...grads };
        Object.defineProperty(record, "t0", {
          enumerable: true,
          get() {
            if (op.call === "step") inner = syncCall(() => step(before, grads));
            else if (op.call === "dispose") inner = syncCall(() => dispose(before));
            else inner = outcomeOf(READS[op.call === "read" ? "params" : "save"](before));
            return grads.t0;
          },
        });
        const outcome = syncCall(() => state = step(before, pure ? grads : record));
        if (pure) inner = disposed ? inner : REFUSED;
        expect(`${op.call} within a step`, refused(inner, /in progress/));
        if ("value" in outcome) {
          run.acked.push(grads);
          stale.push(before);
          run.owned[0] = state;
        } else expect("reentrant step", outcome);
        break;
      }
      case "read":
      case "save": {
        const what = op.t === "read" ? op.what : "save";
        const p = release(READS[what](state) as Promise<unknown>);
        const outcome = outcomeOf(p);
        expect(what, outcome);
        if (op.t === "save" && op.load) {
          const loaded = (sequential ? outcome.then(() => p) : p).then((bytes) =>
            release(loadState(bytes as Uint8Array, loadOptions)).then(async (s) => {
              run.owned.push(s);
              return await saveState(s);
            })
          );
          expect("save", outcomeOf(loaded)); // a loaded state saves the same bytes
        }
        if (op.awaited || sequential) await outcome;
        break;
      }
      case "stale": {
        const old = stale[stale.length - 1];
        if (old === undefined) break;
        const why = disposed ? DISPOSED_STATE_MESSAGE : "consumed by step(); use the state";
        const call = op.call === "read" ? "params" : "save";
        if (pure) expect(`stale ${op.call}`, REFUSED);
        else if (op.call === "step") expect("stale step", refused(syncCall(() => step(old)), why));
        else expect(`stale ${op.call}`, refused(outcomeOf(READS[call](old)), why));
        break;
      }
      case "dispose":
        expect("dispose", syncCall(() => dispose(state)));
        disposed = true;
        break;
      case "yield":
        await release(Promise.resolve());
        break;
    }
  }
  if (!disposed) expect("final save", outcomeOf(release(saveState(state))));
  return run;
}

/**
 * The outcomes a sequential run gives: the same program on a fresh state of `opt`, every
 * Promise awaited at its call, without the calls that are to be refused (a bad gradient, a
 * consumed handle, a call from within a step: their checks there are {@linkcode REFUSED}), so
 * that a refusal that changed something shows in the later outcomes.
 */
export async function reference(
  c: LineCase,
  opt: Initializer,
  loadOptions: Record<string, unknown>,
  writeSlot?: SlotWriter,
): Promise<LineRun> {
  return await runLine(c, opt, loadOptions, (p) => p, true, writeSlot);
}

/** Disposes what a run still owns (any handle of a line disposes it; it is idempotent). */
export function disposeAll(run: LineRun): void {
  for (const s of run.owned) dispose(s);
}

/** The outcomes of a run's checks, settled, each with its step count and name. */
export async function outcomes(run: LineRun): Promise<unknown[]> {
  return await Promise.all(
    run.checks.map(async (k) => ({ at: k.at, what: k.what, ...(await k.outcome) })),
  );
}

export { DISPOSED_STATE_MESSAGE };
