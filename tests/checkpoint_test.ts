/**
 * Checkpoints: the safetensors layout, exact resumption across backends, and errors for
 * damaged or hostile files.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adam,
  CheckpointError,
  loadState,
  type OptimizerState,
  radam,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  step,
} from "../mod.ts";
import { MAX_HEADER_BYTES } from "../base/safetensors.ts";
import { caseArb, caseData, lrAt, optimizerFor } from "./cases.ts";
import { hasSlowWeights } from "./util.ts";

/** Bit patterns of a state's params and moments, per tensor and field. */
async function bits(state: OptimizerState): Promise<Record<string, Uint32Array>> {
  const out: Record<string, Uint32Array> = {};
  const params = await readParams(state);
  const { exp_avg, exp_avg_sq } = await readMoments(state);
  for (const name of Object.keys(params)) {
    out[name] = new Uint32Array(params[name].slice().buffer);
    out[`${name}.exp_avg`] = new Uint32Array(exp_avg[name].slice().buffer);
    out[`${name}.exp_avg_sq`] = new Uint32Array(exp_avg_sq[name].slice().buffer);
  }
  if (hasSlowWeights(state)) {
    const slow = await readSlowWeights(state);
    for (const name of Object.keys(slow)) {
      out[`${name}.slow`] = new Uint32Array(slow[name].slice().buffer);
    }
  }
  return out;
}

/** A parsed header, edited freely by the tests. */
// deno-lint-ignore no-explicit-any
type Header = Record<string, any>;

/** Header JSON and data of a safetensors file, read independently of the library. */
function split(bytes: Uint8Array): { header: Header; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  return { header, data: bytes.subarray(8 + n) };
}

/** A file from header text and data. */
function join(headerText: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** The file with its header edited. */
function edit(
  bytes: Uint8Array,
  change: (header: Header) => void,
): Uint8Array {
  const { header, data } = split(bytes);
  change(header);
  return join(JSON.stringify(header), data);
}

async function sample(): Promise<Uint8Array> {
  let state = await radam({ lr: 0.01 }).init({
    "fc.weight": new Float32Array([1, -2, 3, 0.5, 0.25, -1]),
    "fc.bias": new Float32Array([0.1, 0.2]),
  });
  for (let t = 0; t < 3; t++) {
    state = step(state, {
      "fc.weight": new Float32Array([0.1, 0.2, -0.3, 0.4, 0.5, 0.6]),
      "fc.bias": new Float32Array([1, -1]),
    });
  }
  return saveState(state);
}

Deno.test("a checkpoint is safetensors: F32 tensors named as in PyTorch, string metadata", async () => {
  let state = await adam({ lr: 0.5, betas: [0.8, 0.9] }).init({
    a: new Float32Array([1, 2, 3]),
    b: new Float32Array([4]),
  });
  state = step(state, { a: new Float32Array([1, 1, 1]), b: new Float32Array([2]) });
  state = step(state, { a: new Float32Array([1, 0, 1]), b: new Float32Array([-2]) });
  const bytes = await saveState(state);
  const { header, data } = split(bytes);
  const n = bytes.length - data.length - 8;
  assert.equal(n % 8, 0, "data starts 8-byte aligned");
  const metadata = header.__metadata__ as Record<string, string>;
  for (const value of Object.values(metadata)) assert.equal(typeof value, "string");
  assert.equal(metadata.format, "radam.checkpoint");
  assert.equal(metadata.format_version, "1");
  assert.equal(metadata.optimizer, "adam");
  assert.equal(metadata.step, "2");
  assert.equal(metadata.skipped_steps, "0");
  assert.equal(metadata.lr_schedule, "false");
  assert.deepEqual(JSON.parse(metadata.tensor_order), ["a", "b"]);
  assert.deepEqual(JSON.parse(metadata.hyperparameters), {
    lr: 0.5,
    betas: [0.8, 0.9],
    eps: 1e-8,
    weightDecay: 0,
    decoupledWeightDecay: false,
    maximize: false,
    gc: false,
  });
  const params = await readParams(state);
  const moments = await readMoments(state);
  const expected: Record<string, Float32Array> = {
    a: params.a,
    "a.exp_avg": moments.exp_avg.a,
    "a.exp_avg_sq": moments.exp_avg_sq.a,
    b: params.b,
    "b.exp_avg": moments.exp_avg.b,
    "b.exp_avg_sq": moments.exp_avg_sq.b,
  };
  assert.deepEqual(
    Object.keys(header).filter((k) => k !== "__metadata__").sort(),
    [
      ...Object.keys(expected),
    ].sort(),
  );
  for (const [name, values] of Object.entries(expected)) {
    const entry = header[name] as { dtype: string; shape: number[]; data_offsets: number[] };
    assert.equal(entry.dtype, "F32");
    assert.deepEqual(entry.shape, [values.length]);
    const [begin, end] = entry.data_offsets;
    const stored = new Float32Array(data.slice(begin, end).buffer);
    assert.deepEqual(stored, values, name);
  }
  assert.ok(moments.exp_avg_sq.a[0] > 0, "the moments were written, not zeros");
});

Deno.test("N steps, save, load, M steps is bit-identical to N + M steps, across backends", async () => {
  let resumedRuns = 0;
  await fc.assert(
    fc.asyncProperty(
      caseArb(0),
      fc.nat(),
      fc.constantFrom("wasm" as const, "js" as const),
      fc.constantFrom("wasm" as const, "js" as const),
      async (c, cut, from, to) => {
        const n = cut % (c.steps + 1);
        const { params, grads } = caseData(c);
        let straight = await optimizerFor(c, from).init(params);
        let resumed = await optimizerFor(c, from).init(params);
        for (let t = 1; t <= n; t++) {
          straight = step(straight, grads(t));
          resumed = step(resumed, grads(t));
        }
        let bytes: Uint8Array;
        try {
          bytes = await saveState(resumed);
        } catch (e) {
          // A state gone non-finite (e.g. eps = 0 and a zero gradient) cannot be saved.
          assert.match((e as Error).message, /^Cannot checkpoint: .* is (NaN|-?Infinity|-)/);
          const all = Object.values(await bits(straight)).flatMap((
            b,
          ) => [...new Float32Array(b.buffer)]);
          assert.ok(all.some((x) => !Number.isFinite(x) || x < 0));
          return;
        }
        const lr = c.schedule ? (t: number) => lrAt(c, t) : undefined;
        resumed = await loadState(bytes, { backend: to, lr });
        assert.equal(resumed.backend, to);
        assert.equal(resumed.step, straight.step);
        assert.equal(resumed.skippedSteps, straight.skippedSteps);
        assert.deepEqual(resumed.names, straight.names);
        for (let t = n + 1; t <= c.steps; t++) {
          straight = step(straight, grads(t));
          resumed = step(resumed, grads(t));
        }
        assert.deepEqual(await bits(resumed), await bits(straight));
        resumedRuns++;
      },
    ),
    { numRuns: 100 },
  );
  assert.ok(resumedRuns >= 50, `only ${resumedRuns} of 100 cases could be saved`);
});

Deno.test("a state holding NaN or Infinity cannot be saved", async () => {
  let state = await adam({ lr: 0, eps: 0 }).init({ w: new Float32Array([1, 2]) });
  state = step(state, { w: new Float32Array([1, 0]) }); // 0 / (√0 + 0) = NaN in w[1]
  await assert.rejects(saveState(state), /Cannot checkpoint: "w"\[1\] is NaN/);
  let big = await adam().init({ w: new Float32Array([1]) });
  big = step(big, { w: new Float32Array([1e30]) }); // g² overflows f32
  await assert.rejects(saveState(big), /"w.exp_avg_sq"\[0\] is Infinity/);
});

Deno.test('a one-tensor state (name "") round-trips', async () => {
  let state = await adam({ lr: 0.1 }).init(new Float32Array([1, 2, 3, 4, 5]));
  state = step(state, new Float32Array([1, -1, 1, -1, 1]));
  const bytes = await saveState(state);
  assert.deepEqual(
    Object.keys(split(bytes).header).sort(),
    ["", ".exp_avg", ".exp_avg_sq", "__metadata__"],
  );
  const resumed = await loadState(bytes);
  assert.deepEqual(resumed.names, [""]);
  assert.deepEqual(await bits(resumed), await bits(state));
});

Deno.test("parameter names that collide with moment names cannot be saved", async () => {
  const state = await adam().init({ a: new Float32Array(1), "a.exp_avg": new Float32Array(1) });
  await assert.rejects(saveState(state), /"a.exp_avg" occurs twice/);
});

Deno.test("saving leaves the state usable and unchanged", async () => {
  let state = await radam().init({ w: new Float32Array([1, 2, 3]) });
  state = step(state, { w: new Float32Array([1, 1, 1]) });
  const before = await bits(state);
  await saveState(state);
  assert.deepEqual(await bits(state), before);
  state = step(state, { w: new Float32Array([1, 1, 1]) });
  assert.equal(state.step, 2);
});

Deno.test("a schedule must be passed again, and a given lr replaces a stored constant", async () => {
  const schedule = (t: number) => 0.1 / t;
  let state = await radam({ lr: schedule }).init({ w: new Float32Array([1, 2]) });
  state = step(state, { w: new Float32Array([1, 1]) });
  const bytes = await saveState(state);
  await assert.rejects(
    loadState(bytes),
    (e: Error) => e instanceof TypeError && /saved with a learning-rate schedule/.test(e.message),
  );
  assert.equal((await loadState(bytes, { lr: schedule })).step, 1);
  await assert.rejects(loadState(bytes, { lr: -1 }), /Option lr/);

  const constant = await saveState(await radam({ lr: 0 }).init({ w: new Float32Array([1]) }));
  let moved = await loadState(constant, { lr: 0.5 });
  moved = step(moved, { w: new Float32Array([1]) });
  assert.notEqual(moved.params.w[0], 1, "the new lr was used");
});

Deno.test("loadState rejects bad options", async () => {
  const bytes = await sample();
  await assert.rejects(loadState(bytes, { backend: "gpu" as "js" }), RangeError);
  await assert.rejects(loadState(bytes, 3 as never), TypeError);
  await assert.rejects(loadState("abc" as never), TypeError);
});

/** Damaged files, each with the error it must give. */
const DAMAGE: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
  ["empty file", () => new Uint8Array(0), /truncated/],
  ["truncated header", (b) => b.subarray(0, 50), /truncated/],
  ["truncated data", (b) => b.subarray(0, b.length - 4), /run past/],
  [
    "trailing bytes",
    (b) => join(JSON.stringify(split(b).header), new Uint8Array([...split(b).data, 0, 0, 0, 0])),
    /tensors cover/,
  ],
  ["header above the cap", (b) => {
    const out = b.slice();
    new DataView(out.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
    return out;
  }, /cap/],
  ["header length 2⁶⁴ − 1", (b) => {
    const out = b.slice();
    new DataView(out.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    return out;
  }, /cap/],
  ["malformed JSON", (b) => join('{"a": ', split(b).data), /not valid JSON/],
  ["JSON array", (b) => join("[1, 2]", split(b).data), /must be a JSON object/],
  ["JSON null", (b) => join("null", split(b).data), /must be a JSON object/],
  ["invalid UTF-8", (b) => {
    const out = b.slice();
    out[9] = 0xff;
    return out;
  }, /UTF-8/],
  ["F16 dtype", (b) => edit(b, (h) => h["fc.bias"].dtype = "F16"), /dtype "F16"/],
  ["missing dtype", (b) => edit(b, (h) => delete h["fc.bias"].dtype), /dtype missing/],
  ["shape disagrees with offsets", (b) => edit(b, (h) => h["fc.bias"].shape = [3]), /shape \[3\]/],
  ["negative shape", (b) => edit(b, (h) => h["fc.bias"].shape = [-2]), /shape must be/],
  [
    "shape of another rank, same size",
    (b) => edit(b, (h) => h["fc.weight.exp_avg"].shape = [2, 3]),
    /unlike "fc.weight"/,
  ],
  [
    "offsets out of range",
    (b) => edit(b, (h) => h["fc.bias"].data_offsets = [1e6, 1e6 + 8]),
    /run past/,
  ],
  ["reversed offsets", (b) => edit(b, (h) => h["fc.bias"].data_offsets = [8, 0]), /begin ≤ end/],
  [
    "fractional offsets",
    (b) => edit(b, (h) => h["fc.bias"].data_offsets = [0.5, 8.5]),
    /data_offsets/,
  ],
  ["overlapping offsets", (b) =>
    edit(b, (h) => {
      const [begin] = h["fc.weight"].data_offsets;
      h["fc.bias"].data_offsets = [begin, begin + 8];
    }), /overlaps|gap/],
  ["duplicate tensor key", (b) => {
    const { header, data } = split(b);
    const text = JSON.stringify(header);
    const entry = JSON.stringify(header["fc.bias"]);
    return join(text.replace("{", `{"fc.bias":${entry},`), data);
  }, /key "fc.bias" twice/],
  ["duplicate metadata key", (b) => {
    const { header, data } = split(b);
    return join(
      JSON.stringify(header).replace('"__metadata__":{', '"__metadata__":{"step":"0",'),
      data,
    );
  }, /key "step" twice/],
  ["missing tensor", (b) => {
    const { header, data } = split(b);
    const [begin, end] = header["fc.bias.exp_avg"].data_offsets;
    delete header["fc.bias.exp_avg"];
    for (const v of Object.values(header) as { data_offsets?: number[] }[]) {
      if (v.data_offsets && v.data_offsets[0] >= end) {
        v.data_offsets = v.data_offsets.map((x) => x - (end - begin));
      }
    }
    return join(
      JSON.stringify(header),
      new Uint8Array([...data.subarray(0, begin), ...data.subarray(end)]),
    );
  }, /lacks the tensor "fc.bias.exp_avg"/],
  ["unexpected tensor", (b) =>
    edit(b, (h) => {
      h["fc.bias.exp_avg_sq2"] = h["fc.bias.exp_avg_sq"];
      delete h["fc.bias.exp_avg_sq"];
    }), /unexpected tensor "fc.bias.exp_avg_sq2"/],
  ["metadata not strings", (b) => edit(b, (h) => h.__metadata__.step = 3), /must be a string/],
  ["metadata missing", (b) => edit(b, (h) => delete h.__metadata__), /lacks format/],
  ["another format", (b) => edit(b, (h) => h.__metadata__.format = "pt"), /format "pt"/],
  [
    "another format version",
    (b) => edit(b, (h) => h.__metadata__.format_version = "2"),
    /version "2"/,
  ],
  [
    "another optimizer",
    (b) => edit(b, (h) => h.__metadata__.optimizer = "sgd"),
    /unknown optimizer "sgd"/,
  ],
  [
    "prototype-named optimizer",
    (b) => edit(b, (h) => h.__metadata__.optimizer = "constructor"),
    /unknown optimizer/,
  ],
  [
    "hyperparameters of another optimizer",
    (b) => edit(b, (h) => h.__metadata__.optimizer = "adam"),
    /Unknown option threshold/,
  ],
  ["hyperparameter out of range", (b) =>
    edit(b, (h) => {
      const hp = JSON.parse(h.__metadata__.hyperparameters);
      hp.betas = [1.5, 0.9];
      h.__metadata__.hyperparameters = JSON.stringify(hp);
    }), /hyperparameters are invalid: Option betas\[0\]/],
  ["hyperparameter missing", (b) =>
    edit(b, (h) => {
      const hp = JSON.parse(h.__metadata__.hyperparameters);
      delete hp.weightDecay;
      h.__metadata__.hyperparameters = JSON.stringify(hp);
    }), /lack weightDecay/],
  [
    "hyperparameters not JSON",
    (b) => edit(b, (h) => h.__metadata__.hyperparameters = "{"),
    /not valid JSON/,
  ],
  ["negative step", (b) => edit(b, (h) => h.__metadata__.step = "-1"), /step must be/],
  ["huge step", (b) => edit(b, (h) => h.__metadata__.step = "1e400"), /step must be/],
  [
    "skipped steps not a count",
    (b) => edit(b, (h) => h.__metadata__.skipped_steps = "1.5"),
    /skipped_steps must be/,
  ],
  [
    "tensor order twice",
    (b) => edit(b, (h) => h.__metadata__.tensor_order = '["fc.bias","fc.bias"]'),
    /twice/,
  ],
  ["tensor order empty", (b) => edit(b, (h) => h.__metadata__.tensor_order = "[]"), /non-empty/],
  [
    "NaN in a moment",
    (b) => poke(b, "fc.weight.exp_avg", 2, NaN),
    /"fc.weight.exp_avg"\[2\] is NaN/,
  ],
  ["Infinity in a parameter", (b) => poke(b, "fc.bias", 1, Infinity), /"fc.bias"\[1\] is Infinity/],
  ["negative second moment", (b) => poke(b, "fc.bias.exp_avg_sq", 0, -1), /non-negative/],
];

/** The file with one element of a tensor set to `value`. */
function poke(bytes: Uint8Array, name: string, index: number, value: number): Uint8Array {
  const out = bytes.slice();
  const { header, data } = split(out);
  const [begin] = (header[name] as { data_offsets: number[] }).data_offsets;
  new DataView(data.buffer, data.byteOffset).setFloat32(begin + index * 4, value, true);
  return out;
}

Deno.test("damaged and hostile files throw a CheckpointError naming the problem", async () => {
  const good = await sample();
  assert.equal((await loadState(good)).step, 3, "the undamaged file loads");
  for (const [what, damage, message] of DAMAGE) {
    const bytes = damage(good);
    await assert.rejects(loadState(bytes, { backend: "js" }), (e: Error) => {
      assert.ok(e instanceof CheckpointError, `${what}: ${e}`);
      assert.ok(e instanceof RangeError);
      assert.equal(e.name, "CheckpointError");
      assert.match(e.message, message, what);
      return true;
    }, what);
  }
});

Deno.test("a file at an unaligned offset loads the same", async () => {
  const good = await sample();
  const shifted = new Uint8Array(good.length + 1);
  shifted.set(good, 1);
  const a = await loadState(shifted.subarray(1));
  const b = await loadState(good);
  assert.deepEqual(await bits(a), await bits(b));
});

/** Mutations of a valid file: byte writes, truncation, appended bytes, header-length edits. */
const mutationArb = fc.oneof(
  fc.record({
    kind: fc.constant("bytes" as const),
    writes: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
      minLength: 1,
      maxLength: 8,
    }),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("append" as const), extra: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ kind: fc.constant("length" as const), length: fc.bigInt(0n, 2n ** 64n - 1n) }),
  fc.record({
    kind: fc.constant("number" as const),
    which: fc.nat(),
    value: fc.constantFrom("0", "1", "-1", "4", "7", "8", "3.5", "1e300", "9007199254740993", "-0"),
  }),
  fc.record({
    kind: fc.constant("text" as const),
    at: fc.nat(),
    insert: fc.constantFrom(
      '"',
      "{",
      "}",
      "[",
      "]",
      ",",
      ":",
      "0",
      "-1",
      "1e308",
      "\\",
      "null",
      " ",
    ),
  }),
);

type Mutation = typeof mutationArb extends fc.Arbitrary<infer M> ? M : never;

function mutate(good: Uint8Array, m: Mutation): Uint8Array {
  switch (m.kind) {
    case "bytes": {
      const out = good.slice();
      for (const [at, value] of m.writes) out[at % out.length] = value;
      return out;
    }
    case "truncate":
      return good.slice(0, m.at % good.length);
    case "append":
      return new Uint8Array([...good, ...m.extra]);
    case "length": {
      const out = good.slice();
      new DataView(out.buffer).setBigUint64(0, m.length, true);
      return out;
    }
    case "number": {
      // Replace one number of the header (offsets, shapes, ...) with an awkward one.
      const { header, data } = split(good);
      const text = JSON.stringify(header);
      const numbers = [...text.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?/g)];
      const hit = numbers[m.which % numbers.length];
      return join(
        text.slice(0, hit.index) + m.value + text.slice(hit.index! + hit[0].length),
        data,
      );
    }
    case "text": {
      const { header, data } = split(good);
      const text = JSON.stringify(header);
      const at = m.at % text.length;
      return join(text.slice(0, at) + m.insert + text.slice(at + 1), data);
    }
  }
}

Deno.test("fuzz: mutated and truncated files load a valid state or throw a CheckpointError", async () => {
  const good = await sample();
  let loaded = 0;
  await fc.assert(
    fc.asyncProperty(mutationArb, async (m) => {
      const bytes = mutate(good, m);
      let state: OptimizerState;
      try {
        state = await loadState(bytes, { backend: "js" });
      } catch (e) {
        if (e instanceof CheckpointError) return;
        throw e;
      }
      loaded++;
      // What loaded is a working state no larger than the file warrants.
      const params = await readParams(state);
      const total = Object.values(params).reduce((s, p) => s + p.length, 0);
      assert.ok(total * 4 * 3 <= bytes.length, "arena fits the file");
      state = step(state, Object.fromEntries(state.names.map((n) => [n, params[n].fill(1)])));
      assert.equal(state.step, Number(split(bytes).header.__metadata__.step) + 1);
    }),
    { numRuns: 3000 },
  );
  assert.ok(loaded > 0, "some mutations (e.g. of data bytes) still load");
});
