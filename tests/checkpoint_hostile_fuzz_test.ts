/**
 * Damaged and hostile checkpoints of every kind of state (32-bit and 8-bit moments, LookAhead,
 * parameter groups, a schedule, tensors saved beside the state): bytes flipped, the file cut at
 * every place its structure changes, and its header's JSON edited (tests/checkpoint_hostile_files.ts).
 * Each file either loads a state that is what the file says (its tensors, order and counts, a
 * state that steps alike on wasm and js and saves a file that loads to itself), or is refused
 * with a CheckpointError (a TypeError where the file says it was saved with a schedule and none
 * is given), and never changes the caller's bytes.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CheckpointError,
  dispose,
  loadState,
  type OptimizerState,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "../mod.ts";
import { type Header, split } from "./checkpoint_files.ts";
import { applyEdit, editArb, type Sample, samples } from "./checkpoint_hostile_files.ts";
import { snapshot } from "./option_mix.ts";
import { hasSlowWeights, randoms, setting } from "./util.ts";

/** `RADAM_HOSTILE_RUNS` and `RADAM_HOSTILE_SEED` (with `--allow-env`) run more cases, or others. */
const RUNS = setting("RADAM_HOSTILE_RUNS") ?? 600;
const SEED = setting("RADAM_HOSTILE_SEED") ?? 20261207;

const SAMPLES = await samples();

/** The file's metadata, where its header can be read as JSON; else undefined. */
function metadataOf(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const meta = split(bytes).header.__metadata__;
    return typeof meta === "object" && meta !== null ? meta : undefined;
  } catch {
    return undefined;
  }
}

/** Checks a refusal: the documented class, and a message that says what is wrong. */
function checkRefusal(e: unknown, bytes: Uint8Array, given: boolean): void {
  if (e instanceof CheckpointError) {
    assert.equal(e.name, "CheckpointError");
    assert.ok(e instanceof RangeError);
    assert.match(e.message, /^(Checkpoint|Tensor|Not an optimizer)/, e.message);
    return;
  }
  // A file that says it was saved with a schedule, loaded without one: the caller's to give.
  const schedule = metadataOf(bytes)?.lr_schedule === "true" && !given;
  if (e instanceof TypeError && schedule && /learning-rate schedule/.test(e.message)) return;
  throw new assert.AssertionError({ message: `refused with ${String(e)}`, actual: e });
}

/**
 * Checks that a file that loaded is one docs/SPEC.md allows, read apart from the library: each
 * tensor of a dtype it names, its bytes its shape's elements times the element's, and the tensors
 * tiling the data exactly.
 */
function checkValidFile(header: Header, dataLength: number): void {
  const bytesOf: Record<string, number> = { F32: 4, I8: 1, U8: 1 };
  const spans: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: [begin, end] } = entry;
    assert.ok(Object.hasOwn(bytesOf, dtype), `${name}: dtype ${dtype}`);
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    assert.equal(end - begin, elements * bytesOf[dtype], `${name}: shape and offsets`);
    spans.push([begin, end, name]);
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    assert.equal(begin, at, `${name} does not start where the tensor before it ends`);
    at = end;
  }
  assert.equal(at, dataLength, "the tensors cover the data");
}

/** Checks a state loaded from `bytes`: what the file says, and a state like any other. */
async function checkLoaded(state: OptimizerState, bytes: Uint8Array, sample: Sample) {
  const { header, data } = split(bytes);
  checkValidFile(header, data.length);
  const meta = header.__metadata__ as Record<string, string>;
  // (An 8-bit state's names are in its arena's order, the compact tensors last.)
  assert.deepEqual([...state.names].sort(), [...JSON.parse(meta.tensor_order)].sort());
  assert.equal(state.step, Number(meta.step));
  assert.equal(state.skippedSteps, Number(meta.skipped_steps));
  // The parameters are the file's, bit for bit.
  const params = await readParams(state);
  let total = 0;
  for (const name of state.names) {
    const [begin, end] = header[name].data_offsets as [number, number];
    const stored = new Uint8Array(data.slice(begin, end));
    assert.deepEqual(new Uint8Array(params[name].buffer), stored, `parameter ${name}`);
    total += params[name].length;
  }
  assert.ok(total * 4 <= bytes.length, "the state is no larger than its file warrants");
  // Its moments and slow weights are finite, its second moments ≥ 0, as in every valid state.
  for (const [moment, values] of Object.entries(await readMoments(state))) {
    for (const [name, x] of Object.entries(values)) {
      const bad = x.findIndex((v) => !Number.isFinite(v) || (moment === "exp_avg_sq" && v < 0));
      assert.equal(bad, -1, `${name}.${moment}[${bad}] is ${x[bad]}`);
    }
  }
  if (hasSlowWeights(state)) {
    for (const [name, x] of Object.entries(await readSlowWeights(state))) {
      assert.ok(x.every(Number.isFinite), `${name}.slow`);
    }
  }
  // Saved again, it loads to itself, and that state saves the same bytes.
  const again = await saveState(state);
  const reloaded = await loadState(again, { backend: "wasm", lr: sample.lr });
  assert.deepEqual(await snapshot(reloaded), await snapshot(state));
  assert.deepEqual(await saveState(reloaded), again);
  // One more step is the same on wasm and js.
  const grads = Object.fromEntries(state.names.map((n, i) => [n, randoms(params[n].length, i)]));
  const a = step(reloaded, grads);
  const b = step(state, grads);
  assert.deepEqual(await snapshot(a, { codes: false }), await snapshot(b, { codes: false }));
  dispose(a);
  dispose(b);
}

/** Where the twin load finds the bytes: at an odd offset of a larger buffer, or shared memory. */
type Place = "offset" | "shared";

/** A copy of `bytes` at `place`, between guard bytes that loadState must leave alone. */
function placed(bytes: Uint8Array, place: Place): Uint8Array {
  const total = bytes.length + 10;
  const buffer = place === "shared" ? new SharedArrayBuffer(total) : new ArrayBuffer(total);
  const out = new Uint8Array(buffer, 3, bytes.length);
  new Uint8Array(buffer).fill(0xa5);
  out.set(bytes);
  return out;
}

/** What a load gave, to compare two loads of the same file: the state's bits, or the error. */
async function outcomeOf(loading: Promise<OptimizerState>): Promise<[unknown, OptimizerState?]> {
  try {
    const state = await loading;
    return [await snapshot(state), state];
  } catch (error) {
    return [error];
  }
}

Deno.test(`fuzz: hostile edits of every kind of checkpoint load what the file says or throw a CheckpointError, the bytes untouched (${RUNS} cases, seed ${SEED})`, async () => {
  const outcomes = { loaded: 0, refused: 0 };
  await fc.assert(
    fc.asyncProperty(
      fc.nat(SAMPLES.length - 1),
      editArb,
      fc.boolean(),
      fc.constantFrom(undefined, "32bit" as const, "8bit" as const),
      fc.constantFrom<Place>("offset", "shared"),
      async (i, e, withLr, states, place) => {
        const sample = SAMPLES[i];
        const bytes = applyEdit(sample.bytes, e);
        const before = bytes.slice();
        const lr = withLr ? sample.lr : undefined;
        const [outcome, state] = await outcomeOf(loadState(bytes, { backend: "js", lr, states }));
        assert.deepEqual(bytes, before, "loadState changed the bytes it was given");
        // The same file elsewhere in memory, on wasm: the same state, or the same refusal.
        const twin = placed(bytes, place);
        const [other, otherState] = await outcomeOf(
          loadState(twin, { backend: "wasm", lr, states }),
        );
        assert.deepEqual(
          new Uint8Array(twin.buffer).slice(),
          new Uint8Array(placed(before, place).buffer).slice(),
          "loadState changed the memory of the bytes",
        );
        assert.deepEqual(other, outcome, `loaded from ${place} memory on wasm`);
        if (otherState) dispose(otherState);
        if (state === undefined) {
          checkRefusal(outcome, bytes, lr !== undefined);
          outcomes.refused++;
          return;
        }
        outcomes.loaded++;
        await checkLoaded(state, bytes, sample);
      },
    ),
    { numRuns: RUNS, seed: SEED, endOnFailure: true },
  );
  if (setting("RADAM_HOSTILE_SHOW")) console.log(outcomes);
  assert.ok(outcomes.loaded > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
});
