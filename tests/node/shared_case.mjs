// One deterministic training case, run identically by Deno (from the sources), Node (from the
// npm package) and Chromium (from the bundle), so their results can be compared bit for bit.
// Plain JavaScript on purpose: every runtime loads this same file.

/** mulberry32: integer arithmetic only, so every engine draws the same numbers. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), a | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const SHAPES = {
  "embed.weight": 257,
  "fc1.weight": 1024,
  "fc1.bias": 33,
  "head.weight": 4099,
};
const STEPS = 30;

function tensors(rand, scale) {
  const out = {};
  for (const [name, n] of Object.entries(SHAPES)) {
    out[name] = Float32Array.from(
      { length: n },
      () => (rand() * 2 - 1) * scale,
    );
  }
  return out;
}

async function digest(records) {
  const parts = [];
  for (const record of records) {
    for (const name of Object.keys(record).sort()) {
      parts.push(new Uint8Array(record[name].buffer));
    }
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Runs the case on `backend` with the library namespace `lib` and returns the step count, a
 * SHA-256 of the params and moments' bytes, and a few values to show on a mismatch. `threads`
 * (wasm only) runs it on that many threads, split at any size: the result must not change.
 */
export async function runCase(lib, backend, device, threads = 1) {
  const rand = prng(12345);
  const more = threads > 1 ? { threads, threadThreshold: 0 } : {};
  const opt = lib.radam({ lr: 1e-2, weightDecay: 1e-2, backend, ...more });
  let state = await opt.init(tensors(rand, 1), device ? { device } : undefined);
  for (let t = 1; t <= STEPS; t++) {
    // alternate between copied gradients and the zero-copy slots
    const grads = tensors(rand, 0.1 * t);
    if (t % 2 || device) state = lib.step(state, grads);
    else {
      for (const name of state.names) state.grads[name].set(grads[name]);
      state = lib.step(state);
    }
  }
  const params = await lib.readParams(state);
  const { exp_avg, exp_avg_sq } = await lib.readMoments(state);
  const result = {
    backend: state.backend,
    step: state.step,
    digest: await digest([params, exp_avg, exp_avg_sq]),
    sample: Array.from(params["head.weight"].subarray(0, 4)),
  };
  // Checkpoint round trip: save, load (as a new invocation would) and take a few more steps.
  const bytes = await lib.saveState(state);
  result.checkpoint = await digest([{ file: bytes.slice() }]);
  let resumed = await lib.loadState(
    bytes,
    device ? { backend, device } : { backend, ...more },
  );
  for (let t = 1; t <= 5; t++) resumed = lib.step(resumed, tensors(rand, 0.05));
  result.resumedStep = resumed.step;
  result.resumed = await digest([await lib.readParams(resumed)]);
  if (threads > 1) {
    if (state.threads !== threads || resumed.threads !== threads) {
      throw new Error(
        `expected ${threads} threads, got ${state.threads} and ${resumed.threads}`,
      );
    }
    lib.dispose(state);
    lib.dispose(resumed);
  }
  return result;
}

/**
 * The adapter case run under Node and in Chromium: two variables stepped 8 times by
 * `tfOptimizer(radam())` through applyGradients, and the same steps by the library itself.
 * Returns both results as plain arrays. `through` (optional) gives a tensor's copy made by the
 * tfjs backend (e.g. on webgl, an op run on the GPU: a texture): the variables' initial values,
 * the gradients, and the variables read at the end go through it.
 */
export async function tfjsCase(tf, lib, tfOptimizer, tag, through) {
  const placed = (t) => {
    if (!through) return t;
    const copy = through(t);
    t.dispose();
    return copy;
  };
  const shapes = [[3, 4], [4]];
  const values = (n, seed) => {
    const out = new Float32Array(n);
    let s = seed;
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      out[i] = s / 2147483648 - 0.5;
    }
    return out;
  };
  const names = [`${tag}/kernel`, `${tag}/bias`];
  const init = shapes.map((s, i) => values(s.reduce((a, b) => a * b), 7 + i));
  const vars = names.map((n, i) => {
    const t = placed(tf.tensor(init[i], shapes[i]));
    const v = tf.variable(t, true, n);
    t.dispose();
    return v;
  });
  const optimizer = tfOptimizer(lib.radam({ lr: 0.05 }));
  let state = await lib.radam({ lr: 0.05 }).init(
    Object.fromEntries(names.map((n, i) => [n, init[i].slice()])),
  );
  for (let t = 0; t < 8; t++) {
    const g = init.map((a, i) => values(a.length, 100 * t + i + 1));
    const tensors = g.map((a, i) => placed(tf.tensor(a, shapes[i])));
    optimizer.applyGradients(Object.fromEntries(names.map((n, i) => [n, tensors[i]])));
    tf.dispose(tensors);
    state = lib.step(state, Object.fromEntries(names.map((n, i) => [n, g[i]])));
  }
  const want = await lib.readParams(state);
  const adapter = await Promise.all(vars.map(async (v) => {
    const read = through ? through(v) : v;
    const values = Array.from(await read.data());
    if (read !== v) read.dispose();
    return values;
  }));
  const core = names.map((n) => Array.from(want[n]));
  optimizer.dispose();
  tf.dispose(vars);
  return { adapter, core };
}

/**
 * TensorFlow.js training as a user writes it, run in Node and in a Worker (workerd) alike: a Dense
 * layer of 64 inputs and 64 units (a kernel of 4096 elements, so `states: "8bit"` codes it) from
 * fixed weights, trained by `model.fit` on fixed data for 4 epochs with `tfOptimizer(radam(…))` on
 * tfjs's cpu backend. Returns the adapter's backend and the final weights' bits.
 */
export async function tfjsFitCase(tf, tfl, lib, tfOptimizer, states) {
  await tf.setBackend("cpu");
  const rand = prng(2024);
  const values = (n, scale) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const model = tfl.sequential({
    layers: [tfl.layers.dense({ units: 64, inputShape: [64] })],
  });
  const initial = [tf.tensor2d(values(4096, 0.2), [64, 64]), tf.tensor1d(values(64, 0.1))];
  model.setWeights(initial);
  const optimizer = tfOptimizer(lib.radam({ lr: 1e-2, states }));
  model.compile({ optimizer, loss: "meanSquaredError" });
  const x = tf.tensor2d(values(16 * 64, 1), [16, 64]);
  const y = tf.tensor2d(values(16 * 64, 1), [16, 64]);
  await model.fit(x, y, { epochs: 4, batchSize: 8, shuffle: false, verbose: 0 });
  const weights = model.getWeights().map((w) =>
    Array.from(new Uint32Array(w.dataSync().slice().buffer))
  );
  const result = { backend: optimizer.backend, iterations: optimizer.iterations, weights };
  tf.dispose([...initial, x, y]);
  optimizer.dispose();
  model.dispose();
  return result;
}

/**
 * What a user of another runtime (Node 22 to 26, Bun) does besides the shared case, run there and
 * by Deno for the bits: Ranger steps on wasm and js, and optimistic steps on the in-memory store
 * of `@optim/radam/store` (`store`: its namespace). Returns SHA-256 digests of the results.
 */
export async function userCase(lib, store) {
  const out = {};
  for (const backend of ["wasm", "js"]) {
    const rand = prng(777);
    let state = await lib.ranger({ lr: 1e-2, backend }).init(tensors(rand, 1));
    for (let t = 1; t <= 12; t++) state = lib.step(state, tensors(rand, 0.1));
    out[`ranger_${backend}`] = await digest([await lib.readParams(state)]);
  }
  const memory = store.memoryCheckpointStore();
  const rand = prng(99);
  for (let i = 0; i < 5; i++) {
    const grads = tensors(rand, 0.1);
    await store.optimisticStep(memory, {
      optimizer: lib.radam({ lr: 1e-2, backend: "js" }),
      init: () => tensors(prng(5), 1),
      gradient: (state) => {
        for (const name of state.names) state.grads[name].set(grads[name]);
      },
    });
  }
  const saved = await memory.load();
  out.store = await digest([{ file: saved.bytes.slice() }]);
  return out;
}

/**
 * 8-bit Ranger, clipped, on one thread and on `threads` (split at any size): whether the two give
 * the same bits (params and moments), and the threads each ran on. Disposes the threaded state.
 */
export async function threadsSameCase(lib, threads = 2) {
  // head.weight (4099 values) has 8-bit moments, the others f32 ones.
  const run = async (more) => {
    const rand = prng(4242);
    const optimizer = lib.ranger({ lr: 1e-2, states: "8bit", clipGradNorm: 1, ...more });
    let state = await optimizer.init(tensors(rand, 1));
    for (let t = 1; t <= 12; t++) state = lib.step(state, tensors(rand, 0.2 * t));
    const { exp_avg, exp_avg_sq } = await lib.readMoments(state);
    const bits = await digest([await lib.readParams(state), exp_avg, exp_avg_sq]);
    const ran = state.threads;
    if (ran > 1) lib.dispose(state);
    return { threads: ran, bits };
  };
  const one = await run({});
  const many = await run({ threads, threadThreshold: 0 });
  return { threads: [one.threads, many.threads], same: one.bits === many.bits };
}
