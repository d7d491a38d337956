/**
 * Checkpoints at scale: the cap on a header's length (that of the reference safetensors
 * implementation) is checked when a state is made, so that a state that trains can be saved;
 * both sides of it; many tensors; the predicted header is the one written; hostile headers that
 * would take V8 gigabytes, or abort the process, to parse are refused before they are parsed.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CheckpointError,
  lion,
  loadState,
  lookahead,
  radam,
  readParams,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { headerLength, MAX_HEADER_BYTES } from "../base/safetensors.ts";
import {
  checkpointMetadata,
  checkpointTensors,
  checkSavableSize,
} from "../core/checkpoint_header.ts";
import { groupsOf, inLayoutOrder, planState } from "../core/plan.ts";
import { join } from "./checkpoint_files.ts";

/** The header length a file records. */
function headerOf(bytes: Uint8Array): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
}

Deno.test("the cap is the reference implementation's, 100,000,000 bytes", () => {
  assert.equal(MAX_HEADER_BYTES, 100_000_000);
});

Deno.test("a state whose checkpoint would pass the cap is refused at init; one at the cap saves and loads", async () => {
  // One tensor, SGD without momentum: its name is in the header twice (the tensor and
  // tensor_order). The longest name that fits, found with the prediction, then checked by a
  // real save; 8 bytes more (a header is padded to 8) is refused at init, before training.
  const config = sgd({ lr: 0.5 }).settings;
  const fits = (length: number) => {
    try {
      checkSavableSize(config, planState(config, ["w".repeat(length)], [2]), [[2]]);
      return true;
    } catch (error) {
      assert.ok(error instanceof RangeError);
      return false;
    }
  };
  // The name is in the header twice, beside a few hundred bytes of the rest.
  let low = MAX_HEADER_BYTES / 2 - 2048, high = MAX_HEADER_BYTES / 2;
  assert.ok(fits(low) && !fits(high));
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (fits(mid)) low = mid;
    else high = mid;
  }
  const name = "w".repeat(low);
  const grads = new Float32Array([1, -1]);
  let state = await sgd({ lr: 0.5 }).init({ [name]: new Float32Array([1, 2]) });
  state = step(state, { [name]: grads });
  const bytes = await saveState(state);
  assert.ok(headerOf(bytes) <= MAX_HEADER_BYTES);
  assert.ok(headerOf(bytes) > MAX_HEADER_BYTES - 64, `${headerOf(bytes)}: not at the cap`);
  const loaded = await loadState(bytes);
  assert.deepEqual([...loaded.params[name]], [0.5, 2.5]);
  await assert.rejects(
    () => sgd({ lr: 0.5 }).init({ ["w".repeat(low + 8)]: new Float32Array([1, 2]) }),
    (e: Error) => e instanceof RangeError && /header of \d+ bytes, above the cap/.test(e.message),
  );
});

Deno.test("150,000 tensors init, step, save and load bit-exact (a spread of them overflowed the stack)", async () => {
  const n = 150_000;
  const params: Record<string, Float32Array> = {};
  for (let i = 0; i < n; i++) params[`layers.${i}.w`] = new Float32Array([i, -i, 1 / (i + 1)]);
  let state = await radam({ lr: 1e-2 }).init(params);
  for (let i = 0; i < n; i++) state.grads[`layers.${i}.w`].set([1, 2, -(i % 7)]);
  state = step(state);
  const bytes = await saveState(state);
  const loaded = await loadState(bytes);
  assert.equal(loaded.names.length, n);
  const a = await readParams(state), b = await readParams(loaded);
  for (let i = 0; i < n; i += 997) {
    assert.deepEqual(b[`layers.${i}.w`], a[`layers.${i}.w`]);
  }
  assert.deepEqual(await saveState(loaded), bytes);
});

Deno.test("the header predicted at init is the one saveState writes", async () => {
  const nameArb = fc.oneof(
    fc.string({ minLength: 1, maxLength: 12 }),
    fc.string({ unit: "grapheme", minLength: 1, maxLength: 6 }),
    fc.constantFrom("0", "12", "é", "\ud800", "a\u0000b", "😀"),
  );
  const shapeArb = fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 3 });
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(fc.tuple(nameArb, shapeArb, fc.boolean()), {
        minLength: 1,
        maxLength: 5,
        selector: ([name]) => name,
      }),
      fc.constantFrom("radam", "lion", "sgd", "sgdm", "lookahead"),
      fc.boolean(),
      fc.boolean(),
      fc.nat({ max: 3 }),
      async (tensors, kind, compact, groups, steps) => {
        const states = compact ? "8bit" as const : "32bit" as const;
        const group = groups ? { groups: [{ match: /^[0-9a-m]/, lrScale: 0.5 }] } : {};
        const opt = kind === "radam"
          ? radam({ states, ...group })
          : kind === "lion"
          ? lion({ states, ...group })
          : kind === "sgd"
          ? sgd({ states, ...group })
          : kind === "sgdm"
          ? sgd({ momentum: 0.9, states, ...group })
          : lookahead(radam({ states, ...group }));
        const params: Record<string, { data: Float32Array; shape: number[] }> = {};
        for (const [name, shape, big] of tensors) {
          // A large one is held in 8 bits (4096 elements or more).
          const full = big ? [...shape, 4096] : shape;
          const size = full.reduce((a, b) => a * b, 1);
          params[name] = { data: new Float32Array(size).fill(0.25), shape: full };
        }
        let state = await opt.init(params);
        for (let s = 0; s < steps; s++) state = step(state);
        const bytes = await saveState(state);
        const config = opt.settings;
        const names = Object.keys(params); // init's order (integer-like names first)
        const layout = planState(config, names, names.map((n) => params[n].data.length));
        const shapes = inLayoutOrder(layout, names, names.map((n) => params[n].shape));
        const { tensors: planned, codes } = checkpointTensors(config, layout, shapes);
        const metadata = checkpointMetadata(config, layout, {
          steps,
          skipped: 0,
          groups: groupsOf(config, layout.names),
          codes,
        });
        assert.equal(headerLength(planned, metadata), headerOf(bytes));
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("a header nested deeper than a checkpoint's, or with an object of too many keys, is refused before it is parsed", async () => {
  const deep = join(`{"a":{"b":[[0]]}}`, new Uint8Array(0));
  await assert.rejects(
    () => loadState(deep),
    (e: Error) => e instanceof CheckpointError && /nests deeper than 3/.test(e.message),
  );
  // A string holding brackets and colons is not counted.
  const inString = join(`{"__metadata__":{"[[[[:{{":"::[[[{{{"}}`, new Uint8Array(0));
  await assert.rejects(
    () => loadState(inString),
    (e: Error) => e instanceof CheckpointError && !/nests deeper/.test(e.message),
  );
  const keys = MAX_HEADER_BYTES / 50 + 1;
  const parts: string[] = [];
  for (let i = 0; i < keys; i++) parts.push(`"${i.toString(36)}":0`);
  const many = join(`{${parts.join(",")}}`, new Uint8Array(0));
  await assert.rejects(
    () => loadState(many),
    (e: Error) => e instanceof CheckpointError && /more than 2000000 keys/.test(e.message),
  );
});
