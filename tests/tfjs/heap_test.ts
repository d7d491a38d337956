/**
 * The adapter's state on tfjs-backend-wasm's own heap (tfjs/heap_backend.ts): parameters updated
 * in their variables' data, with the core library's bits; tfjs's cached XNNPACK operators see the
 * update; data shared with another tensor is never changed; the state survives tfjs growing its
 * memory and a switch of tfjs backend; its arena is freed.
 */
import assert from "node:assert/strict";
import {
  adamw,
  lion,
  lookahead,
  type Optimizer,
  radam,
  ranger,
  readParams,
  sgd,
  step,
} from "../../mod.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { HeapBackend } from "../../tfjs/heap_backend.ts";
import { stateInternals } from "../../core/state.ts";
import { kernelOnMemory } from "../../cpu/wasm_backend.ts";
import {
  data,
  randoms,
  setSeededWeights,
  tf,
  tfl,
  transpose,
  uniqueNames,
  useBackend,
} from "./helpers.ts";

const name = uniqueNames("heap");

// deno-lint-ignore no-explicit-any
const wasmBackend = () => tf.backend() as any;
/** Where tfjs-backend-wasm keeps a tensor's data. */
const offsetOf = (t: tf.Tensor): number => wasmBackend().dataIdMap.get(t.dataId).memoryOffset;
const heapBytes = (): number => wasmBackend().wasm.HEAPU8.buffer.byteLength;

Deno.test("tfjs wasm heap: parameters updated in their variables' data, bits of the core library (groups, lookahead)", async () => {
  await useBackend("wasm");
  const shapes: Record<string, number[]> = {
    [name("kernel")]: [7, 5],
    [name("bias")]: [5],
    [name("scale")]: [3],
  };
  const names = Object.keys(shapes);
  const init = names.map((n, i) => randoms(shapes[n].reduce((a, b) => a * b), 31 + i));
  const vars = names.map((n, i) => tf.variable(tf.tensor(init[i], shapes[n]), true, n));
  const make = () =>
    lookahead(
      adamw({ lr: 0.03, weightDecay: 0.1, groups: [{ match: /bias$/, weightDecay: 0 }] }),
      { k: 3 },
    );
  const opt = tfOptimizer(make());
  let state = await make().init(Object.fromEntries(names.map((n, i) => [n, init[i].slice()])));
  let offsets: number[] = [];
  for (let t = 0; t < 8; t++) {
    const g = names.map((_, i) => randoms(init[i].length, 500 + 10 * t + i));
    const tensors = names.map((n, i) => tf.tensor(g[i], shapes[n]));
    const before = vars.map((v) => v.dataId);
    opt.applyGradients(Object.fromEntries(names.map((n, i) => [n, tensors[i]])));
    tf.dispose(tensors);
    state = step(state, Object.fromEntries(names.map((n, i) => [n, g[i]])));
    if (t === 0) offsets = vars.map(offsetOf);
    else {
      // In place: the same data (no new tensor, no copy out) from the second step on.
      vars.forEach((v, i) => assert.equal(v.dataId, before[i], names[i]));
      assert.deepEqual(vars.map(offsetOf), offsets);
    }
  }
  assert.ok(stateInternals(opt.state!).backend instanceof HeapBackend);
  const want = await readParams(state);
  names.forEach((n, i) => assert.deepEqual(vars[i].dataSync(), want[n], n));
  // The library state reads the variables' data as its params.
  const mine = await readParams(opt.state!);
  names.forEach((n) => assert.deepEqual(mine[n], want[n], n));
  opt.dispose();
  tf.dispose(vars);
});

Deno.test("tfjs wasm heap: a model's predictions after a step use the new weights (cached XNNPACK operators dropped)", async () => {
  await useBackend("wasm");
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 16, inputShape: [12], activation: "relu" }),
      tfl.layers.dense({ units: 3 }),
    ],
  });
  const { x, y } = data([12], 8, 5);
  model.compile({ optimizer: tfOptimizer(radam({ lr: 0.05 })), loss: "meanSquaredError" });
  for (let epoch = 0; epoch < 4; epoch++) {
    // A prediction packs the weights into XNNPACK operators that tfjs caches by tensor id.
    tf.dispose(model.predict(x) as tf.Tensor);
    await model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    const got = (model.predict(x) as tf.Tensor).dataSync();
    // The same layers from fresh copies of the weights: nothing cached for them.
    const w = model.getWeights().map((t) => tf.tensor(t.dataSync().slice(), t.shape));
    const hidden = tf.relu(tf.add(tf.matMul(x, w[0]), w[1]));
    const want = tf.add(tf.matMul(hidden, w[2]), w[3]).dataSync();
    assert.equal(got.length, want.length);
    for (let i = 0; i < got.length; i++) {
      assert.ok(
        Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])),
        `epoch ${epoch}, ${i}`,
      );
    }
    tf.dispose([...w, hidden]);
  }
  const optimizer = model.optimizer;
  model.dispose();
  optimizer.dispose();
  tf.dispose([x, y]);
});

Deno.test("tfjs wasm heap: data a variable shares with another tensor is never changed", async () => {
  await useBackend("wasm");
  const initial = tf.tensor(randoms(64, 3), [8, 8]);
  const v = tf.variable(initial, true, name("shared"));
  const view = tf.reshape(v, [64]); // shares the variable's data
  const values = initial.dataSync().slice();
  const opt = tfOptimizer(radam({ lr: 0.1 }));
  const g = tf.onesLike(v);
  opt.applyGradients({ [v.name]: g });
  opt.applyGradients({ [v.name]: g });
  assert.deepEqual(initial.dataSync(), values);
  assert.deepEqual(view.dataSync(), values);
  assert.notDeepEqual(v.dataSync(), values);
  // The variable now owns its data; a tensor taken from it later is a snapshot too.
  const later = tf.reshape(v, [64]);
  const snapshot = later.dataSync().slice();
  opt.applyGradients({ [v.name]: g });
  assert.deepEqual(later.dataSync(), snapshot);
  assert.notDeepEqual(v.dataSync(), snapshot);
  opt.dispose();
  tf.dispose([initial, v, view, later, g]);
});

Deno.test("tfjs wasm heap: tfjs growing its memory between steps changes no bit", async () => {
  await useBackend("wasm");
  const n = name("w");
  const init = randoms(1000, 9);
  const v = tf.variable(tf.tensor(init), true, n);
  const opt = tfOptimizer(ranger({ lr: 0.02 }));
  let state = await ranger({ lr: 0.02 }).init({ [n]: init.slice() });
  const grown: tf.Tensor[] = [];
  for (let t = 0; t < 6; t++) {
    const g = randoms(1000, 70 + t);
    const before = heapBytes();
    // Allocations larger than the heap's free space: tfjs grows its memory (new buffer).
    grown.push(tf.zeros([Math.ceil(before / 4)]));
    assert.ok(heapBytes() > before);
    const gt = tf.tensor(g);
    opt.applyGradients({ [n]: gt });
    gt.dispose();
    state = step(state, { [n]: g });
  }
  assert.deepEqual(v.dataSync(), (await readParams(state))[n]);
  tf.dispose(grown);
  opt.dispose();
  v.dispose();
});

Deno.test("tfjs wasm heap: switching tfjs between wasm and cpu mid-training keeps the state, same bits", async () => {
  await useBackend("wasm");
  const shapes: Record<string, number[]> = { [name("k")]: [4, 6], [name("b")]: [6] };
  const names = Object.keys(shapes);
  const init = names.map((n, i) => randoms(shapes[n].reduce((a, b) => a * b), 90 + i));
  const vars = names.map((n, i) => tf.variable(tf.tensor(init[i], shapes[n]), true, n));
  const opt = tfOptimizer(radam({ lr: 0.05 }));
  let state = await radam({ lr: 0.05 }).init(
    Object.fromEntries(names.map((n, i) => [n, init[i].slice()])),
  );
  const plan = ["wasm", "wasm", "cpu", "cpu", "wasm", "wasm", "cpu"];
  for (let t = 0; t < plan.length; t++) {
    await useBackend(plan[t]);
    const g = names.map((_, i) => randoms(init[i].length, 900 + 10 * t + i));
    const tensors = names.map((n, i) => tf.tensor(g[i], shapes[n]));
    opt.applyGradients(Object.fromEntries(names.map((n, i) => [n, tensors[i]])));
    tf.dispose(tensors);
    state = step(state, Object.fromEntries(names.map((n, i) => [n, g[i]])));
    assert.equal(stateInternals(opt.state!).backend instanceof HeapBackend, plan[t] === "wasm");
  }
  const want = await readParams(state);
  names.forEach((n, i) => assert.deepEqual(vars[i].dataSync(), want[n], n));
  opt.dispose();
  tf.dispose(vars);
  await useBackend("wasm");
});

Deno.test("tfjs wasm heap: a disposed optimizer frees its arena (tfjs's heap stays flat)", async () => {
  await useBackend("wasm");
  const size = 1 << 20; // an arena of 16 MiB and more per optimizer
  const v = tf.variable(tf.zeros([size]), true, name("big"));
  const g = tf.onesLike(v);
  const run = () => {
    const opt = tfOptimizer(radam({ lr: 1e-3 }));
    opt.applyGradients({ [v.name]: g });
    opt.dispose();
  };
  run();
  const before = heapBytes();
  for (let i = 0; i < 20; i++) run(); // 320 MiB of arenas if none were freed
  assert.ok(heapBytes() - before < 64 * 2 ** 20, `grew ${heapBytes() - before} bytes`);
  tf.dispose([v, g]);
});

Deno.test("tfjs wasm heap: a variable given as a gradient (its own, or another's) steps as a copy would", async () => {
  await useBackend("wasm");
  const a = name("a"), b = name("b");
  const initA = randoms(40, 11), initB = randoms(40, 12);
  const va = tf.variable(tf.tensor(initA), true, a);
  const vb = tf.variable(tf.tensor(initB), true, b);
  const opt = tfOptimizer(radam({ lr: 0.1 }));
  const start: Record<string, Float32Array> = { [a]: initA.slice(), [b]: initB.slice() };
  let state = await radam({ lr: 0.1 }).init(start);
  for (let t = 0; t < 4; t++) {
    // a's gradient is b's data, b's is its own: read before either is updated.
    const ga = vb.dataSync().slice() as Float32Array, gb = ga.slice();
    opt.applyGradients({ [b]: vb, [a]: vb }); // b steps first
    state = step(state, { [a]: ga, [b]: gb });
  }
  const want = await readParams(state);
  assert.deepEqual(va.dataSync(), want[a]);
  assert.deepEqual(vb.dataSync(), want[b]);
  opt.dispose();
  tf.dispose([va, vb]);
});

for (const backend of ["cpu", "wasm"]) {
  Deno.test(`tfjs ${backend}: a variable assigned between steps (setWeights) is stepped from its new value`, async () => {
    await useBackend(backend);
    const k = name("kernel"), b = name("bias");
    const [rows, cols] = [4, 3];
    const initK = randoms(rows * cols, 61), initB = randoms(cols, 62);
    const vk = tf.variable(tf.tensor(initK, [rows, cols]), true, k);
    const vb = tf.variable(tf.tensor(initB, [cols]), true, b);
    const opt = tfOptimizer(ranger({ lr: 0.05 }));
    // The core library in the layout the adapter holds a gc kernel in: [cols, rows].
    const make = () => ranger({ lr: 0.05 });
    let state = await make().init({
      [k]: { data: transpose(initK, rows, cols), shape: [cols, rows] },
      [b]: initB.slice(),
    });
    for (let t = 0; t < 6; t++) {
      if (t === 3) {
        const newK = randoms(rows * cols, 63), newB = randoms(cols, 64);
        vk.assign(tf.tensor(newK, [rows, cols]));
        vb.assign(tf.tensor(newB, [cols]));
        (state.params[k] as Float32Array).set(transpose(newK, rows, cols));
        (state.params[b] as Float32Array).set(newB);
      }
      const gk = randoms(rows * cols, 700 + t), gb = randoms(cols, 800 + t);
      const tk = tf.tensor(gk, [rows, cols]), tb = tf.tensor(gb, [cols]);
      opt.applyGradients({ [k]: tk, [b]: tb });
      tf.dispose([tk, tb]);
      state = step(state, { [k]: transpose(gk, rows, cols), [b]: gb });
    }
    const want = await readParams(state);
    assert.deepEqual(vk.dataSync(), transpose(want[k], cols, rows));
    assert.deepEqual(vb.dataSync(), want[b]);
    opt.dispose();
    tf.dispose([vk, vb]);
  });
}

Deno.test("the kernel runs on a memory it is given, plain or shared (tfjs's threaded build has a shared one)", () => {
  for (const shared of [false, true]) {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared });
    const k = kernelOnMemory(memory);
    const at = 65536 + 64;
    const values = new Float32Array(memory.buffer, at, 100);
    values.forEach((_, i) => values[i] = i / 10);
    assert.equal(k.nonFinite(at, 100), 0, `shared ${shared}`);
    let sum = 0;
    for (const v of values) sum += v * v;
    assert.ok(Math.abs(k.sumSquares(at, 100) - sum) < 1e-9, `shared ${shared}`);
    values[57] = NaN;
    assert.notEqual(k.nonFinite(at, 100), 0, `shared ${shared}`);
  }
});

Deno.test("tfjs wasm heap: where tfjs cannot allocate the arena, the state keeps its own memory, same bits", async () => {
  await useBackend("wasm");
  const n = name("w");
  const init = randoms(3000, 21);
  const v = tf.variable(tf.tensor(init), true, n);
  const opt = tfOptimizer(radam({ lr: 0.02 }));
  let state = await radam({ lr: 0.02 }).init({ [n]: init.slice() });
  const module = wasmBackend().wasm;
  const malloc = module._malloc;
  // tfjs-backend-wasm grows its memory on demand; a malloc it cannot serve returns 0.
  // (tfjs's own tensors here are of 12 000 bytes, the arena's sections alone of 24 000.)
  module._malloc = (bytes: number) => bytes > 20000 ? 0 : malloc(bytes);
  try {
    for (let t = 0; t < 3; t++) {
      const g = randoms(3000, 40 + t);
      const gt = tf.tensor(g);
      opt.applyGradients({ [n]: gt });
      gt.dispose();
      state = step(state, { [n]: g });
    }
  } finally {
    module._malloc = malloc;
  }
  assert.ok(!(stateInternals(opt.state!).backend instanceof HeapBackend));
  assert.equal(opt.backend, "wasm");
  assert.deepEqual(v.dataSync(), (await readParams(state))[n]);
  opt.dispose();
  v.dispose();
});

Deno.test("tfjs wasm heap: clipping, propagate, skip and throw, with a NaN step, give the core library's bits", async () => {
  await useBackend("wasm");
  const cases = [
    { clipGradNorm: 0.5 },
    { nonFinite: "propagate" as const },
    { nonFinite: "skip" as const },
    { clipGradNorm: 0.5, nonFinite: "skip" as const },
    { nonFinite: "throw" as const },
  ];
  for (const extra of cases) {
    const label = JSON.stringify(extra);
    const a = name("a"), b = name("b");
    const initA = randoms(50, 1), initB = randoms(7, 2);
    const va = tf.variable(tf.tensor(initA), true, a);
    const vb = tf.variable(tf.tensor(initB), true, b);
    const opt = tfOptimizer(radam({ lr: 0.05, ...extra }));
    const start: Record<string, Float32Array> = { [a]: initA.slice(), [b]: initB.slice() };
    let state = await radam({ lr: 0.05, ...extra }).init(start);
    for (let t = 0; t < 6; t++) {
      const ga = randoms(50, 300 + t), gb = randoms(7, 400 + t);
      if (t === 3) gb[5] = NaN;
      const ta = tf.tensor(ga), tb = tf.tensor(gb);
      const grads = { [a]: ta, [b]: tb };
      if (t === 3 && extra.nonFinite === "throw") {
        const before = [va.dataSync().slice(), vb.dataSync().slice()];
        assert.throws(
          () => opt.applyGradients(grads),
          (e: Error) =>
            e instanceof RangeError && e.message.includes(b) && /index 5/.test(e.message),
        );
        assert.deepEqual([va.dataSync(), vb.dataSync()], before, label);
      } else {
        opt.applyGradients(grads);
        state = step(state, { [a]: ga, [b]: gb });
      }
      tf.dispose([ta, tb]);
    }
    const want = await readParams(state);
    assert.deepEqual(va.dataSync(), want[a], label);
    assert.deepEqual(vb.dataSync(), want[b], label);
    assert.equal(opt.skippedSteps, state.skippedSteps, label);
    assert.ok(stateInternals(opt.state!).backend instanceof HeapBackend, label);
    opt.dispose();
    tf.dispose([va, vb]);
  }
});

Deno.test("tfjs wasm heap: only the sections a state uses are allocated on tfjs's heap", async () => {
  await useBackend("wasm");
  const n = 1 << 16;
  // [optimizer, a 2-D variable?, sections allocated (4 bytes a parameter each)]
  const cases: [string, Optimizer, boolean, number][] = [
    ["radam (default check): the moments", radam(), false, 2],
    ["radam with clipping: gradient slots too", radam({ clipGradNorm: 1 }), false, 3],
    ["lion: its one moment", lion(), false, 1],
    ["sgd with momentum: its buffer", sgd({ momentum: 0.9 }), false, 1],
    ["sgd without momentum: no section at all", sgd(), false, 0],
    ["ranger on a kernel held transposed: all five", ranger(), true, 5],
  ];
  for (const [label, optimizer, matrix, sections] of cases) {
    const v = tf.variable(tf.zeros(matrix ? [256, n / 256] : [n]), true, name("w"));
    const g = tf.onesLike(v);
    const opt = tfOptimizer(optimizer);
    opt.applyGradients({ [v.name]: g });
    const backend = stateInternals(opt.state!).backend;
    assert.ok(backend instanceof HeapBackend, label);
    const perParam = backend.allocatedBytes / n;
    assert.ok(
      perParam >= 4 * sections && perParam <= 4 * sections * 1.06 + 0.1,
      `${label}: ${perParam}`,
    );
    opt.dispose();
    tf.dispose([v, g]);
  }
});

Deno.test("tfjs wasm: a conv net trains under model.fit (conv3d, whose filter gradient tfjs-backend-wasm has)", async () => {
  await useBackend("wasm");
  for (const make of [() => ranger({ lr: 1e-2 }), () => radam({ lr: 1e-2 })]) {
    const model = tfl.sequential({
      layers: [
        tfl.layers.conv3d({
          filters: 3,
          kernelSize: 2,
          inputShape: [4, 4, 4, 1],
          activation: "relu",
        }),
        tfl.layers.flatten(),
        tfl.layers.dense({ units: 3 }),
      ],
    });
    setSeededWeights(model, 8);
    const optimizer = tfOptimizer(make());
    model.compile({ optimizer, loss: "meanSquaredError" });
    const { x, y } = data([4, 4, 4, 1], 16, 77);
    const h = await model.fit(x, y, { epochs: 40, batchSize: 8, verbose: 0 });
    const loss = h.history.loss as number[];
    assert.ok(loss[loss.length - 1] < 0.85 * loss[0], `${optimizer.optimizerName}: ${loss}`);
    assert.ok(stateInternals(optimizer.state!).backend instanceof HeapBackend);
    model.dispose();
    optimizer.dispose();
    tf.dispose([x, y]);
  }
});

Deno.test("tfjs wasm heap: tfjs growing its memory while a step writes back kernels held transposed (gc) leaves every variable right", async () => {
  // A kernel held transposed is written back by a new tensor, which may grow tfjs's memory;
  // the next kernel's values must then be read from the new buffer. The tfjs cpu backend's run
  // (the kernel's own memory) gives the bits.
  const shapes = [[40, 30], [4, 3]];
  const run = async (backend: string) => {
    await useBackend(backend);
    const vars = shapes.map((s, i) =>
      tf.variable(tf.tensor(randoms(s[0] * s[1], 5 + i), s), true, name(`grown${i}`))
    );
    const opt = tfOptimizer(ranger({ lr: 0.02 }));
    const seen: Float32Array[][] = [];
    for (let t = 0; t < 3; t++) {
      const g = shapes.map((s, i) => tf.tensor(randoms(s[0] * s[1], 50 + 10 * t + i), s));
      const before = backend === "wasm" ? heapBytes() : 0;
      // At step 1, the step's first allocation in tfjs's heap (the first kernel's new data)
      // grows tfjs's memory first, as an allocation larger than the free space would.
      const module = backend === "wasm" && t === 1 ? wasmBackend().wasm : undefined;
      const malloc = module?._malloc;
      if (module) {
        module._malloc = (bytes: number) => {
          module._malloc = malloc;
          module._free(malloc(heapBytes()));
          return malloc(bytes);
        };
      }
      opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, g[i]])));
      if (module) {
        assert.equal(module._malloc, malloc);
        assert.ok(heapBytes() > before);
      }
      seen.push(vars.map((v) => (v.dataSync() as Float32Array).slice()));
      tf.dispose(g);
    }
    tf.dispose(vars);
    opt.dispose();
    return seen;
  };
  const expected = await run("cpu");
  (await run("wasm")).forEach((step, t) =>
    step.forEach((values, i) => assert.deepEqual(values, expected[t][i], `step ${t}, kernel ${i}`))
  );
});
