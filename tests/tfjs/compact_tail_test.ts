/**
 * 8-bit states on tfjs-backend-wasm's heap (tfjs/heap_backend.ts) with compact variables whose
 * length is not a multiple of 256: their parameters are stepped in their variables' own data
 * (the last, partial block in a padded copy: heap_layout.ts), with the bits of the library's
 * TypeScript 8-bit step (parameters, codes, scales, moments, slow weights, checkpoints), for
 * every rule, beside variables of whole blocks and small (f32) ones; with clipping, each
 * `nonFinite` policy (a NaN in a last block), weight decay and a variable assigned between steps;
 * and no parameter or gradient section is allocated for them.
 */
import assert from "node:assert/strict";
import {
  adam,
  adamw,
  type CommonOptions,
  dispose,
  lion,
  loadState,
  lookahead,
  type Optimizer,
  radam,
  ranger,
  readMoments,
  readParams,
  readSlowWeights,
  saveState,
  sgd,
  step,
} from "../../mod.ts";
import type { OptimizerState } from "../../core/state.ts";
import { stateInternals } from "../../core/state.ts";
import { PARAMS } from "../../base/arena.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { HeapBackend } from "../../tfjs/heap_backend.ts";
import { coreCodes, randoms, tf, transpose, uniqueNames, useBackend } from "./helpers.ts";

const name = uniqueNames("tail");

type Make = (extra?: CommonOptions) => Optimizer;

/** Every rule in 8 bits, with weight decay where it has one. */
const RULES: Record<string, Make> = {
  radam: (o) => radam({ lr: 1e-2, weightDecay: 0.01, states: "8bit", ...o }),
  adam: (o) => adam({ lr: 1e-2, states: "8bit", ...o }),
  adamw: (o) => adamw({ lr: 1e-2, weightDecay: 0.1, states: "8bit", ...o }),
  lion: (o) => lion({ lr: 1e-3, weightDecay: 0.1, states: "8bit", ...o }),
  sgd: (o) => sgd({ lr: 1e-2, momentum: 0.9, nesterov: true, states: "8bit", ...o }),
  "lookahead(adam)": (o) => lookahead(adam({ lr: 1e-2, states: "8bit", ...o }), { k: 3 }),
  ranger: (o) => ranger({ lr: 1e-2, states: "8bit", ...o }),
};

/** Compact ones with a partial last block (784×10 too), whole blocks, and small (f32) ones. */
const SHAPES = [[4097], [5000], [784, 10], [65535], [4096], [32, 256], [10], [300]];

// deno-lint-ignore no-explicit-any
const wasmBackend = () => tf.backend() as any;
/** Where tfjs-backend-wasm keeps a tensor's data. */
const offsetOf = (t: tf.Tensor): number => wasmBackend().dataIdMap.get(t.dataId).memoryOffset;

/** Variables of `shapes`, the core library's state of them (TypeScript backend), and a stepper. */
async function setUp(make: Make, shapes: number[][], seed: number) {
  const names = shapes.map((s) => name(`w${s.join("x")}`));
  const init = shapes.map((s, i) => randoms(s.reduce((a, b) => a * b), seed + i));
  const vars = names.map((n, i) => tf.variable(tf.tensor(init[i], shapes[i]), true, n));
  // Under gc, a kernel [rows, cols] is held as [cols, rows]: so is the core library given it.
  const gc = make().settings.loop.gc;
  const arena = (a: Float32Array, s: number[]) =>
    gc && s.length > 1 ? transpose(a, s[0], s[1]) : a.slice();
  const shaped = (i: number) => {
    const s = shapes[i];
    return { data: arena(init[i], s), shape: gc && s.length > 1 ? [s[1], s[0]] : s };
  };
  const ref = await make({ backend: "js" }).init(
    Object.fromEntries(names.map((n, i) => [n, shaped(i)])),
  );
  /** The variables' values as the core library holds them. */
  const values = () => vars.map((v, i) => arena(v.dataSync() as Float32Array, shapes[i]));
  return { names, vars, ref, arena, values };
}

/** The heap state's values against the reference's: parameters, moments, codes, slow weights. */
async function assertSame(
  label: string,
  got: OptimizerState<unknown>,
  want: OptimizerState,
  names: string[],
  params: Float32Array[],
): Promise<void> {
  const wantParams = await readParams(want);
  names.forEach((n, i) => assert.deepEqual(params[i], wantParams[n], `${label} ${n} params`));
  assert.deepEqual(await readMoments(got), await readMoments(want), `${label} moments`);
  const ours = coreCodes(got), theirs = coreCodes(want);
  assert.equal(ours.length, theirs.length);
  theirs.forEach((byName, k) => {
    for (const [n, c] of Object.entries(byName)) {
      assert.deepEqual(ours[k][n].codes, c.codes, `${label} ${n} codes ${k}`);
      assert.deepEqual(ours[k][n].scales, c.scales, `${label} ${n} scales ${k}`);
    }
  });
  if (stateInternals(want).config.lookahead) {
    assert.deepEqual(await readSlowWeights(got), await readSlowWeights(want), `${label} slow`);
  }
}

Deno.test("tfjs wasm 8 bits: variables whose length is not a multiple of 256 are stepped in their own data, with the TypeScript backend's bits (every rule)", async () => {
  await useBackend("wasm");
  for (const [label, make] of Object.entries(RULES)) {
    const { names, vars, ref, arena, values } = await setUp(make, SHAPES, 11);
    let state = ref;
    const opt = tfOptimizer(make());
    const gc = make().settings.loop.gc;
    let offsets: number[] = [];
    for (let t = 0; t < 9; t++) {
      const g = vars.map((v, i) => randoms(v.size, 900 + 10 * t + i));
      const tensors = vars.map((v, i) => tf.tensor(g[i], v.shape));
      const before = vars.map((v) => v.dataId);
      opt.applyGradients(Object.fromEntries(names.map((n, i) => [n, tensors[i]])));
      // The gradients were read where tfjs keeps them, and nothing was written over them (nor
      // over anything of tfjs's but the variables).
      tensors.forEach((x, i) => assert.deepEqual(x.dataSync(), g[i], `${label} ${names[i]}`));
      tf.dispose(tensors);
      state = step(state, Object.fromEntries(names.map((n, i) => [n, arena(g[i], SHAPES[i])])));
      if (t === 0) offsets = vars.map(offsetOf);
      else {
        // In place: the same data (no new tensor, no copy out) from the second step on; a
        // kernel held transposed for gc is written back (a new tensor) as in 32 bits.
        vars.forEach((v, i) => {
          if (gc && SHAPES[i].length > 1) return;
          assert.equal(v.dataId, before[i], `${label} ${names[i]}`);
          assert.equal(offsetOf(v), offsets[i], `${label} ${names[i]}`);
        });
      }
    }
    const backend = stateInternals(opt.state!).backend;
    assert.ok(backend instanceof HeapBackend, label);
    // The state's params are the variables' data (no section of its own) where not transposed.
    const params = backend.viewSection(PARAMS);
    const heap = wasmBackend().wasm.HEAPU8.buffer;
    names.forEach((n, i) => {
      if (gc && SHAPES[i].length > 1) return;
      assert.ok(backend.external(i), `${label} ${n}`);
      assert.equal(params[n].buffer, heap, `${label} ${n}`);
      assert.equal(params[n].byteOffset, offsetOf(vars[i]), `${label} ${n}`);
    });
    await assertSame(label, opt.state!, state, names, values());
    // A checkpoint of the heap state is the state.
    const loaded = await loadState(await saveState(opt.state!), { backend: "js" });
    await assertSame(`${label} checkpoint`, loaded, state, names, values());
    dispose(loaded);
    dispose(state);
    opt.dispose();
    tf.dispose(vars);
  }
});

/** The options that take other paths: gradient slots (clipping, "propagate"), skip, throw. */
const OPTIONS: Record<string, CommonOptions> = {
  clipped: { clipGradNorm: 0.5 },
  propagate: { nonFinite: "propagate" },
  skip: { nonFinite: "skip" },
  "clipped, skip": { clipGradNorm: 0.5, nonFinite: "skip" },
  throw: { nonFinite: "throw" },
};

Deno.test("tfjs wasm 8 bits: clipping, propagate, skip and throw, with a NaN in a last partial block and a variable assigned between steps, give the TypeScript backend's bits", async () => {
  await useBackend("wasm");
  const shapes = [[4097], [784, 10], [4096], [10]];
  for (const [label, extra] of Object.entries(OPTIONS)) {
    for (const [rule, base] of [["adamw", RULES.adamw], ["lion", RULES.lion]] as const) {
      const make: Make = (o) => base({ ...extra, ...o });
      const what = `${rule} ${label}`;
      const { names, vars, ref, values } = await setUp(make, shapes, 40);
      let state = ref;
      const opt = tfOptimizer(make());
      for (let t = 0; t < 7; t++) {
        if (t === 5) {
          // A new value for a variable with a partial last block (as setWeights gives it).
          const fresh = randoms(vars[1].size, 77);
          vars[1].assign(tf.tensor(fresh, shapes[1]));
          (state.params[names[1]] as Float32Array).set(fresh);
        }
        const g = vars.map((v, i) => randoms(v.size, 300 + 10 * t + i));
        if (t === 3) g[1][7835] = NaN; // in 784×10's last block (elements 7680 to 7839)
        const tensors = vars.map((v, i) => tf.tensor(g[i], v.shape));
        const grads = Object.fromEntries(names.map((n, i) => [n, tensors[i]]));
        if (t === 3 && extra.nonFinite === "throw") {
          const before = values();
          assert.throws(
            () => opt.applyGradients(grads),
            (e: Error) => e instanceof RangeError && e.message.includes(names[1]),
          );
          assert.deepEqual(values(), before, what);
        } else {
          opt.applyGradients(grads);
          state = step(state, Object.fromEntries(names.map((n, i) => [n, g[i]])));
        }
        tf.dispose(tensors);
      }
      assert.ok(stateInternals(opt.state!).backend instanceof HeapBackend, what);
      assert.equal(opt.skippedSteps, state.skippedSteps, what);
      await assertSame(what, opt.state!, state, names, values());
      dispose(state);
      opt.dispose();
      tf.dispose(vars);
    }
  }
});

Deno.test("tfjs wasm 8 bits: a variable with a partial last block allocates no parameters or gradients on tfjs's heap", async () => {
  await useBackend("wasm");
  // 1 001 000 elements: 3910 whole blocks and 40 more.
  const v = tf.variable(tf.zeros([1000, 1001]), true, name("big"));
  const g = tf.zeros([1000, 1001]);
  const rows: [string, Optimizer, number][] = [
    ["radam", radam({ states: "8bit" }), 2 + 8 / 256],
    ["radam, clipped (gradient slots)", radam({ states: "8bit", clipGradNorm: 1 }), 6 + 8 / 256],
    ["lion", lion({ states: "8bit" }), 1 + 4 / 256],
  ];
  for (const [label, optimizer, bytes] of rows) {
    const opt = tfOptimizer(optimizer);
    opt.applyGradients({ [v.name]: g });
    const backend = stateInternals(opt.state!).backend;
    assert.ok(backend instanceof HeapBackend, label);
    const got = backend.allocatedBytes / v.size;
    assert.ok(got >= bytes && got < 1.05 * bytes + 0.01, `${label}: ${got} bytes a parameter`);
    opt.dispose();
  }
  tf.dispose([v, g]);
});
