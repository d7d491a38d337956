/**
 * The order of 8-bit moments given as weights: an optimizer under gradient centralization
 * (`gc`, Ranger) on a CPU backend holds a kernel transposed, so its codes are in that order and
 * say so (`<variable>/m.transposed.codes`); `setWeights` takes codes in the order it holds the
 * variable in as they are, and reorders the others (decoded, reordered, encoded in its blocks):
 * checked against a float64 reference of the moments the step must find, across gc on and off,
 * 32 and 8 bits, cpu, wasm and webgpu, and bit for bit against `loadState` of the sender's
 * checkpoint, which converts across gc the same way.
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { lookahead, type Optimizer, radam, ranger, readMoments, saveState } from "../../mod.ts";
import { type TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { codeTolerance } from "../q8_reference.ts";
import { decodeTensor } from "../../base/q8_tensor.ts";
import {
  bigNet,
  clonedWeights,
  CPU_BACKENDS,
  data,
  disposeModels,
  fitInOrder,
  randoms,
  saveToMemory,
  tf,
  tfl,
  uniqueNames,
  useBackend,
  webgpuTestOptions,
  weightValues,
} from "./helpers.ts";

const name = uniqueNames("order");
const BETAS: [number, number] = [0.9, 0.999];
/** A dense kernel and a conv kernel (8-bit moments, in blocks across rows), and a bias (f32). */
const SHAPES = [[80, 70], [3, 3, 20, 24], [64]];

/** The optimizers compared: gc or not, LookAhead or not (slow weights give the kernel's shape). */
const MAKERS: Record<string, (states: "8bit" | "32bit") => Optimizer> = {
  ranger: (states) => ranger({ lr: 1e-2, betas: BETAS, states }),
  "lookahead(radam)": (states) => lookahead(radam({ lr: 1e-2, betas: BETAS, states })),
  "radam gc": (states) => radam({ lr: 1e-2, betas: BETAS, gc: true, states }),
  radam: (states) => radam({ lr: 1e-2, betas: BETAS, states }),
};

/** The transfers checked: [sender, receiver, receiver's states]. */
const PAIRS: [string, string, "8bit" | "32bit"][] = [
  ["ranger", "lookahead(radam)", "8bit"],
  ["lookahead(radam)", "ranger", "8bit"],
  ["radam gc", "radam", "8bit"], // codes alone: the kernel's shape is known at the step
  ["radam", "radam gc", "8bit"],
  ["ranger", "lookahead(radam)", "32bit"],
  ["radam gc", "radam", "32bit"],
  ["ranger", "ranger", "8bit"], // the same order: taken as they are
];

/** `values` of a variable of `shape` held transposed (`[out, rest]`) put in the tfjs order. */
function toTfjs(values: ArrayLike<number>, shape: number[], transposed: boolean): Float64Array {
  const cols = shape[shape.length - 1], rows = values.length / cols;
  const out = Float64Array.from(values);
  if (!transposed || shape.length < 2) return out;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = values[c * rows + r];
  }
  return out;
}

/** `values` in the tfjs order put in the order of a variable held transposed. */
function fromTfjs(values: Float64Array, shape: number[], transposed: boolean): Float64Array {
  const cols = shape[shape.length - 1], rows = values.length / cols;
  const out = values.slice();
  if (!transposed || shape.length < 2) return out;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  }
  return out;
}

/** The gradient an optimizer under gc steps with: each output unit's mean over the rest taken. */
function centralized(g: Float64Array, shape: number[]): Float64Array {
  if (shape.length < 2) return g;
  const cols = shape[shape.length - 1], rows = g.length / cols;
  const out = g.slice();
  for (let c = 0; c < cols; c++) {
    let sum = 0;
    for (let r = 0; r < rows; r++) sum += g[r * cols + c];
    for (let r = 0; r < rows; r++) out[r * cols + c] -= sum / rows;
  }
  return out;
}

/** Whether `opt`'s state holds a variable of `shape` transposed (gc, on a CPU backend). */
function heldTransposed(opt: TfOptimizer, shape: number[]): boolean {
  return opt.settings.loop.gc && opt.backend !== "webgpu" && shape.length > 1;
}

/** The moments of `opt`'s state, decoded, in the tfjs order, by moment, then variable. */
async function momentsInTfjsOrder(opt: TfOptimizer, names: string[]) {
  const moments = await readMoments(opt.state!);
  return Object.fromEntries(
    Object.entries(moments).map(([m, byName]) => [
      m,
      names.map((n, i) => toTfjs(byName[n], SHAPES[i], heldTransposed(opt, SHAPES[i]))),
    ]),
  );
}

/**
 * Checks that `b`'s moments after its first step (gradients `g`, tfjs order), from the moments
 * `before` (float64, tfjs order: the sender's, decoded), are those of the rule, within one code
 * step of the blocks `b` holds them in for the codes given in another order (encoded again
 * there), and one more for the step's own encoding; f32 rounding otherwise. `slack` widens it
 * (the GPU's rounding).
 */
async function checkMoments(
  b: TfOptimizer,
  names: string[],
  before: Record<string, Float64Array[]>,
  g: Float64Array[],
  label: string,
  slack = 0,
): Promise<void> {
  const after = await momentsInTfjsOrder(b, names);
  const q8 = b.settings.run.states === "8bit";
  for (const [k, moment] of ["exp_avg", "exp_avg_sq"].entries()) {
    names.forEach((n, i) => {
      const shape = SHAPES[i], size = g[i].length;
      const t = heldTransposed(b, shape);
      const gc = b.settings.loop.gc ? centralized(g[i], shape) : g[i];
      const m0 = before[moment][i];
      const compact = q8 && size >= 4096;
      // The moments the state starts from: given in its blocks, or encoded there (one code step).
      const e0 = compact
        ? codeTolerance(fromTfjs(m0, shape, t), new Float64Array(size), k === 0)
        : new Float64Array(size);
      const beta = BETAS[k];
      const want = new Float64Array(size), tol = new Float64Array(size);
      const e0Tfjs = toTfjs(e0, shape, t);
      for (let j = 0; j < size; j++) {
        const x = beta * m0[j], y = (1 - beta) * (k === 0 ? gc[j] : gc[j] * gc[j]);
        want[j] = x + y;
        tol[j] = beta * e0Tfjs[j] + 1e-6 * (Math.abs(x) + Math.abs(y)) + slack * Math.abs(want[j]);
      }
      const bound = compact
        ? toTfjs(
          codeTolerance(fromTfjs(want, shape, t), fromTfjs(tol, shape, t), k === 0),
          shape,
          t,
        )
        : tol;
      const got = after[moment][i];
      for (let j = 0; j < size; j++) {
        const err = Math.abs(got[j] - want[j]);
        if (!(err <= bound[j] + 1e-30)) {
          assert.fail(
            `${label}: ${moment} of ${n}[${j}]: ${got[j]}, expected ${want[j]} ± ${bound[j]}`,
          );
        }
      }
    });
  }
}

/**
 * Checks that the kernels' codes in `weights` (`a`'s), decoded in the order their names say, are
 * `a`'s moments `before` (tfjs order) exactly: their blocks are those of that order.
 */
async function checkGivenCodes(
  a: TfOptimizer,
  weights: { name: string; tensor: tf.Tensor }[],
  names: string[],
  before: Record<string, Float64Array[]>,
  label: string,
): Promise<void> {
  for (const [i, n] of names.slice(0, 2).entries()) {
    const t = heldTransposed(a, SHAPES[i]), size = before.exp_avg[i].length;
    for (const [k, moment] of ["exp_avg", "exp_avg_sq"].entries()) {
      const prefix = `${n}/${k === 0 ? "m" : "v"}${t ? ".transposed" : ""}`;
      const [codes, scales] = [".codes", ".scales"].map((p) =>
        weights.find((w) => w.name === prefix + p)
      );
      assert.ok(codes && scales, `${label}: ${prefix}'s codes and scales`);
      const bytes = (await codes.tensor.data() as Int32Array).slice().buffer;
      const decoded = new Float32Array(size);
      const held = k === 0 ? new Int8Array(bytes, 0, size) : new Uint8Array(bytes, 0, size);
      decodeTensor(held, await scales.tensor.data() as Float32Array, decoded);
      assert.deepEqual(toTfjs(decoded, SHAPES[i], t), before[moment][i], `${label}: ${prefix}`);
    }
  }
}

/** Variables of SHAPES, and gradients (tfjs tensors and their float64 values) at step t. */
function variables() {
  const names = SHAPES.map((_, i) => name(["kernel", "conv", "bias"][i]));
  const vars = SHAPES.map((s, i) =>
    tf.variable(tf.tensor(randoms(s.reduce((a, b) => a * b), i + 7), s), true, names[i])
  );
  const grads = (t: number) => {
    const values = SHAPES.map((s, i) => randoms(s.reduce((a, b) => a * b), 31 * t + i));
    const map = Object.fromEntries(names.map((n, i) => [n, tf.tensor(values[i], SHAPES[i])]));
    return { map, values: values.map((v) => Float64Array.from(v)) };
  };
  return { names, vars, grads };
}

/**
 * Three steps of the sender on `sendOn`, its weights given to the receiver on `receiveOn`, one
 * step: the receiver's moments against the float64 reference; and, on the same backend, bit for
 * bit against a receiver given the sender's checkpoint by `loadState`.
 */
async function transfer(
  [from, to, states]: [string, string, "8bit" | "32bit"],
  sendOn: string,
  receiveOn: string,
  slack = 0,
): Promise<void> {
  const label = `${from} (8bit, ${sendOn}) → ${to} (${states}, ${receiveOn})`;
  await useBackend(sendOn);
  const v = variables();
  const a = tfOptimizer(MAKERS[from]("8bit"));
  for (let t = 0; t < 3; t++) {
    const g = v.grads(t);
    a.applyGradients(g.map);
    tf.dispose(Object.values(g.map));
  }
  const weights = await clonedWeights(a);
  const before = await momentsInTfjsOrder(a, v.names);
  await checkGivenCodes(a, weights, v.names, before, label);
  const bytes = await saveState(a.state!);
  await useBackend(receiveOn);
  const at3 = await Promise.all(v.vars.map(async (x) => (await x.data()).slice()));
  const b = tfOptimizer(MAKERS[to](states));
  await b.setWeights(weights);
  const g = v.grads(3);
  b.applyGradients(g.map);
  await checkMoments(b, v.names, before, g.values, label, slack);
  // (Checked after the values, which the weights of a scrambled order fail.) The kernels' codes
  // say their order (on webgpu, under gc too, the tfjs order: unmarked), and are codes, not f32.
  const marked = heldTransposed(a, SHAPES[0]) ? ".transposed.codes" : ".codes";
  for (const n of v.names.slice(0, 2)) {
    assert.ok(weights.some((w) => w.name === `${n}/m${marked}`), `${label}: ${n}'s moment`);
    assert.ok(!weights.some((w) => w.name === `${n}/m`), `${label}: ${n}'s moment as f32`);
  }
  if (sendOn === receiveOn) {
    const params = await Promise.all(v.vars.map(async (x) => (await x.data()).slice()));
    v.vars.forEach((x, i) => x.assign(tf.tensor(at3[i], SHAPES[i])));
    const c = tfOptimizer(MAKERS[to](states));
    await c.loadState(bytes);
    c.applyGradients(g.map);
    const got = await Promise.all(v.vars.map((x) => x.data()));
    got.forEach((x, i) => assert.deepEqual(x, params[i], `${label}: ${v.names[i]}`));
    assert.deepEqual(await readMoments(c.state!), await readMoments(b.state!), label);
    c.dispose();
  }
  tf.dispose([...Object.values(g.map), ...weights.map((w) => w.tensor), ...v.vars]);
  a.dispose();
  b.dispose();
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: 8-bit weights move across gc in their order, marked, not scrambled`, async () => {
    for (const pair of PAIRS) await transfer(pair, backend, backend);
  });
}

Deno.test("tfjs: getWeights and setWeights keep each moment's order, and refuse two in one", async () => {
  await useBackend("cpu");
  const v = variables();
  const a = tfOptimizer(MAKERS["radam gc"]("8bit"));
  const g = v.grads(0);
  a.applyGradients(g.map);
  const weights = await clonedWeights(a);
  const names = weights.map((w) => w.name);
  assert.ok(names.includes(`${v.names[0]}/v.transposed.scales`), names.join());
  assert.ok(names.includes(`${v.names[2]}/m`), names.join()); // a bias: f32, never transposed
  // Codes alone (no f32 weight gives the kernel's shape): kept as given, mark included, until
  // a step finds the variable.
  const b = tfOptimizer(MAKERS.radam("8bit"));
  await b.setWeights(weights);
  const again = await b.getWeights();
  assert.deepEqual(again.map((w) => w.name), names);
  again.forEach((w, i) => assert.deepEqual(w.tensor.dataSync(), weights[i].tensor.dataSync()));
  // A moment's codes in one order and its scales in the other are refused, naming both.
  const mixed = weights.map((w) =>
    w.name === `${v.names[0]}/m.transposed.scales` ? { ...w, name: `${v.names[0]}/m.scales` } : w
  );
  const before = (await b.getWeights()).map((w) => [w.name, w.tensor.dataSync().slice()]);
  for (
    const [given, message] of [
      [mixed, /m\.transposed\.codes" and ".*m\.scales" are one moment's in two orders/],
      [[...mixed].reverse(), /m\.scales" and ".*m\.transposed\.codes" are one moment's in two/],
    ] as const
  ) {
    await assert.rejects(b.setWeights([...given]), (e: Error) => {
      assert.ok(e instanceof TypeError, String(e));
      assert.match(e.message, message);
      return true;
    });
    const now = (await b.getWeights()).map((w) => [w.name, w.tensor.dataSync().slice()]);
    assert.deepEqual(now, before, "a refused call changes nothing");
  }
  tf.dispose([...Object.values(g.map), ...weights.map((w) => w.tensor), ...v.vars]);
  a.dispose();
  b.dispose();
});

/**
 * Checks that `loaded`, a model loaded from `saved` whose optimizer is given its kernels' 8-bit
 * moments in the order `mark` (`""` or `".transposed"`), holds them as codes, in that order,
 * until a step, and that it steps (one epoch over `x`, `y`) bit for bit as a twin given instead
 * the moments `want` (by weight name, `<kernel>/m`, `<kernel>/v`: the sender's, decoded, in the
 * tfjs order) as f32 weights: each element takes its own moment, the values given exactly.
 */
async function stepsAsTwin(
  loaded: tfl.LayersModel,
  saved: tf.io.ModelArtifacts,
  mark: string,
  want: Map<string, Float32Array>,
  [x, y]: [tf.Tensor, tf.Tensor],
  label: string,
): Promise<void> {
  const given = await clonedWeights(loaded.optimizer as TfOptimizer);
  const twin = await tfl.loadLayersModel(tf.io.fromMemory(saved));
  const moments = [...want.keys()];
  const names = given.map((w) => w.name);
  for (const m of moments) {
    // Codes (1 byte an element) in their order until a step takes them, not f32 moments.
    assert.ok(names.includes(`${m}${mark}.codes`) && !names.includes(m), `${label}: ${m}`);
  }
  const ofMoment = (n: string) => moments.find((m) => n.startsWith(`${m}.`));
  await twin.optimizer.setWeights([
    ...given.filter((w) => ofMoment(w.name) === undefined),
    ...moments.map((m) => ({ name: m, tensor: tf.tensor(want.get(m)!, shapeOf(saved, m)) })),
  ]);
  await loaded.fit(x, y, fitInOrder(1));
  await twin.fit(x, y, fitInOrder(1));
  assert.deepEqual(await weightValues(loaded), await weightValues(twin), label);
  const [a, b] = await Promise.all([loaded, twin].map(async (m) => {
    const weights = await m.optimizer.getWeights();
    return Promise.all(weights.map(async (w) => [w.tensor.dtype, await w.tensor.data()]));
  }));
  assert.deepEqual(a, b, label);
  tf.dispose(given.map((w) => w.tensor));
  disposeModels(twin);
}

/** The shape of the variable whose weight `moment` (`<variable>/m`) is, as `saved` holds it. */
function shapeOf(saved: tf.io.ModelArtifacts, moment: string): number[] {
  const variable = moment.slice(0, moment.lastIndexOf("/"));
  return saved.weightSpecs!.find((s) => s.name === variable)!.shape;
}

Deno.test("tfjs: a model saved with its 8-bit optimizer and loaded with another gc's takes each kernel's moments in its order", async () => {
  await useBackend("cpu");
  for (const [from, to] of [["ranger", "lookahead(radam)"], ["lookahead(radam)", "ranger"]]) {
    const model = bigNet(5);
    const optimizer = tfOptimizer(MAKERS[from]("8bit"));
    model.compile({ optimizer, loss: "meanSquaredError" });
    const { x, y } = data([70], 16, 3);
    await model.fit(x, y, fitInOrder(2));
    const saved = await saveToMemory(model);
    const kernels = model.trainableWeights.map((w) => w.read() as tf.Variable)
      .filter((w) => w.rank === 2 && w.size >= 4096);
    // The same model loaded with the other's optimizer config.
    const other = tfOptimizer(MAKERS[to]("8bit"));
    (saved.trainingConfig!.optimizer_config as { config: unknown }).config = other.getConfig();
    other.dispose();
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved));
    assert.equal((loaded.optimizer as TfOptimizer).settings.loop.gc, to === "ranger");
    // model.json holds the order of the kernels' codes.
    const mark = from === "ranger" ? ".transposed" : "";
    for (const k of kernels) {
      assert.ok(saved.weightSpecs!.some((s) => s.name === `${k.name}/v${mark}.codes`), k.name);
    }
    // The kernels' moments, decoded, in the tfjs order: what the loaded optimizer must step from.
    const moments = await readMoments(optimizer.state!);
    const want = new Map<string, Float32Array>();
    for (const k of kernels) {
      for (const [moment, suffix] of [["exp_avg", "m"], ["exp_avg_sq", "v"]]) {
        const values = toTfjs(moments[moment][k.name], k.shape, heldTransposed(optimizer, k.shape));
        want.set(`${k.name}/${suffix}`, Float32Array.from(values));
      }
    }
    await stepsAsTwin(loaded, saved, mark, want, [x, y], `${from} → ${to}`);
    tf.dispose([x, y]);
    disposeModels(model, loaded);
  }
});

const sanitize = await webgpuTestOptions();

Deno.test({
  name:
    "tfjs webgpu: 8-bit weights move across gc between the CPU and the GPU in their order (a gc kernel's codes from the GPU unmarked)",
  ...sanitize,
  ignore: sanitize.ignore,
  async fn() {
    // The GPU's 8-bit step rounds as the CPU's, but its f32 arithmetic may differ by an ulp.
    const slack = 1e-6;
    await transfer(["ranger", "lookahead(radam)", "8bit"], "cpu", "webgpu", slack);
    await transfer(["lookahead(radam)", "ranger", "8bit"], "cpu", "webgpu", slack);
    await transfer(["radam gc", "radam", "8bit"], "cpu", "webgpu", slack);
    await transfer(["ranger", "lookahead(radam)", "8bit"], "webgpu", "cpu", slack);
    await transfer(["radam", "radam gc", "8bit"], "webgpu", "cpu", slack);
    await transfer(["radam gc", "radam", "8bit"], "webgpu", "cpu", slack);
    await transfer(["ranger", "ranger", "8bit"], "webgpu", "webgpu", slack);
    await transfer(["ranger", "lookahead(radam)", "8bit"], "webgpu", "webgpu", slack);
    await transfer(["radam gc", "radam gc", "8bit"], "webgpu", "webgpu", slack);
  },
});

/** The bytes of the weights `artifacts` hold (float32 and int32: 4 an element). */
function weightBytes(artifacts: tf.io.ModelArtifacts): number {
  return artifacts.weightSpecs!.reduce((sum, s) => sum + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
}

Deno.test({
  name:
    "tfjs webgpu: a model saved with Ranger in 8 bits holds its kernels' moments as codes (1 byte an element), resumes bit for bit, and loads on cpu in each kernel's order",
  ...sanitize,
  ignore: sanitize.ignore,
  async fn() {
    await useBackend("webgpu");
    const saved: Record<string, tf.io.ModelArtifacts> = {};
    for (const states of ["32bit", "8bit"] as const) {
      const model = bigNet(5);
      model.compile({
        optimizer: tfOptimizer(ranger({ lr: 1e-2, states })),
        loss: "meanSquaredError",
      });
      const { x, y } = data([70], 16, 3);
      await model.fit(x, y, fitInOrder(2));
      saved[states] = await saveToMemory(model);
      if (states === "32bit") {
        tf.dispose([x, y]);
        disposeModels(model);
        continue;
      }
      const kernels = model.trainableWeights.map((w) => w.read() as tf.Variable)
        .filter((w) => w.rank === 2 && w.size >= 4096);
      assert.equal(kernels.length, 2);
      // Codes in the tfjs order (unmarked), not f32: the model shrinks by 3 bytes an element.
      let shrink = 0;
      const specs = saved["8bit"].weightSpecs!;
      for (const k of kernels) {
        const n = k.size;
        for (const s of ["m", "v"]) {
          const spec = (part: string): tf.io.WeightsManifestEntry | undefined =>
            specs.find((w) => w.name === k.name + part);
          assert.equal(spec(`/${s}`), undefined, `${k.name}/${s} as f32`);
          assert.deepEqual([spec(`/${s}.codes`)?.dtype, spec(`/${s}.codes`)?.shape], ["int32", [
            Math.ceil(n / 4),
          ]]);
          assert.deepEqual(spec(`/${s}.scales`)?.shape, [Math.ceil(n / 256)]);
          shrink += 4 * n - 4 * Math.ceil(n / 4) - 4 * Math.ceil(n / 256);
        }
      }
      assert.equal(weightBytes(saved["8bit"]), weightBytes(saved["32bit"]) - shrink);
      const moments = await readMoments((model.optimizer as TfOptimizer).state!);
      // Loaded on webgpu: one more epoch of each, bit for bit.
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved[states]));
      await model.fit(x, y, fitInOrder(1));
      await loaded.fit(x, y, fitInOrder(1));
      assert.deepEqual(await weightValues(loaded), await weightValues(model));
      const [a, b] = await Promise.all([model, loaded].map(async (m) => {
        const weights = await m.optimizer.getWeights();
        return Promise.all(
          weights.map(async (w) => [w.name.replace(/_1\//, "/"), await w.tensor.data()]),
        );
      }));
      assert.deepEqual(b, a);
      tf.dispose([x, y]);
      disposeModels(model, loaded);
      // Loaded on cpu under gc (a kernel held transposed there): each element its own moment.
      await useBackend("cpu");
      const onCpu = await tfl.loadLayersModel(tf.io.fromMemory(saved[states]));
      const want = new Map<string, Float32Array>();
      for (const k of kernels) {
        want.set(`${k.name}/m`, moments.exp_avg[k.name]);
        want.set(`${k.name}/v`, moments.exp_avg_sq[k.name]);
      }
      const { x: xc, y: yc } = data([70], 16, 3);
      await stepsAsTwin(onCpu, saved[states], "", want, [xc, yc], "webgpu → cpu");
      tf.dispose([xc, yc]);
      disposeModels(onCpu);
    }
  },
});
