/**
 * Rough edges a new user hits, each once silent: a parameter group whose `match` takes no tensor
 * (a typo in its pattern trained every tensor at the default settings) is a TypeError at `init`
 * naming the group and the tensors; one Float32Array given under two names (or overlapping views
 * of one buffer) is a RangeError naming both, where each name got its own diverging copy; the
 * schedules refuse a step below 1 or NaN (a 0-based `s(0)` returned a rate off the curve,
 * `linearWarmup`'s negative below it), or past 2⁵³ − 1, where no state steps; and `cosineDecay`
 * to a higher `finalLr` rises, as PyTorch's `CosineAnnealingLR` does.
 */
import assert from "node:assert/strict";
import {
  adamw,
  chain,
  constantLr,
  cosineDecay,
  linearWarmup,
  loadState,
  oneCycle,
  radam,
  readParams,
  saveState,
  step,
} from "../mod.ts";

const layer = () => ({
  "fc.weight": { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] },
  "fc.bias": new Float32Array([0.5, -0.5]),
  "head.weight": new Float32Array([1, -1]),
});

/** A check of a thrown error: its class, and each of `parts` in its message. */
const saying = (kind: ErrorConstructor, ...parts: string[]) => (e: unknown) => {
  assert.ok(e instanceof kind, `expected a ${kind.name}, got ${e}`);
  for (const part of parts) assert.ok((e as Error).message.includes(part), (e as Error).message);
  return true;
};

Deno.test("newcomer groups: a group whose match takes no tensor is a TypeError at init naming it and the tensors", async () => {
  for (const backend of ["wasm", "js"] as const) {
    await assert.rejects(
      () => adamw({ groups: [{ match: /\.bais$/, weightDecay: 0 }], backend }).init(layer()),
      saying(TypeError, "groups[0]", "/\\.bais$/", '"fc.weight", "fc.bias", "head.weight"'),
    );
    // The second group's tensors all go to the first: it does nothing either.
    await assert.rejects(
      () =>
        adamw({
          groups: [{ match: /weight/, lrScale: 2 }, { match: (n) => n.startsWith("head.") }],
          backend,
        }).init(layer()),
      saying(TypeError, "groups[1]", "taken by an earlier group"),
    );
    await assert.rejects(
      () => radam({ groups: [{ match: /w/ }], backend }).init(new Float32Array(2)),
      saying(TypeError, "groups[0]", "bare Float32Array"),
    );
  }
});

Deno.test("newcomer groups: groups that each take a tensor train, save and load as before", async () => {
  const opt = adamw({
    lr: 0.1,
    weightDecay: 0.1,
    groups: [{ match: /\.bias$/, weightDecay: 0 }, { match: /^head\./, lrScale: 0.5 }],
  });
  let state = await opt.init(layer());
  state = step(state, {
    "fc.weight": new Float32Array([1, 1, 1, 1]),
    "fc.bias": new Float32Array([1, 1]),
    "head.weight": new Float32Array([1, 1]),
  });
  const loaded = await loadState(await saveState(state));
  assert.deepEqual(await readParams(loaded), await readParams(state));
});

Deno.test("newcomer params: one Float32Array under two names is a RangeError naming both", async () => {
  const w = new Float32Array([1, 2, 3, 4]);
  await assert.rejects(
    () => radam().init({ a: w, b: w }),
    saying(RangeError, 'parameter "a" and parameter "b"', "the same Float32Array twice"),
  );
  await assert.rejects(
    () => radam({ backend: "js" }).init({ a: w, b: { data: w, shape: [2, 2] } }),
    saying(RangeError, 'parameter "a" and parameter "b"'),
  );
  // Views of overlapping bytes, given in any order.
  await assert.rejects(
    () => radam().init({ x: new Float32Array(2), late: w.subarray(1, 3), early: w.subarray(0, 2) }),
    saying(RangeError, 'parameter "late" and parameter "early"', "overlapping bytes"),
  );
});

Deno.test("newcomer params: disjoint views of one buffer, and empty ones, are distinct tensors", async () => {
  const flat = new Float32Array([1, 2, 3, 4, 5]);
  const params = { a: flat.subarray(0, 2), b: flat.subarray(2), none: flat.subarray(2, 2) };
  let state = await radam({ lr: 0.1 }).init(params);
  state = step(state, {
    a: new Float32Array([1, 1]),
    b: new Float32Array([1, 1, 1]),
    none: new Float32Array(0),
  });
  assert.equal(state.step, 1);
});

Deno.test("newcomer schedules: each schedule refuses a step below 1, past 2⁵³ − 1 or NaN, naming its maker", () => {
  const schedules = {
    linearWarmup: linearWarmup(1e-3, { warmupSteps: 10 }),
    cosineDecay: cosineDecay(1e-3, { decaySteps: 10 }),
    oneCycle: oneCycle(1e-3, { totalSteps: 10 }),
    chain: chain([constantLr(1e-3), 5], [constantLr(1e-4), 5]),
  };
  for (const [maker, s] of Object.entries(schedules)) {
    assert.throws(() => s(0), saying(RangeError, maker, "got 0", "count from 0"));
    assert.throws(() => s(-3), saying(RangeError, maker, "got -3"));
    assert.throws(() => s(NaN), saying(RangeError, maker, "got NaN"));
    // Past 2⁵³ − 1, where t and t + 1 are one number: no state steps there.
    for (const t of [2 ** 53, 2 ** 60, Infinity]) {
      assert.throws(() => s(t), saying(RangeError, maker, "from 1 to 2⁵³ − 1", `got ${t}`));
    }
    assert.ok(Number.isFinite(s(Number.MAX_SAFE_INTEGER)));
    assert.ok(Number.isFinite(s(1)) && s(1) >= 0);
    assert.ok(Number.isFinite(s(1.5)) && s(1.5) >= 0); // a fractional step ≥ 1 is on the curve
  }
});

Deno.test("newcomer schedules: cosineDecay to a higher finalLr rises along the half cosine, as PyTorch's", () => {
  const s = cosineDecay(1e-3, { decaySteps: 11, finalLr: 1e-2 });
  const values = Array.from({ length: 12 }, (_, i) => s(i + 1));
  assert.ok(Math.abs(values[0] - 1e-3) < 1e-18);
  assert.ok(Math.abs(values[10] - 1e-2) < 1e-18);
  assert.equal(values[11], values[10]);
  for (let i = 1; i < values.length - 1; i++) assert.ok(values[i] > values[i - 1]);
  // Halfway: the mean of the two, as the decay's.
  assert.ok(Math.abs(values[5] - (1e-3 + 1e-2) / 2) < 1e-15);
});
