/**
 * Damaged and hostile checkpoints: each throws a CheckpointError naming the problem before
 * anything is allocated, and thousands of mutated and truncated files load a valid state or
 * throw one.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  adam,
  adamw,
  CheckpointError,
  loadState,
  lookahead,
  ranger,
  readParams,
  saveState,
  step,
} from "../mod.ts";
import { MAX_HEADER_BYTES } from "../base/safetensors.ts";
import { edit, join, loadOrRefused, sample, split } from "./checkpoint_files.ts";
import { saying } from "./util.ts";

/** Damaged files, each with the error it must give. */
/** What a damage is, how it is made from a good file, and what its error says. */
type Damage = [string, (b: Uint8Array) => Uint8Array, RegExp];

const DAMAGE: Damage[] = [
  ["empty file", () => new Uint8Array(0), /truncated/],
  ["truncated header", (b) => b.subarray(0, 50), /truncated/],
  ["truncated data", (b) => b.subarray(0, b.length - 4), /truncated: expected at least/],
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
  // A safetensors file of weights alone (no metadata) is said not to be a checkpoint.
  [
    "metadata missing",
    (b) => edit(b, (h) => delete h.__metadata__),
    /^Not an optimizer checkpoint of this library: its metadata lacks format/,
  ],
  ["another format", (b) => edit(b, (h) => h.__metadata__.format = "pt"), /format "pt"/],
  [
    "another format version",
    (b) => edit(b, (h) => h.__metadata__.format_version = "2"),
    /version "2"/,
  ],
  [
    "another optimizer",
    (b) => edit(b, (h) => h.__metadata__.optimizer = "no-such-optimizer"),
    /unknown optimizer "no-such-optimizer"/,
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
  // How a state runs is loadState's to say: a file holding threads made it start workers.
  ...["threads", "threadThreshold", "backend", "states"].map((
    key,
  ): Damage => [`run option ${key} in the hyperparameters`, (b: Uint8Array) =>
    edit(b, (h) => {
      const hp = JSON.parse(h.__metadata__.hyperparameters);
      hp[key] = { threads: 2, threadThreshold: 0, backend: "wasm", states: "8bit" }[key];
      h.__metadata__.hyperparameters = JSON.stringify(hp);
    }), new RegExp(`hyperparameters hold ${key}, which checkpoints do not store`)]
  ),
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

Deno.test("LookAhead's stored settings are k and alpha, in lookahead only: a Ranger file's lookahead holding threads started workers", async () => {
  const params = { w: new Float32Array([1, -2, 3]) };
  const files = {
    ranger: await saveState(await ranger({ k: 3 }).init(params)),
    "lookahead(adam)": await saveState(await lookahead(adam(), { k: 3 }).init(params)),
  };
  type Hyper = { lookahead: Record<string, unknown>; [key: string]: unknown };
  const damages: [string, (hp: Hyper) => void, RegExp][] = [
    [
      "threads",
      (hp) => Object.assign(hp.lookahead, { threads: 2, threadThreshold: 0 }),
      /holds threads/,
    ],
    ["backend", (hp) => hp.lookahead.backend = "js", /holds backend/],
    ["a rule's option", (hp) => hp.lookahead.betas = [0.5, 0.5], /holds betas/],
    ["k missing", (hp) => delete hp.lookahead.k, /lacks k/],
    ["alpha missing", (hp) => delete hp.lookahead.alpha, /lacks alpha/],
    // Ranger's factory takes k and alpha beside its options: such a k was ignored.
    ["k beside lookahead", (hp) => hp.k = 9, /hold k outside lookahead/],
    ["alpha beside lookahead", (hp) => hp.alpha = 0.9, /hold alpha outside lookahead/],
  ];
  for (const [name, good] of Object.entries(files)) {
    const resumed = await loadState(good);
    assert.deepEqual(resumed.optimizer, name, "the undamaged file loads");
    for (const [what, change, message] of damages) {
      const bytes = edit(good, (h) => {
        const hp = JSON.parse(h.__metadata__.hyperparameters);
        change(hp);
        h.__metadata__.hyperparameters = JSON.stringify(hp);
      });
      await assert.rejects(loadState(bytes), (e: Error) => {
        assert.ok(e instanceof CheckpointError, `${name}, ${what}: ${e}`);
        assert.match(e.message, message, `${name}, ${what}`);
        return true;
      }, `${name}, ${what}`);
    }
  }
});

Deno.test("stored parameter groups hold their lrScale and weightDecay: one left out was defaulted, and groups left out were dropped", async () => {
  const opt = adamw({ weightDecay: 0.1, groups: [{ match: /b/, lrScale: 2, weightDecay: 0 }] });
  const good = await saveState(await opt.init({ w: new Float32Array(2), b: new Float32Array(2) }));
  assert.equal((await loadState(good)).step, 0, "the undamaged file loads");
  const damages: [string, (g: Record<string, unknown>) => void, RegExp][] = [
    ["weightDecay missing", (g) => delete g.weightDecay, /got lrScale$/],
    ["lrScale missing", (g) => delete g.lrScale, /got weightDecay$/],
    ["another setting", (g) => g.match = "b", /got lrScale, weightDecay, match$/],
  ];
  for (const [what, change, message] of damages) {
    const bytes = edit(good, (h) => {
      const hp = JSON.parse(h.__metadata__.hyperparameters);
      change(hp.groups[0]);
      h.__metadata__.hyperparameters = JSON.stringify(hp);
    });
    await assert.rejects(loadState(bytes), (e: Error) => {
      assert.ok(e instanceof CheckpointError, `${what}: ${e}`);
      assert.match(e.message, /groups\[0\] must hold lrScale and weightDecay only/, what);
      assert.match(e.message, message, what);
      return true;
    }, what);
  }
  // Groups left out where the map of tensors to them is kept: b was decayed as w is.
  const lost = edit(good, (h) => {
    const hp = JSON.parse(h.__metadata__.hyperparameters);
    delete hp.groups;
    h.__metadata__.hyperparameters = JSON.stringify(hp);
  });
  await assert.rejects(loadState(lost), /tensor_groups, but its hyperparameters lack groups/);
  // A tensor named twice in tensor_order is its fault, whatever the map's length: that of the
  // order (one more than the map's), or that of the tensors.
  for (const map of ["[0,1]", "[0,1,0]"]) {
    const twice = edit(good, (h) => {
      h.__metadata__.tensor_order = '["w","b","w"]';
      h.__metadata__.tensor_groups = map;
    });
    await assert.rejects(
      loadState(twice),
      saying(
        CheckpointError as ErrorConstructor,
        "Checkpoint metadata tensor_order names a tensor twice",
      ),
    );
  }
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
      let state = await loadOrRefused(bytes);
      if (state === undefined) return;
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
