/**
 * `checkpointParams` (store/params.ts), what a store binding answers for `loadParams`: the
 * parameters of a checkpoint as `loadState` reads them, the same answer and errors as the
 * library's own stores give, a CheckpointError for each hostile or damaged file, and a TypeError
 * for what is not bytes.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adam,
  CheckpointError,
  lion,
  loadState,
  radam,
  readParams,
  saveState,
  sgd,
} from "../mod.ts";
import { checkpointParams, memoryCheckpointStore } from "../store.ts";
import { readParamsPrefix } from "../store/layout.ts";
import { MAX_HEADER_BYTES } from "../base/safetensors.ts";
import { edit, join, loadOrRefused, sample, sample8bit, split } from "./checkpoint_files.ts";

/** What `f` answers, or the class and message of what it threw. */
function outcome<T>(f: () => T): { value: T } | { error: string } {
  try {
    return { value: f() };
  } catch (error) {
    return { error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}

/** Checks `checkpointParams(bytes)` against the library's reader and, where it loads, loadState. */
async function agrees(bytes: Uint8Array, what: string): Promise<void> {
  const got = outcome(() => checkpointParams(bytes));
  assert.deepEqual(got, outcome(() => readParamsPrefix(bytes, bytes.length, true)), what);
  if ("error" in got) {
    assert.throws(() => checkpointParams(bytes), CheckpointError, what);
    return;
  }
  const state = await loadOrRefused(bytes);
  if (state === undefined) return; // loadState checks more (the moments, the settings)
  assert.equal(got.value.step, state.step, what);
  // (In tensor_order, the order given to init; an 8-bit state's names are its arena's.)
  assert.deepEqual([...got.value.names].sort(), [...state.names].sort(), what);
  assert.deepEqual({ ...got.value.params }, await readParams(state), what);
}

Deno.test("checkpointParams reads the parameters loadState loads, of every rule and of 8-bit states", async () => {
  const shapes = fc.array(fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }), {
    minLength: 1,
    maxLength: 4,
  });
  const rules = [radam, adam, sgd, lion] as const;
  await fc.assert(
    fc.asyncProperty(shapes, fc.integer({ min: 0, max: 3 }), async (dims, rule) => {
      const params = Object.fromEntries(dims.map((shape, i) => {
        const n = shape.reduce((a, b) => a * b, 1);
        return [`t${i}`, { shape, data: Float32Array.from({ length: n }, (_, j) => j - i) }];
      }));
      const state = await rules[rule]({ lr: 0.01 }).init(params);
      const bytes = await saveState(state);
      const read = checkpointParams(bytes);
      assert.deepEqual(read.names, state.names);
      assert.deepEqual({ ...read.shapes }, Object.fromEntries(dims.map((s, i) => [`t${i}`, s])));
      assert.deepEqual({ ...read.params }, await readParams(state));
      await agrees(bytes, `${rules[rule].name} of ${JSON.stringify(dims)}`);
    }),
    { numRuns: 40 },
  );
  const q8 = await sample8bit();
  assert.deepEqual(checkpointParams(q8).names, ["fc.weight", "fc.bias"]);
  await agrees(q8, "an 8-bit state");
});

Deno.test("checkpointParams answers what the in-process store's loadParams does, with its version", async () => {
  const bytes = await sample();
  const store = memoryCheckpointStore({ name: "mine" });
  const version = (await store.save(bytes, null))!;
  assert.deepEqual({ ...checkpointParams(bytes, "mine"), version }, await store.loadParams());
  // The values are copies: the bytes may change afterwards.
  const read = checkpointParams(bytes);
  const before = read.params["fc.bias"].slice();
  bytes.fill(0xff);
  assert.deepEqual(read.params["fc.bias"], before);
});

/** Hostile and damaged files, each with what its CheckpointError says. */
const HOSTILE: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
  ["empty file", () => new Uint8Array(0), /truncated/],
  ["truncated header", (b) => b.subarray(0, 50), /truncated/],
  ["truncated data", (b) => b.subarray(0, b.length - 4), /truncated/],
  ["header length 2⁶⁴ − 1", (b) => {
    const out = b.slice();
    new DataView(out.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    return out;
  }, /header length 18446744073709551615 is above the 100000000-byte cap/],
  // (loadState's cap: this reader had none, and read the parameters of a file it refuses.)
  ["a header padded past the cap, all there", (b) => {
    const { data } = split(b);
    const text = new TextDecoder().decode(b.subarray(8, b.length - data.length));
    return join(text.padEnd(MAX_HEADER_BYTES + 8), data);
  }, /header length 100000008 is above the 100000000-byte cap/],
  ["malformed JSON", (b) => join('{"a": ', split(b).data), /not valid JSON/],
  ["JSON array", (b) => join("[1, 2]", split(b).data), /not a JSON object/],
  ["invalid UTF-8", (b) => {
    const out = b.slice();
    out[9] = 0xff;
    return out;
  }, /not valid JSON/],
  // (Refused before it is parsed: 100 MB of nested arrays took V8 5 GB and 16 s to parse.)
  [
    "a header nested deeper than a checkpoint's",
    (b) => join(`{"a":{"b":[[0]]}}`, split(b).data),
    /header nests deeper than 3 levels/,
  ],
  [
    "a tensor_order nested deeper than a checkpoint's",
    (b) => edit(b, (h) => h.__metadata__.tensor_order = '[[[["fc.bias"]]]]'),
    /tensor_order/,
  ],
  ["no tensor_order", (b) => edit(b, (h) => delete h.__metadata__.tensor_order), /tensor_order/],
  ["tensor_order of no names", (b) => edit(b, (h) => h.__metadata__.tensor_order = "[]"), /tensor/],
  ["a step of 1e3", (b) => edit(b, (h) => h.__metadata__.step = "1e3"), /invalid step/],
  ["no optimizer", (b) => edit(b, (h) => delete h.__metadata__.optimizer), /optimizer/],
  ["F16 parameter", (b) => edit(b, (h) => h["fc.bias"].dtype = "F16"), /no F32 entry/],
  [
    "a parameter named __proto__",
    (b) => edit(b, (h) => h.__metadata__.tensor_order = '["__proto__"]'),
    /no F32 entry/,
  ],
  ["negative shape", (b) => edit(b, (h) => h["fc.bias"].shape = [-2]), /shape/],
  ["offsets past the data", (b) =>
    edit(b, (h) => {
      const n = split(b).data.length;
      h["fc.bias"].data_offsets = [n, n + 8];
    }), /data_offsets|truncated/],
  [
    "overlapping parameters",
    (b) =>
      edit(
        b,
        (h) =>
          h["fc.bias"].data_offsets = [...h["fc.weight"].data_offsets].map((x, i) =>
            i === 0 ? x : x - 16
          ),
      ),
    /overlapping/,
  ],
  ["a NaN parameter", (b) => {
    const { header } = split(b);
    const out = b.slice();
    const at = b.length - split(b).data.length + header["fc.bias"].data_offsets[0];
    new DataView(out.buffer).setFloat32(at, NaN, true);
    return out;
  }, /"fc.bias"\[0\] is NaN/],
];

Deno.test("checkpointParams throws a CheckpointError naming the problem (and the store) for hostile files", async () => {
  const good = await sample();
  for (const [what, damage, message] of HOSTILE) {
    const bytes = damage(good);
    assert.throws(() => checkpointParams(bytes), (e: Error) => {
      assert.ok(e instanceof CheckpointError, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    }, what);
    assert.throws(() => checkpointParams(bytes, "user-7"), /^CheckpointError: Checkpoint user-7/);
    await agrees(bytes, what);
  }
});

Deno.test("checkpointParams: mutated and truncated files read as the library's reader reads them", async () => {
  const good = await sample();
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), {
        maxLength: 4,
      }),
      fc.nat(good.length),
      async (changes, length) => {
        const bytes = good.slice(0, length);
        for (const [at, value] of changes) if (at < bytes.length) bytes[at] = value;
        await agrees(bytes, `${JSON.stringify(changes)}, ${length} bytes`);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("checkpointParams refuses what is not bytes with a TypeError, and a store name not text", async () => {
  const good = await sample();
  const cases: [unknown, RegExp][] = [
    [good.buffer, /Uint8Array, got ArrayBuffer$/],
    [Array.from(good), /got Array\(\d+\)$/],
    [Promise.resolve(good), /got Promise \(a Promise: await it\)$/],
    [undefined, /got undefined$/],
    [new Float32Array(4), /got Float32Array$/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => checkpointParams(value as Uint8Array), (e: Error) => {
      assert.ok(e instanceof TypeError && !(e instanceof CheckpointError), String(e));
      assert.match(e.message, /^checkpointParams takes a checkpoint's bytes as a /);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.throws(() => checkpointParams(good, 7 as unknown as string), TypeError);
  assert.equal(checkpointParams(good).step, (await loadState(good)).step);
});

Deno.test("checkpointParams answers plain objects, which a structured clone (an RPC) takes; a hostile __proto__ name stays a name", async () => {
  const good = await sample();
  const read = checkpointParams(good);
  assert.equal(Object.getPrototypeOf(read.params), Object.prototype);
  assert.equal(Object.getPrototypeOf(read.shapes), Object.prototype);
  assert.deepEqual(structuredClone(read), read);
  // The library names no tensor "__proto__"; a crafted header may.
  const hostile = edit(good, (h) => {
    Object.defineProperty(h, "__proto__", { value: h["fc.bias"], enumerable: true });
    delete h["fc.bias"];
    h.__metadata__.tensor_order = '["fc.weight", "__proto__"]';
  });
  const crafted = checkpointParams(hostile);
  assert.ok(
    Object.hasOwn(crafted.params, "__proto__") && Object.hasOwn(crafted.shapes, "__proto__"),
  );
  assert.equal(Object.getPrototypeOf(crafted.params), Object.prototype);
  assert.deepEqual(crafted.params.__proto__, read.params["fc.bias"]);
  assert.deepEqual(Object.keys(structuredClone(crafted).params), ["fc.weight", "__proto__"]);
});
