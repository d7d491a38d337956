/**
 * `tfOptimizer(lion())`: the core library's bits through applyGradients, one moment in the tfjs
 * weights (`<variable>/m`), model.save/loadLayersModel with `lookahead(lion())` resuming bit for
 * bit, and model.fit on tfjs's webgpu backend (skipped where RADAM_NO_GPU=1 and no adapter).
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { lion, lookahead, readMoments, readParams, step } from "../../mod.ts";
import { TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import {
  CPU_BACKENDS,
  data,
  denseNet,
  randoms,
  saveToMemory,
  tf,
  tfl,
  useBackend,
  weightValues,
} from "./helpers.ts";

let unique = 0;
function name(base: string): string {
  return `lion${unique++}/${base}`;
}

for (const backend of CPU_BACKENDS) {
  Deno.test(`tfjs ${backend}: lion through applyGradients gives the core library's bits`, async () => {
    await useBackend(backend);
    const shapes: Record<string, number[]> = { [name("k")]: [5, 3], [name("b")]: [3] };
    const names = Object.keys(shapes);
    const init = names.map((n, i) => randoms(shapes[n].reduce((a, b) => a * b), 3 + i));
    const vars = names.map((n, i) => tf.variable(tf.tensor(init[i], shapes[n]), true, n));
    const options = { lr: 0.01, weightDecay: 0.1, betas: [0.9, 0.99] as [number, number] };
    const opt = tfOptimizer(lion(options));
    let state = await lion(options).init(
      Object.fromEntries(names.map((n, i) => [n, init[i].slice()])),
    );
    for (let t = 0; t < 10; t++) {
      const g = names.map((_, i) => randoms(init[i].length, 50 * t + i + 1));
      const tensors = names.map((n, i) => tf.tensor(g[i], shapes[n]));
      opt.applyGradients(Object.fromEntries(names.map((n, i) => [n, tensors[i]])));
      tf.dispose(tensors);
      state = step(state, Object.fromEntries(names.map((n, i) => [n, g[i]])));
    }
    const want = await readParams(state);
    names.forEach((n, i) => assert.deepEqual(vars[i].dataSync(), want[n], n));
    const { exp_avg } = await readMoments(state);
    const weights = await opt.getWeights();
    assert.deepEqual(weights.map((w) => w.name), ["iter", ...names.map((n) => `${n}/m`)]);
    names.forEach((n, i) => assert.deepEqual(weights[1 + i].tensor.dataSync(), exp_avg[n]));
    tf.dispose(weights.map((w) => w.tensor));
    opt.dispose();
    tf.dispose(vars);
  });
}

Deno.test("tfjs: lookahead(lion()) through model.save and loadLayersModel: N + M steps bit for bit", async () => {
  await useBackend("cpu");
  const make = () => lookahead(lion({ lr: 1e-3 }), { k: 3 });
  const whole = denseNet(5), first = denseNet(5);
  whole.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
  first.compile({ optimizer: tfOptimizer(make()), loss: "meanSquaredError" });
  const { x, y } = data([6], 16, 3);
  const fit = (epochs: number) => ({ epochs, batchSize: 4, shuffle: false, verbose: 0 as const });
  await whole.fit(x, y, fit(4));
  await first.fit(x, y, fit(2));
  const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(first)));
  assert.ok(loaded.optimizer instanceof TfOptimizer);
  await loaded.fit(x, y, fit(2));
  const a = await weightValues(whole), b = await weightValues(loaded);
  a.forEach((w, i) => assert.deepEqual(b[i], w, `weight ${i}`));
  const wa = await whole.optimizer.getWeights(), wb = await loaded.optimizer.getWeights();
  assert.deepEqual(wb.map((w) => w.tensor.dataSync()), wa.map((w) => w.tensor.dataSync()));
  assert.ok(wa.some((w) => w.name.endsWith("/slow")) && !wa.some((w) => w.name.endsWith("/v")));
  tf.dispose([x, y, ...wa.map((w) => w.tensor), ...wb.map((w) => w.tensor)]);
  for (const m of [whole, first, loaded]) {
    m.optimizer.dispose();
    m.dispose();
  }
});

const gpuAdapter = await navigator.gpu?.requestAdapter();
if (!gpuAdapter && Deno.env.get("RADAM_NO_GPU") !== "1") {
  throw new Error("No WebGPU adapter found; set RADAM_NO_GPU=1 to skip the webgpu test");
}

Deno.test({
  name: "tfjs webgpu: lion through model.fit runs on the GPU, lowers the loss, keeps m only",
  ignore: !gpuAdapter,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await useBackend("webgpu");
    const model = denseNet(9);
    const optimizer = tfOptimizer(lion({ lr: 3e-3 }));
    model.compile({ optimizer, loss: "meanSquaredError" });
    const { x, y } = data([6], 32, 7);
    const history = await model.fit(x, y, {
      epochs: 8,
      batchSize: 8,
      shuffle: false,
      verbose: 0,
    });
    const loss = history.history.loss as number[];
    assert.equal(optimizer.backend, "webgpu");
    assert.ok(loss[loss.length - 1] < loss[0], `loss ${loss[0]} → ${loss[loss.length - 1]}`);
    const weights = await optimizer.getWeights();
    assert.ok(weights.slice(1).every((w) => w.name.endsWith("/m")));
    tf.dispose([x, y, ...weights.map((w) => w.tensor)]);
    optimizer.dispose();
    model.dispose();
  },
});
