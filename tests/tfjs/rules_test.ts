/**
 * Every rule of the table (tests/rule_table.ts) through the TensorFlow.js adapter: the core
 * library's bits through applyGradients, its moments in the tfjs weights (`<variable>/m`, `/v`,
 * or the moment's own name), `lookahead(…)` of it through model.save and loadLayersModel resuming
 * bit for bit, and model.fit on tfjs's webgpu backend (skipped where RADAM_NO_GPU=1 and no
 * adapter).
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { lookahead, readMoments, readParams, step } from "../../mod.ts";
import { TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { optimizerOf, RULE_TABLE } from "../rule_table.ts";
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

/** The tfjs weight suffix of a moment: as tfjs names Adam's, else the moment's own name. */
const suffixOf = (moment: string) => ({ exp_avg: "m", exp_avg_sq: "v" })[moment] ?? moment;

let unique = 0;

for (const row of RULE_TABLE) {
  const make = () => optimizerOf(row, row.example, "auto");
  const suffixes = row.moments(row.example).map(suffixOf);

  // The first optimizer with its defaults, and the row's example.
  const named = [{ optimizer: Object.keys(row.optimizers)[0], options: {} }, row.example];

  for (const backend of CPU_BACKENDS) {
    Deno.test(`tfjs ${backend}: ${row.rule} through applyGradients gives the core library's bits`, async () => {
      await useBackend(backend);
      for (const c of named) {
        const make = () => optimizerOf(row, c, "auto");
        const prefix = `${row.rule}${unique++}`;
        const shapes: Record<string, number[]> = {
          [`${prefix}/k`]: [5, 3],
          [`${prefix}/b`]: [3],
        };
        const names = Object.keys(shapes);
        const init = names.map((n, i) => randoms(shapes[n].reduce((a, b) => a * b), 3 + i));
        const vars = names.map((n, i) => tf.variable(tf.tensor(init[i], shapes[n]), true, n));
        const opt = tfOptimizer(make());
        let state = await make().init(
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
        const moments = await readMoments(state);
        const weights = await opt.getWeights();
        assert.deepEqual(weights.map((w) => w.name), [
          "iter",
          ...row.moments(c).map(suffixOf).flatMap((s) => names.map((n) => `${n}/${s}`)),
        ]);
        row.moments(c).forEach((m, j) =>
          names.forEach((n, i) =>
            assert.deepEqual(weights[1 + j * names.length + i].tensor.dataSync(), moments[m][n])
          )
        );
        tf.dispose(weights.map((w) => w.tensor));
        opt.dispose();
        tf.dispose(vars);
      }
    });
  }

  Deno.test(`tfjs: lookahead(${row.example.optimizer}) through model.save and loadLayersModel: N + M steps bit for bit`, async () => {
    await useBackend("cpu");
    const wrapped = () => lookahead(make(), { k: 3 });
    const whole = denseNet(5), first = denseNet(5);
    whole.compile({ optimizer: tfOptimizer(wrapped()), loss: "meanSquaredError" });
    first.compile({ optimizer: tfOptimizer(wrapped()), loss: "meanSquaredError" });
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
    // The weights are the rule's moments and the slow weights, nothing else.
    const kinds = new Set(wa.slice(1).map((w) => w.name.split("/").pop()));
    assert.deepEqual([...kinds].sort(), [...suffixes, "slow"].sort());
    tf.dispose([x, y, ...wa.map((w) => w.tensor), ...wb.map((w) => w.tensor)]);
    for (const m of [whole, first, loaded]) {
      m.optimizer.dispose();
      m.dispose();
    }
  });
}

const gpuAdapter = await navigator.gpu?.requestAdapter();
if (!gpuAdapter && Deno.env.get("RADAM_NO_GPU") !== "1") {
  throw new Error("No WebGPU adapter found; set RADAM_NO_GPU=1 to skip the webgpu test");
}

for (const row of RULE_TABLE) {
  Deno.test({
    name:
      `tfjs webgpu: ${row.rule} through model.fit runs on the GPU, lowers the loss, keeps its moments`,
    ignore: !gpuAdapter,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      await useBackend("webgpu");
      const model = denseNet(9);
      const optimizer = tfOptimizer(optimizerOf(row, row.example, "auto"));
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
      const suffixes = row.moments(row.example).map(suffixOf);
      assert.ok(weights.slice(1).every((w) => suffixes.includes(w.name.split("/").pop()!)));
      assert.equal(weights.length - 1, suffixes.length * model.trainableWeights.length);
      tf.dispose([x, y, ...weights.map((w) => w.tensor)]);
      optimizer.dispose();
      model.dispose();
    },
  });
}
