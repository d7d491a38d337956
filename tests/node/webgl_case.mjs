// The TensorFlow.js adapter on tfjs-backend-webgl, run in a page (webgl_page.mjs): what
// webgl.test.mjs checks, and what webgl_bench.mjs times. Plain JavaScript: the page loads this
// file as it is.
import { prng } from "./shared_case.mjs";

/** Values in [-scale, scale), drawn from `rand`. */
const draw = (rand, n, scale) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);

/** What tfjs runs on: its backend, WebGL version and float32 textures, and the GPU's name. */
export function webglInfo(tf) {
  const gl = tf.backend().gpgpu?.gl;
  const debug = gl?.getExtension("WEBGL_debug_renderer_info");
  return {
    backend: tf.getBackend(),
    version: tf.env().getNumber("WEBGL_VERSION"),
    float32: tf.env().getBool("WEBGL_RENDER_FLOAT32_ENABLED"),
    renderer: gl ? gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER) : null,
  };
}

/**
 * A copy of `t` made on the GPU (an add of zero, exact in float32: a texture, packed where tfjs
 * packs), so that reading it back is a readback from the GPU.
 */
export function onGpu(tf, t) {
  const forward = tf.env().getBool("WEBGL_CPU_FORWARD");
  tf.env().set("WEBGL_CPU_FORWARD", false); // (else tfjs adds small tensors on the CPU)
  try {
    return tf.tidy(() => tf.add(t, tf.scalar(0)));
  } finally {
    tf.env().set("WEBGL_CPU_FORWARD", forward);
  }
}

/** The bits of a model's weights (copies, as arrays of 32-bit words). */
function bitsOf(model) {
  return model.getWeights().map((w) => Array.from(new Uint32Array(w.dataSync().slice().buffer)));
}

/** Tensors and tfjs data ids alive now. */
function counts(tf) {
  return [tf.memory().numTensors, tf.engine().backend.numDataIds()];
}

/**
 * `make`'s optimizer trains a 32-64-1 MLP from fixed weights with `model.fit` (2 batches an
 * epoch) on tfjs-backend-webgl: 4 epochs, a checkpoint (`saveState(optimizer.state)`), 4 epochs
 * more one at a time (tensors counted after each), then the model back at the checkpoint's
 * weights with a new optimizer that `loadState`s it, 4 epochs again. Returns the losses, the
 * counts, the optimizer's backend and the bits of both ends.
 */
async function fitCase(tf, tfl, lib, tfOptimizer, make) {
  const rand = prng(31);
  const n = 64, features = 32;
  const x = tf.tensor2d(draw(rand, n * features, 1), [n, features]);
  const y = tf.tensor2d(draw(rand, n, 1), [n, 1]);
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ units: 64, inputShape: [features], activation: "relu" }),
      tfl.layers.dense({ units: 1 }),
    ],
  });
  const initial = model.getWeights().map((w) => tf.tensor(draw(rand, w.size, 0.2), w.shape));
  model.setWeights(initial);
  tf.dispose(initial);
  const fit = async (epochs) =>
    (await model.fit(x, y, { epochs, batchSize: n / 2, shuffle: false, verbose: 0 })).history.loss;
  const first = tfOptimizer(make());
  model.compile({ optimizer: first, loss: "meanSquaredError" });
  const out = { loss: await fit(4), counts: [counts(tf)] };
  const bytes = await lib.saveState(first.state);
  const saved = model.getWeights().map((w) => tf.tensor(w.dataSync().slice(), w.shape));
  out.after = [];
  for (let e = 0; e < 4; e++) {
    out.after.push(...await fit(1));
    out.counts.push(counts(tf));
  }
  out.loss.push(...out.after);
  out.backend = first.backend;
  out.stateBackend = first.state.backend;
  out.iterations = first.iterations;
  out.bits = bitsOf(model);
  first.dispose();
  model.setWeights(saved);
  tf.dispose(saved);
  const second = tfOptimizer(make());
  await second.loadState(bytes);
  model.compile({ optimizer: second, loss: "meanSquaredError" });
  out.resumed = {
    loss: await fit(4),
    iterations: second.iterations,
    bits: bitsOf(model),
  };
  second.dispose();
  model.dispose();
  tf.dispose([x, y]);
  return out;
}

/**
 * The checks of webgl.test.mjs, on tfjs-backend-webgl (already set): the adapter's steps against
 * the library's (`tfjsCase`, every tensor through the GPU), and `fitCase` with RAdam and Ranger;
 * tensors counted before and after all of it.
 */
export async function webglCases(tf, tfl, lib, tfOptimizer, tfjsCase) {
  const out = { info: webglInfo(tf) };
  const before = counts(tf);
  const probe = tf.tidy(() => onGpu(tf, tf.ones([3, 4])));
  const data = tf.backend().texData.get(probe.dataId);
  out.onGpu = { texture: data.texture != null, packed: data.isPacked, values: data.values != null };
  probe.dispose();
  out.bits = await tfjsCase(tf, lib, tfOptimizer, "webgl", (t) => onGpu(tf, t));
  out.fit = {
    radam: await fitCase(tf, tfl, lib, tfOptimizer, () => lib.radam({ lr: 1e-2 })),
    ranger: await fitCase(tf, tfl, lib, tfOptimizer, () => lib.ranger({ lr: 1e-2, k: 3 })),
  };
  out.counts = [before, counts(tf)];
  return out;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * `applyGradients` of a `side` × `side` dense layer (kernel and bias) on tfjs-backend-webgl:
 * `tfOptimizer(radam())` against `tf.train.adam`, in `rounds` alternated rounds of `steps` steps
 * each, a round timed until its new weights are usable on the GPU (an op on each variable, read
 * back: the adapter's upload and tfjs's own shaders included). Each step's gradients are new
 * textures (a GPU copy of fixed ones, the same for both: the adapter reads each back), timed
 * alone too (`gradients`: made and settled). Returns the median ms per step of each, and the
 * tensors alive after each round.
 */
export async function webglBench(tf, lib, tfOptimizer, side = 1024, rounds = 15, steps = 3) {
  const rand = prng(7);
  const shapes = [[side, side], [side]];
  const grads = shapes.map((s) =>
    tf.tidy(() => onGpu(tf, tf.tensor(draw(rand, s[0] * (s[1] ?? 1), 1e-2), s)))
  );
  const sides = {
    adapter: { optimizer: tfOptimizer(lib.radam({ lr: 1e-3 })), times: [] },
    tfjs: { optimizer: tf.train.adam(1e-3), times: [] },
  };
  for (const [name, one] of Object.entries(sides)) {
    one.vars = shapes.map((s, i) =>
      tf.variable(tf.tidy(() => onGpu(tf, tf.zeros(s))), true, `bench/${name}/${i}`)
    );
  }
  // Each step's gradients as a backward pass leaves them: new textures, never read back before.
  const fresh = (vars) => Object.fromEntries(vars.map((v, i) => [v.name, onGpu(tf, grads[i])]));
  const settle = async (vars) => {
    const ones = vars.map((v) => tf.tidy(() => onGpu(tf, tf.slice(tf.reshape(v, [-1]), [0], [1]))));
    await Promise.all(ones.map((t) => t.data()));
    tf.dispose(ones);
  };
  // The gradients alone, made and read one element each: what both sides' figures include.
  const copies = [];
  const copyRound = async () => {
    const t0 = performance.now(), made = [];
    for (let s = 0; s < steps; s++) made.push(...Object.values(fresh(sides.adapter.vars)));
    await settle(made);
    tf.dispose(made);
    return (performance.now() - t0) / steps;
  };
  const numTensors = [];
  for (let r = -1; r < rounds; r++) {
    const copy = await copyRound();
    if (r >= 0) copies.push(copy);
    for (const one of Object.values(sides)) {
      const t0 = performance.now();
      for (let s = 0; s < steps; s++) {
        const named = fresh(one.vars);
        one.optimizer.applyGradients(named);
        tf.dispose(Object.values(named));
      }
      await settle(one.vars);
      if (r >= 0) one.times.push((performance.now() - t0) / steps); // (round -1: warm-up)
    }
    numTensors.push(tf.memory().numTensors);
  }
  const out = {
    params: side * side + side,
    adapter: median(sides.adapter.times),
    tfjs: median(sides.tfjs.times),
    gradients: median(copies),
    backend: sides.adapter.optimizer.backend,
    numTensors,
  };
  for (const one of Object.values(sides)) {
    one.optimizer.dispose();
    tf.dispose(one.vars);
  }
  tf.dispose(grads);
  return out;
}
