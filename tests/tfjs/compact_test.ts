/**
 * The TensorFlow.js adapter with 8-bit states (`states: "8bit"`) on tfjs's cpu and wasm
 * backends: model.fit gives the core library's 8-bit bits for every rule (parameters, codes and
 * scales), a frozen variable's codes are kept aside exactly and resume, the 4096-element
 * threshold, and the bytes the adapter holds beside tfjs's tensors (measured).
 */
import assert from "node:assert/strict";
import { adam, adamw, lion, lookahead, radam, ranger, readParams, sgd, step } from "../../mod.ts";
import { stateInternals } from "../../core/state.ts";
import { tfOptimizer } from "../../tfjs.ts";
import { HeapBackend } from "../../tfjs/heap_backend.ts";
import {
  bigNet,
  coreCodes,
  CPU_BACKENDS,
  data,
  randoms,
  tf,
  transpose,
  uniqueNames,
  useBackend,
  weightValues,
} from "./helpers.ts";

const name = uniqueNames("compact");

/** The optimizers run in 8 bits: every rule, LookAhead and Ranger (gc: kernels transposed). */
const EIGHT_BIT = {
  radam: () => radam({ lr: 1e-2, states: "8bit" }),
  adamw: () => adamw({ lr: 1e-2, weightDecay: 0.1, states: "8bit" }),
  lion: () => lion({ lr: 1e-3, states: "8bit" }),
  sgd: () => sgd({ lr: 1e-2, momentum: 0.9, nesterov: true, states: "8bit" }),
  "lookahead(adam)": () => lookahead(adam({ lr: 1e-2, states: "8bit" }), { k: 3 }),
  ranger: () => ranger({ lr: 1e-2, states: "8bit" }),
};

/** The gradients `applyGradients` is given while `f` runs, as copies by variable name. */
async function recording(
  optimizer: ReturnType<typeof tfOptimizer>,
  f: () => Promise<unknown>,
): Promise<Record<string, Float32Array>[]> {
  const seen: Record<string, Float32Array>[] = [];
  const apply = optimizer.applyGradients.bind(optimizer);
  optimizer.applyGradients = (grads) => {
    const list = Array.isArray(grads)
      ? grads
      : Object.entries(grads).map(([name, tensor]) => ({ name, tensor }));
    seen.push(
      Object.fromEntries(list.map((g) => [g.name, (g.tensor.dataSync() as Float32Array).slice()])),
    );
    apply(grads);
  };
  await f();
  return seen;
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: model.fit with states "8bit" gives the core library's 8-bit bits (every rule)`, async () => {
    await useBackend(backend);
    for (const [label, make] of Object.entries(EIGHT_BIT)) {
      // Ranger centralizes: the core library is given its kernels transposed (tested in
      // tests/tfjs/heap_test.ts for 32 bits); here the rules without gc.
      if (label === "ranger") continue;
      const model = bigNet(5);
      const optimizer = tfOptimizer(make());
      model.compile({ optimizer, loss: "meanSquaredError" });
      const names = model.trainableWeights.map((w) => (w.read() as tf.Variable).name);
      const init = await weightValues(model);
      const { x, y } = data([70], 24, 3);
      const grads = await recording(
        optimizer,
        () => model.fit(x, y, { epochs: 3, batchSize: 8, shuffle: false, verbose: 0 }),
      );
      assert.equal(grads.length, 9);
      let state = await make().init(Object.fromEntries(names.map((n, i) => [n, init[i]])));
      for (const g of grads) state = step(state, g);
      const want = await readParams(state);
      const got = await weightValues(model);
      names.forEach((n, i) => assert.deepEqual(got[i], want[n], `${label} ${n}`));
      const ours = coreCodes(optimizer.state!), theirs = coreCodes(state);
      assert.equal(Object.keys(ours[0]).length, 2, "the two large kernels are compact");
      theirs.forEach((byName, k) => {
        for (const [n, c] of Object.entries(byName)) {
          assert.deepEqual(ours[k][n].codes, c.codes, `${label} ${n} codes ${k}`);
          assert.deepEqual(ours[k][n].scales, c.scales, `${label} ${n} scales ${k}`);
        }
      });
      if (backend === "wasm") {
        assert.ok(stateInternals(optimizer.state!).backend instanceof HeapBackend);
      }
      tf.dispose([x, y]);
      optimizer.dispose();
      model.dispose();
    }
  });

  Deno.test(`tfjs ${backend}: model.fit trains with every rule in 8 bits, ranger included`, async () => {
    await useBackend(backend);
    for (const [label, make] of Object.entries(EIGHT_BIT)) {
      const model = bigNet(7);
      const optimizer = tfOptimizer(make());
      model.compile({ optimizer, loss: "meanSquaredError" });
      const { x, y } = data([70], 32, 9);
      const history = await model.fit(x, y, { epochs: 30, batchSize: 16, verbose: 0 });
      const loss = history.history.loss as number[];
      assert.ok(loss[loss.length - 1] < 0.9 * loss[0], `${label}: ${loss[0]} → ${loss.at(-1)}`);
      assert.equal(optimizer.settings.run.states, "8bit");
      tf.dispose([x, y]);
      optimizer.dispose();
      model.dispose();
    }
  });

  Deno.test(`tfjs ${backend}: a frozen variable's codes are kept aside exactly and resume (lion, 8 bits)`, async () => {
    await useBackend(backend);
    const wn = name("w"), bn = name("b");
    const w0 = randoms(4480, 1), b0 = randoms(64, 2);
    const w = tf.variable(tf.tensor(w0, [70, 64]), true, wn);
    const b = tf.variable(tf.tensor(b0, [64]), true, bn);
    const make = () => lion({ lr: 1e-2, states: "8bit" });
    const opt = tfOptimizer(make());
    const g = (t: number, n: number) => randoms(n, 10 * t + n);
    const apply = (t: number, vars: [string, number[]][]) => {
      const ts = vars.map(([, shape]) => tf.tensor(g(t, shape.reduce((a, c) => a * c)), shape));
      opt.applyGradients(Object.fromEntries(vars.map(([n], i) => [n, ts[i]])));
      tf.dispose(ts);
    };
    // Lion's step does not depend on t: w's reference is a core state stepped with its gradients.
    let ref = await make().init({ [wn]: w0.slice() });
    apply(0, [[wn, [70, 64]], [bn, [64]]]);
    apply(1, [[wn, [70, 64]], [bn, [64]]]);
    ref = step(step(ref, { [wn]: g(0, 4480) }), { [wn]: g(1, 4480) });
    apply(2, [[bn, [64]]]); // w frozen: its codes kept aside
    const held = coreCodes(ref)[0][wn];
    const weights = await opt.getWeights();
    const codes = weights.find((x) => x.name === `${wn}/m.codes`);
    assert.ok(codes, weights.map((x) => x.name).join());
    const scales = weights.find((x) => x.name === `${wn}/m.scales`)!;
    assert.deepEqual(scales.tensor.dataSync(), held.scales);
    apply(3, [[wn, [70, 64]], [bn, [64]]]); // back, from its codes
    ref = step(ref, { [wn]: g(3, 4480) });
    assert.deepEqual(w.dataSync(), (await readParams(ref))[wn]);
    assert.deepEqual(coreCodes(opt.state!)[0][wn].codes, coreCodes(ref)[0][wn].codes);
    tf.dispose(weights.map((x) => x.tensor));
    opt.dispose();
    tf.dispose([w, b]);
  });
}

/**
 * The 8-bit options that take other paths through the adapter: gradient slots on tfjs's heap
 * (clipping, `"propagate"`), parameter groups, worker threads, and Ranger's `gc` (kernels held
 * transposed: the core library is given them transposed).
 */
const PATHS = {
  clipped: () => radam({ lr: 1e-2, clipGradNorm: 0.5, states: "8bit" }),
  propagate: () => adam({ lr: 1e-2, nonFinite: "propagate", states: "8bit" }),
  groups: () =>
    adamw({ lr: 1e-2, weightDecay: 0.1, groups: [{ match: /b$/, lrScale: 0.5 }], states: "8bit" }),
  threads: () => lion({ lr: 1e-3, threads: 2, threadThreshold: 0, states: "8bit" }),
  ranger: () => ranger({ lr: 1e-2, states: "8bit" }),
};

Deno.test("tfjs: 8-bit states through tfjs switching between wasm and cpu, with clipping, propagate, groups, threads and gc, give the core library's bits", async () => {
  const shapes = [[70, 64], [16, 256], [8]];
  for (const [label, make] of Object.entries(PATHS)) {
    await useBackend("wasm");
    const names = shapes.map((_, i) => name(i === 2 ? "b" : `k${i}`));
    const init = shapes.map((s, i) => randoms(s.reduce((a, b) => a * b), 60 + i));
    const vars = names.map((n, i) => tf.variable(tf.tensor(init[i], shapes[i]), true, n));
    // Under gc, a kernel [rows, cols] is held as [cols, rows]: so is the core library given it.
    const gc = make().settings.loop.gc;
    const arena = (a: Float32Array, s: number[]) =>
      gc && s.length > 1 ? transpose(a, s[0], s[1]) : a.slice();
    let state = await make().init(
      Object.fromEntries(names.map((n, i) => {
        const s = shapes[i];
        return [n, { data: arena(init[i], s), shape: gc && s.length > 1 ? [s[1], s[0]] : s }];
      })),
    );
    const opt = tfOptimizer(make());
    const plan = ["wasm", "wasm", "cpu", "cpu", "wasm", "wasm", "cpu", "wasm"];
    for (let t = 0; t < plan.length; t++) {
      await useBackend(plan[t]);
      if (t === 5) await opt.ready();
      const g = names.map((_, i) => randoms(init[i].length, 700 + 10 * t + i));
      const tensors = names.map((_, i) => tf.tensor(g[i], shapes[i]));
      opt.applyGradients(Object.fromEntries(names.map((n, i) => [n, tensors[i]])));
      tf.dispose(tensors);
      state = step(state, Object.fromEntries(names.map((n, i) => [n, arena(g[i], shapes[i])])));
    }
    const want = await readParams(state);
    names.forEach((n, i) => {
      const s = shapes[i];
      const got = gc && s.length > 1
        ? transpose(vars[i].dataSync() as Float32Array, s[0], s[1])
        : vars[i].dataSync();
      assert.deepEqual(got, want[n], `${label} ${n}`);
    });
    const ours = coreCodes(opt.state!), theirs = coreCodes(state);
    assert.equal(Object.keys(ours[0]).length, 2);
    theirs.forEach((byName, k) => {
      for (const [n, c] of Object.entries(byName)) {
        assert.deepEqual(ours[k][n].codes, c.codes, `${label} ${n} codes ${k}`);
        assert.deepEqual(ours[k][n].scales, c.scales, `${label} ${n} scales ${k}`);
      }
    });
    if (label === "threads") assert.equal(opt.state!.threads, 2);
    opt.dispose();
    tf.dispose(vars);
  }
});

Deno.test("tfjs: 8-bit states hold variables of 4096 elements or more in 8 bits, smaller ones in f32", async () => {
  await useBackend("cpu");
  const sizes = [4095, 4096, 300];
  const names = sizes.map((n) => name(`t${n}`));
  const vars = sizes.map((n, i) => tf.variable(tf.tensor(randoms(n, i + 1)), true, names[i]));
  const opt = tfOptimizer(adam({ lr: 1e-2, states: "8bit" }));
  const grads = sizes.map((n, i) => tf.tensor(randoms(n, 10 + i)));
  opt.applyGradients(Object.fromEntries(names.map((n, i) => [n, grads[i]])));
  const layout = stateInternals(opt.state!).backend.layout;
  assert.deepEqual(
    names.map((n) => layout.compact[layout.names.indexOf(n)]),
    [false, true, false],
  );
  const weights = await opt.getWeights();
  assert.deepEqual(weights.map((w) => w.name), [
    "iter",
    `${names[0]}/m`,
    `${names[1]}/m.codes`,
    `${names[1]}/m.scales`,
    `${names[2]}/m`,
    `${names[0]}/v`,
    `${names[1]}/v.codes`,
    `${names[1]}/v.scales`,
    `${names[2]}/v`,
  ]);
  // 4 codes an int32, one scale a block of 256.
  assert.deepEqual(weights[2].tensor.shape, [1024]);
  assert.equal(weights[2].tensor.dtype, "int32");
  assert.deepEqual(weights[3].tensor.shape, [16]);
  tf.dispose([...vars, ...grads, ...weights.map((w) => w.tensor)]);
  opt.dispose();
});

/** The rows of the README's table: what each optimizer keeps, by rule and format. */
const BYTES_ROWS = {
  "radam": (states: "32bit" | "8bit") => radam({ states }),
  "lookahead(radam)": (states: "32bit" | "8bit") => lookahead(radam({ states })),
  "ranger (gc)": (states: "32bit" | "8bit") => ranger({ states }),
  "lion": (states: "32bit" | "8bit") => lion({ states }),
  "sgd (momentum)": (states: "32bit" | "8bit") => sgd({ momentum: 0.9, states }),
};

Deno.test("tfjs wasm: the bytes a parameter the adapter holds on tfjs's heap, by rule and format (1M parameters)", async () => {
  await useBackend("wasm");
  const vn = name("big");
  const v = tf.variable(tf.zeros([1024, 1024]), true, vn);
  const g = tf.zeros([1024, 1024]);
  const measured: Record<string, number> = {};
  for (const [label, make] of Object.entries(BYTES_ROWS)) {
    for (const states of ["32bit", "8bit"] as const) {
      const opt = tfOptimizer(make(states));
      opt.applyGradients({ [vn]: g });
      const backend = stateInternals(opt.state!).backend;
      assert.ok(backend instanceof HeapBackend);
      measured[`${label}, ${states}`] = backend.allocatedBytes / v.size;
      opt.dispose();
    }
  }
  console.log(
    Object.entries(measured).map(([k, b]) => `${k}: ${b.toFixed(3)} bytes a parameter`).join("\n"),
  );
  // Moments and slow weights only (the parameters and gradients are tfjs's), plus the scales
  // (4 / 256 bytes a moment), a few KiB of header and the gaps between sections (up to 5 %, see
  // base/arena.ts); Ranger's kernels are held transposed, with their parameters and gradients.
  const expected: Record<string, number> = {
    "radam, 32bit": 8,
    "radam, 8bit": 2 + 8 / 256,
    "lookahead(radam), 32bit": 12,
    "lookahead(radam), 8bit": 6 + 8 / 256,
    "ranger (gc), 32bit": 20,
    "ranger (gc), 8bit": 14 + 8 / 256,
    "lion, 32bit": 4,
    "lion, 8bit": 1 + 4 / 256,
    "sgd (momentum), 32bit": 4,
    "sgd (momentum), 8bit": 1 + 4 / 256,
  };
  for (const [row, bytes] of Object.entries(expected)) {
    const got = measured[row];
    assert.ok(
      got >= bytes && got < 1.05 * bytes + 0.01,
      `${row}: ${got} bytes a parameter, ${bytes} expected`,
    );
  }
  // README's table gives these, in its column "tfjs adapter": "8 (8.10)", with the gaps in
  // brackets, and Ranger's kernels (a 2-D variable, held transposed) after the row's LookAhead.
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const column = new Map<string, string>();
  for (
    const [, label, cell] of readme.matchAll(/^\| ([^|]+?) +\|[^|\n]+\|[^|\n]+\| ([^|\n]+?) +\|$/gm)
  ) {
    column.set(label, cell);
  }
  const shown: [string, string][] = [];
  for (const states of ["32bit", "8bit"] as const) {
    const format = states === "32bit" ? "32-bit" : "8-bit";
    const adamRow = column.get(`RAdam / Adam / AdamW, ${format}`)!;
    const rangerRow = column.get(`Ranger, LookAhead(RAdam), ${format}`)!;
    const lionRow = column.get(`Lion, SGD with momentum, ${format}`)!;
    const bracket = (cell: string) => /^[\d.]+ \(([\d.]+)\)/.exec(cell)?.[1];
    shown.push(
      [`radam, ${states}`, bracket(adamRow)!],
      [`lookahead(radam), ${states}`, bracket(rangerRow)!],
      [`ranger (gc), ${states}`, /Ranger's kernels ([\d.]+)$/.exec(rangerRow)?.[1]!],
      [`lion, ${states}`, bracket(lionRow)!],
      [`sgd (momentum), ${states}`, bracket(lionRow)!],
    );
  }
  assert.deepEqual(
    shown.map(([row]) => `${row}: ${measured[row].toFixed(2)}`),
    shown.map(([row, text]) => `${row}: ${text}`),
    "README's column of the tfjs adapter's bytes a parameter",
  );
  tf.dispose([v, g]);
});
