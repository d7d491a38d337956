/**
 * Checkpoints: the safetensors layout, resumption (exact resumption across backends, for every
 * rule, is in tests/rules_test.ts), Ranger's name, and bad options; damaged and hostile files
 * are in tests/checkpoint_damage_test.ts.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  adam,
  dispose,
  lion,
  loadState,
  lookahead,
  type OptimizerState,
  radam,
  ranger,
  readMoments,
  readParams,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { writeSafetensors } from "../base/safetensors.ts";
import { assertSameBits, readAll } from "./cases.ts";
import { edit, sample, sample8bit, split } from "./checkpoint_files.ts";
import { saying } from "./util.ts";

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

Deno.test("a state holding NaN or Infinity cannot be saved", async () => {
  let state = await adam({ lr: 0, eps: 0 }).init({ w: new Float32Array([1, 2]) });
  state = step(state, { w: new Float32Array([1, 0]) }); // 0 / (√0 + 0) = NaN in w[1]
  await assert.rejects(saveState(state), /Cannot checkpoint: "w"\[1\] is NaN/);
  let big = await adam().init({ w: new Float32Array([1]) });
  big = step(big, { w: new Float32Array([1e30]) }); // g² overflows f32
  await assert.rejects(saveState(big), /"w.exp_avg_sq"\[0\] is Infinity/);
});

Deno.test("a state that cannot be saved names the first bad tensor in the order given, 32-bit or 8-bit", async () => {
  // An 8-bit state named the first in its arena's order (its 8-bit tensors last), where a
  // 32-bit one, and a step refusing the same gradients, named the first in the order given.
  const lengths: Record<string, number> = { big: 70_000, small: 10, mid: 300 };
  for (const order of [["big", "small", "mid"], ["small", "big", "mid"], ["mid", "big", "small"]]) {
    for (const states of ["32bit", "8bit"] as const) {
      const params = Object.fromEntries(order.map((n) => [n, new Float32Array(lengths[n])]));
      const nan = () => Object.fromEntries(order.map((n) => [n, params[n].slice().fill(NaN)]));
      let state = await radam({ states, nonFinite: "throw" }).init(params);
      try {
        assert.throws(() => step(state, nan()), saying(RangeError, `"${order[0]}"`));
        dispose(state);
        state = await radam({ states, nonFinite: "propagate" }).init(params);
        state = step(state, nan());
        await assert.rejects(
          saveState(state),
          saying(RangeError, `Cannot checkpoint: "${order[0]}"[0] is NaN`),
        );
      } finally {
        dispose(state);
      }
    }
  }
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
  await assertSameBits(resumed, state, "resumed");
});

Deno.test("parameter names that collide with moment names are refused before training", async () => {
  await assert.rejects(
    adam().init({ a: new Float32Array(1), "a.exp_avg": new Float32Array(1) }),
    (e: Error) => e instanceof TypeError && /"a\.exp_avg" twice/.test(e.message),
  );
});

Deno.test("saving leaves the state usable and unchanged", async () => {
  let state = await radam().init({ w: new Float32Array([1, 2, 3]) });
  state = step(state, { w: new Float32Array([1, 1, 1]) });
  const before = await readAll(state);
  await saveState(state);
  assert.deepEqual(await readAll(state), before);
  state = step(state, { w: new Float32Array([1, 1, 1]) });
  assert.equal(state.step, 2);
});

Deno.test("a state at 2^53 − 1 steps refuses the next step, unchanged, where it counted no further and saved a checkpoint loadState refused", async () => {
  const last = edit(await sample(), (h) => h.__metadata__.step = String(Number.MAX_SAFE_INTEGER));
  for (const backend of ["wasm", "js"] as const) {
    const state = await loadState(last, { backend });
    const before = await readAll(state);
    const grads = { "fc.weight": new Float32Array(6).fill(0.5), "fc.bias": new Float32Array(2) };
    assert.throws(() => step(state, grads), saying(RangeError, `step ${2 ** 53}`));
    assert.equal(state.step, Number.MAX_SAFE_INTEGER);
    assert.deepEqual(await readAll(state), before);
    assert.equal((await loadState(await saveState(state))).step, Number.MAX_SAFE_INTEGER);
  }
});

Deno.test("a state that has skipped 2^53 − 1 steps refuses to skip another, unchanged, where it counted past what a checkpoint holds and could not be saved", async () => {
  const most = edit(await sample(), (h) => h.__metadata__.skipped_steps = String(2 ** 53 - 2));
  const bad = { "fc.weight": new Float32Array(6).fill(NaN), "fc.bias": new Float32Array(2) };
  const good = { "fc.weight": new Float32Array(6).fill(0.5), "fc.bias": new Float32Array(2) };
  for (const backend of ["wasm", "js"] as const) {
    let state = await loadState(most, { backend });
    state = step(state, bad);
    assert.equal(state.skippedSteps, Number.MAX_SAFE_INTEGER);
    const before = await readAll(state);
    assert.throws(
      () => step(state, bad),
      saying(RangeError, 'parameter "fc.weight" holds NaN at index 0, and the state cannot skip'),
    );
    assert.equal(state.skippedSteps, Number.MAX_SAFE_INTEGER);
    assert.equal(state.step, 3);
    assert.deepEqual(await readAll(state), before);
    // A step it takes is counted as ever, and the state saves and loads with its counts.
    state = step(state, good);
    const back = await loadState(await saveState(state));
    assert.deepEqual([back.step, back.skippedSteps], [4, Number.MAX_SAFE_INTEGER]);
  }
});

Deno.test("an option of −0 resumes exactly: it is taken as 0, which is what a checkpoint's JSON holds", async () => {
  // JSON.stringify(-0) is "0": a state trained on lr, β or LookAhead's α of −0 resumed on +0,
  // with the other sign of some zero parameter or moment.
  const made = [
    sgd({ lr: -0 }),
    adam({ lr: 0.1, betas: [-0, 0.9] }),
    lion({ lr: 0.1, betas: [-0, -0] }),
    ranger({ lr: 0.1, k: 1, alpha: -0 }),
    lookahead(adam({ lr: 0.1 }), { k: 1, alpha: -0 }),
    sgd({ lr: 0.1, groups: [{ match: /w/, lrScale: -0 }] }),
  ];
  for (const opt of made) {
    const zeros = () => ({ w: new Float32Array([-0, 0, 1, -1, -0, 0]) });
    const grad = () => ({ w: new Float32Array([-0, -0, 0, -0, 0, 0]) });
    let state = step(await opt.init(zeros()), grad());
    let resumed = await loadState(await saveState(state));
    for (let t = 0; t < 3; t++) {
      state = step(state, grad());
      resumed = step(resumed, grad());
    }
    await assertSameBits(resumed, state, `${opt.settings.name} ${JSON.stringify(opt.settings)}`);
  }
});

Deno.test("a checkpoint is of the state saveState was given, whatever steps follow before it is awaited", async () => {
  // Saving alongside training: saveState(state).then(write), and the loop steps on at once.
  // The file was written after an await, from the arena the next steps had already changed:
  // their parameters and moments under the given state's step count, a torn checkpoint.
  const runs = [["wasm", 1], ["wasm", 2], ["js", 1]] as const;
  for (const [backend, threads] of runs) {
    for (const states of ["32bit", "8bit"] as const) {
      const what = `${backend} on ${threads} thread(s), ${states}`;
      const params = { w: new Float32Array(4096).fill(1), b: new Float32Array([1, 2]) };
      const grads = { w: new Float32Array(4096).fill(0.5), b: new Float32Array([1, -1]) };
      const opt = ranger({ backend, threads, threadThreshold: 0, states, k: 2 });
      let state = await opt.init(params);
      try {
        assert.equal(state.threads, threads, what);
        state = step(state, grads);
        const expected = await saveState(state);
        const pending = saveState(state);
        for (let t = 0; t < 3; t++) state = step(state, grads);
        const bytes = await pending;
        const same = bytes.length === expected.length && bytes.every((x, i) => x === expected[i]);
        assert.ok(same, `${what}: the file holds the later steps`);
      } finally {
        dispose(state);
      }
    }
  }
});

Deno.test("a group's match function that steps or disposes the state while saveState runs makes it reject, not write a torn file", async () => {
  // saveState read the arena, then called each group's match (for tensor_groups): a match that
  // stepped the state put the next step's parameters and moments under this one's step count.
  const runs = [["wasm", 1], ["wasm", 2], ["js", 1]] as const;
  for (const [backend, threads] of runs) {
    for (const use of ["step", "dispose"] as const) {
      let live: OptimizerState | undefined;
      const match = (name: string) => {
        const s = live;
        live = undefined;
        if (s && use === "step") state = step(s, { w: new Float32Array([1, 1]), b: grad });
        if (s && use === "dispose") dispose(s);
        return name === "b";
      };
      const grad = new Float32Array(1);
      const opt = radam({ backend, threads, threadThreshold: 0, groups: [{ match, lrScale: 2 }] });
      let state = await opt.init({ w: new Float32Array([1, 2]), b: grad });
      try {
        state = step(state, { w: new Float32Array([1, 1]), b: grad });
        const before = await saveState(state);
        live = state;
        const consumed = state;
        await assert.rejects(saveState(consumed), (e) => {
          assert.ok(e instanceof TypeError, `${backend} × ${threads}, ${use}: ${e}`);
          // It names the match, not only "consumed by step()" (or "disposed … init").
          const did = use === "step" ? "stepped" : "disposed";
          assert.match(
            e.message,
            new RegExp(
              `^A parameter group's match function ${did} this state while saveState\\(\\) called it `,
            ),
          );
          assert.match(e.message, /nothing was written/);
          return true;
        });
        if (use === "step") {
          assert.equal(state.step, 2);
          assert.equal((await loadState(before, { backend: "js" })).step, 1);
        }
      } finally {
        dispose(state);
      }
    }
  }
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

Deno.test("a file at an unaligned offset loads the same", async () => {
  const good = await sample();
  const shifted = new Uint8Array(good.length + 1);
  shifted.set(good, 1);
  const a = await loadState(shifted.subarray(1));
  const b = await loadState(good);
  await assertSameBits(a, b, "unaligned");
});

Deno.test("a file in a Node.js Buffer at an unaligned offset loads the same (its slice is a view)", async () => {
  for (const good of [await sample(), await sample8bit()]) {
    const b = await loadState(good);
    for (const offset of [1, 2, 3]) {
      // A checkpoint inside a larger message (an upload's body part, a record of a log).
      const message = Buffer.alloc(good.length + 8);
      message.set(good, offset);
      const a = await loadState(message.subarray(offset, offset + good.length));
      await assertSameBits(a, b, `Buffer at offset ${offset}`);
    }
  }
});

Deno.test('Ranger is named "ranger", and a checkpoint of 0.1.0 naming it "lookahead(ranger)" loads', async () => {
  const params = { "fc.weight": { data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] } };
  const grads = { "fc.weight": new Float32Array([0.5, -1, 2, 0.25, 1, -3]) };
  let state = await ranger({ lr: 0.1, k: 2 }).init(params);
  state = step(state, grads);
  assert.equal(state.optimizer, "ranger");
  const bytes = await saveState(state);
  const { header, data } = split(bytes);
  assert.equal(header.__metadata__.optimizer, "ranger");
  // The same checkpoint as 0.1.0 wrote it: the same tensors, the old name.
  const tensors = Object.entries(header).filter(([name]) => name !== "__metadata__").map((
    [name, entry],
  ) => ({
    name,
    shape: entry.shape,
    data: new Float32Array(data.slice(entry.data_offsets[0], entry.data_offsets[1]).buffer),
  }));
  const old = writeSafetensors(tensors, {
    ...header.__metadata__,
    optimizer: "lookahead(ranger)",
  });
  // Resumed from either and stepped (a sync step, k = 2): the bits of the state stepped on.
  const fromNew = step(await loadState(bytes), grads);
  const fromOld = step(await loadState(old), grads);
  state = step(state, grads);
  assert.equal(fromOld.optimizer, "ranger");
  await assertSameBits(fromNew, state, "now");
  await assertSameBits(fromOld, state, "0.1.0");
});
