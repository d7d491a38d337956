/**
 * `init(params, { from })`: a state made from another over a changed set of tensors. The tensors
 * that stay take the moments (8-bit codes as they are), slow weights and step count of `from`,
 * bit for bit; new ones start fresh at that step count. The reference for both: one state over
 * the new set all along, whose new tensors were given zero gradients until the change (with no
 * weight decay, a zero gradient changes no rule's parameters or moments), on every CPU backend
 * and in both states formats. Bad `from`s are refused at the call, changing nothing.
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
  ranger,
  readMoments,
  saveState,
  sgd,
  step,
} from "../mod.ts";
import { contents, difference } from "./state_contents.ts";
import { bits, randoms, saying } from "./util.ts";

type Factory = (options: Record<string, unknown>) => Optimizer<unknown>;

/** Optimizers of every rule, with and without LookAhead, with no weight decay. */
const FACTORIES: Record<string, Factory> = {
  radam: (o) => radam({ ...o, weightDecay: 0 }),
  adam: (o) => adam(o),
  adamw: (o) => adamw({ ...o, weightDecay: 0 }),
  lion: (o) => lion(o),
  sgd: (o) => sgd({ ...o, momentum: 0.9 }),
  ranger: (o) => ranger({ ...o, weightDecay: 0 }),
  "lookahead(adam)": (o) => lookahead(adam(o), { k: 3 }),
};

async function assertSameState(a: OptimizerState, b: OptimizerState): Promise<void> {
  assert.equal(difference(await contents(a), await contents(b)), undefined);
}

Deno.test("init from: the tensors that stay keep their state, new ones start fresh at its step count (every rule, format and CPU backend)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        rule: fc.constantFrom(...Object.keys(FACTORIES)),
        states: fc.constantFrom("32bit", "8bit"),
        before: fc.constantFrom("js", "wasm"),
        after: fc.constantFrom("js", "wasm"),
        lengths: fc.tuple(
          fc.constantFrom(1, 7, 300, 4100),
          fc.constantFrom(2, 9, 4097),
          fc.constantFrom(3, 260, 4500),
        ),
        n: fc.integer({ min: 0, max: 8 }),
        m: fc.integer({ min: 1, max: 4 }),
        reversed: fc.boolean(),
        seed: fc.integer({ min: 1, max: 1e6 }),
      }),
      async (c) => {
        const [la, lb, lc] = c.lengths;
        const make = (backend: string) =>
          FACTORIES[c.rule]({ lr: 1e-2, states: c.states, backend });
        const grad = (length: number, t: number, k: number) =>
          randoms(length, c.seed * 31 + t * 7 + k);
        const a0 = randoms(la, c.seed), b0 = randoms(lb, c.seed + 1), c0 = randoms(lc, c.seed + 2);
        // `from`: over a and b. The reference: over a and c, c given zero gradients until the change.
        let from = await make(c.before).init({ a: a0, b: b0 });
        let ref = await make(c.after).init({ a: a0, c: c0 });
        for (let t = 0; t < c.n; t++) {
          from = step(from, { a: grad(la, t, 0), b: grad(lb, t, 1) });
          ref = step(ref, { a: grad(la, t, 0), c: new Float32Array(lc) });
        }
        const before = await contents(from);
        const params = c.reversed ? { c: c0, a: from.params.a } : { a: from.params.a, c: c0 };
        let state = await make(c.after).init(params, { from });
        assert.equal(state.step, c.n);
        for (let t = c.n; t < c.n + c.m; t++) {
          const grads = { a: grad(la, t, 0), c: grad(lc, t, 2) };
          state = step(state, grads);
          ref = step(ref, grads);
        }
        await assertSameState(state, ref);
        // `from` is left as it was, and usable.
        assert.equal(difference(await contents(from), before), undefined);
        from = step(from, { a: grad(la, 0, 0), b: grad(lb, 0, 1) });
        assert.equal(from.step, c.n + 1);
      },
    ),
    { numRuns: 60, endOnFailure: true },
  );
});

Deno.test("init from: a threaded 8-bit Ranger state into a threaded one, moments bit for bit", async () => {
  const opt = ranger({ lr: 1e-2, states: "8bit", threads: 2, threadThreshold: 0 });
  const head = randoms(5000, 1), body = randoms(4200, 2), g = randoms(5000, 3);
  let from = await opt.init({ head, gone: randoms(10, 4) });
  let ref = await opt.init({ head, body });
  try {
    for (let t = 0; t < 4; t++) {
      from = step(from, { head: g, gone: randoms(10, 5) });
      ref = step(ref, { head: g, body: new Float32Array(4200) });
    }
    const state = await opt.init({ head: from.params.head, body }, { from });
    try {
      assert.equal(state.threads, 2);
      const moments = await readMoments(state), held = await readMoments(from);
      assert.deepStrictEqual(bits(moments.exp_avg_sq.head), bits(held.exp_avg_sq.head));
      const next = step(state, { head: g, body: randoms(4200, 6) });
      ref = step(ref, { head: g, body: randoms(4200, 6) });
      await assertSameState(next, ref);
    } finally {
      dispose(state);
    }
  } finally {
    dispose(from);
    dispose(ref);
  }
});

Deno.test("init from: the step count and skipped steps carry over; lr, weight decay, groups and clipping may change", async () => {
  let from = await adamw({ lr: 1e-3, nonFinite: "skip" }).init({ w: new Float32Array(3) });
  from = step(from, { w: new Float32Array([1, 2, 3]) });
  from = step(from, { w: new Float32Array([NaN, 0, 0]) });
  const opt = adamw({
    lr: (t) => 1e-4 * t,
    weightDecay: 0.1,
    clipGradNorm: 1,
    groups: [{ match: /^v/, lrScale: 0.5 }],
  });
  const state = await opt.init({ w: from.params.w, v: new Float32Array(2) }, { from });
  assert.equal(state.step, 1);
  assert.equal(state.skippedSteps, 1);
  assert.deepStrictEqual((await readMoments(state)).exp_avg.w, (await readMoments(from)).exp_avg.w);
  assert.deepStrictEqual((await readMoments(state)).exp_avg.v, new Float32Array(2));
});

Deno.test("init from: a state loaded from a checkpoint, and no from (undefined) is a fresh state", async () => {
  let state = await lion({ lr: 1e-3 }).init({ w: randoms(5, 1) });
  state = step(state, { w: randoms(5, 2) });
  const loaded = await loadState(await saveState(state), { backend: "js" });
  const next = await lion({ lr: 1e-3 }).init({ w: randoms(5, 3) }, { from: loaded });
  assert.equal(next.step, 1);
  assert.deepStrictEqual(
    bits((await readMoments(next)).exp_avg.w),
    bits((await readMoments(state)).exp_avg.w),
  );
  const fresh = await lion({ lr: 1e-3 }).init({ w: randoms(5, 3) }, { from: undefined });
  assert.equal(fresh.step, 0);
});

Deno.test("init from: read at the call (a step of it before the Promise settles changes nothing of the new state)", async () => {
  const opt = radam({ lr: 1e-2 });
  let from = await opt.init({ w: randoms(4, 1) });
  from = step(from, { w: randoms(4, 2) });
  const m = (await readMoments(from)).exp_avg.w;
  const made = opt.init({ w: randoms(4, 3) }, { from });
  from = step(from, { w: randoms(4, 4) });
  const state = await made;
  assert.equal(state.step, 1);
  assert.deepStrictEqual(bits((await readMoments(state)).exp_avg.w), bits(m));
});

Deno.test("init from: a tensor held with another shape is a RangeError naming it; from is left usable", async () => {
  const opt = radam();
  let from = await opt.init({ emb: new Float32Array(6), w: new Float32Array(2) });
  from = step(from, { emb: new Float32Array(6).fill(1), w: new Float32Array(2).fill(1) });
  const before = await contents(from);
  await assert.rejects(
    opt.init({ emb: new Float32Array(8), w: new Float32Array(2) }, { from }),
    saying(
      RangeError,
      'Option from of init holds parameter "emb" with shape [6], the params give it shape [8]',
    ),
  );
  await assert.rejects(
    opt.init({ emb: { data: new Float32Array(6), shape: [2, 3] } }, { from }),
    saying(RangeError, "with shape [6], the params give it shape [2,3]"),
  );
  assert.equal(difference(await contents(from), before), undefined);
  from = step(from, { emb: new Float32Array(6), w: new Float32Array(2) });
  assert.equal(from.step, 2);
});

Deno.test("init from: a bad from is a TypeError naming what is wrong, and changes nothing", async () => {
  let from = await radam({ lr: 1e-2 }).init({ w: new Float32Array(2) });
  from = step(from, { w: new Float32Array([1, 2]) });
  const before = await contents(from);
  const params = { w: new Float32Array(2) };
  const cases: [Promise<unknown>, string][] = [
    [
      radam().init(params, { from: 3 as never }),
      "Option from of init must be an optimizer state made by init() or step(), got 3",
    ],
    [radam().init(params, { from: Promise.resolve(from) as never }), "await it"],
    [
      adam().init(params, { from }),
      "must be a state of this optimizer, adam, with the same settings but lr and weightDecay: it is a state of radam",
    ],
    [
      radam({ states: "8bit" }).init(params, { from }),
      'it holds its moments in 32bit, this optimizer in 8bit (loadState(await saveState(from), { states: "8bit" }) converts it)',
    ],
    [
      radam({ betas: [0.8, 0.999] }).init(params, { from }),
      "its beta1 is 0.9, this optimizer's 0.8",
    ],
    [radam({ eps: 1e-6 }).init(params, { from }), "its eps is 1e-8, this optimizer's 0.000001"],
    [lookahead(radam()).init(params, { from }), "it is a state of radam"],
  ];
  for (const [made, text] of cases) await assert.rejects(made, saying(TypeError, text));
  const ahead = await lookahead(radam(), { k: 5 }).init(params);
  await assert.rejects(
    lookahead(radam(), { k: 6 }).init(params, { from: ahead }),
    saying(TypeError, "its LookAhead k is 5, this optimizer's 6"),
  );
  assert.throws(
    () => radam({ from } as never),
    saying(TypeError, "(from is an option of init: radam({ … }).init(params, { from: state }))"),
  );
  assert.equal(difference(await contents(from), before), undefined);

  const consumed = from;
  from = step(from, { w: new Float32Array(2) });
  await assert.rejects(
    radam().init(params, { from: consumed }),
    saying(TypeError, "Option from of init: This optimizer state was consumed by step()"),
  );
  dispose(from);
  await assert.rejects(
    radam().init(params, { from }),
    saying(TypeError, "Option from of init: This optimizer state was disposed"),
  );
});
