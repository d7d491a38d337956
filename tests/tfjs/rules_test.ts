/**
 * Every rule of the table (tests/rule_table.ts) through the TensorFlow.js adapter, in both formats
 * of its moments (`FORMATS`): the core library's bits through applyGradients (small variables,
 * and with 8-bit states compact ones, of whole and of padded blocks), its moments in the tfjs
 * weights (`<variable>/m`, `/v`, or the moment's own name; in 8 bits their codes and scales as
 * the core state holds them), `lookahead(…)` of it through model.save and loadLayersModel resuming
 * bit for bit, and model.fit on tfjs's webgpu backend (skipped where RADAM_NO_GPU=1 and no
 * adapter).
 */
import "@tensorflow/tfjs-backend-webgpu";
import assert from "node:assert/strict";
import { lookahead, readMoments, readParams, step } from "../../mod.ts";
import { TfOptimizer, tfOptimizer } from "../../tfjs.ts";
import { FORMATS, optimizerOf, RULE_TABLE, type RuleCase } from "../rule_table.ts";
import {
  bigNet,
  coreCodes,
  CPU_BACKENDS,
  data,
  denseNet,
  disposeModels,
  fitInOrder,
  randoms,
  saveToMemory,
  tf,
  tfl,
  unpackCodes,
  useBackend,
  webgpuTestOptions,
  weightValues,
} from "./helpers.ts";

/** The tfjs weight suffix of a moment: as tfjs names Adam's, else the moment's own name. */
const suffixOf = (moment: string) => ({ exp_avg: "m", exp_avg_sq: "v" })[moment] ?? moment;

let unique = 0;

for (const row of RULE_TABLE) {
  const suffixes = row.moments(row.example).map(suffixOf);

  // The first optimizer with its defaults, and the row's example.
  const named = [{ optimizer: Object.keys(row.optimizers)[0], options: {} }, row.example];

  for (const backend of CPU_BACKENDS) {
    for (const states of FORMATS) {
      Deno.test(`tfjs ${backend}: ${row.rule} (${states}) through applyGradients gives the core library's bits`, async () => {
        await useBackend(backend);
        for (const c of named) await throughApplyGradients(row, c, states);
      });
    }
  }

  for (const states of FORMATS) {
    Deno.test(`tfjs: lookahead(${row.example.optimizer}) (${states}) through model.save and loadLayersModel: N + M steps bit for bit`, async () => {
      await useBackend("cpu");
      const wrapped = () => lookahead(optimizerOf(row, row.example, "auto", { states }), { k: 3 });
      // In 8 bits, a net with kernels of 4096 elements or more (held in 8 bits).
      const net = states === "8bit" ? bigNet : denseNet;
      const whole = net(5), first = net(5);
      whole.compile({ optimizer: tfOptimizer(wrapped()), loss: "meanSquaredError" });
      first.compile({ optimizer: tfOptimizer(wrapped()), loss: "meanSquaredError" });
      const { x, y } = data(states === "8bit" ? [70] : [6], 16, 3);
      await whole.fit(x, y, fitInOrder(4));
      await first.fit(x, y, fitInOrder(2));
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(await saveToMemory(first)));
      assert.ok(loaded.optimizer instanceof TfOptimizer);
      await loaded.fit(x, y, fitInOrder(2));
      const a = await weightValues(whole), b = await weightValues(loaded);
      a.forEach((w, i) => assert.deepEqual(b[i], w, `weight ${i}`));
      const wa = await whole.optimizer.getWeights(), wb = await loaded.optimizer.getWeights();
      assert.deepEqual(wb.map((w) => w.tensor.dataSync()), wa.map((w) => w.tensor.dataSync()));
      // The weights are the rule's moments and the slow weights, nothing else (in 8 bits, the
      // moments of the kernels as codes and scales).
      const kinds = new Set(
        wa.slice(1).map((w) => w.name.split("/").pop()!.replace(/\.(codes|scales)$/, "")),
      );
      const coded = wa.filter((w) => w.name.endsWith(".codes")).length;
      assert.equal(coded, states === "8bit" ? 2 * suffixes.length : 0);
      assert.deepEqual([...kinds].sort(), [...suffixes, "slow"].sort());
      tf.dispose([x, y, ...wa.map((w) => w.tensor), ...wb.map((w) => w.tensor)]);
      disposeModels(whole, first, loaded);
    });
  }
}

/**
 * 10 steps of `c` through a TfOptimizer and through the core library on the same gradients:
 * the same parameters, the same moments in the weights (in 8 bits: the same codes and scales).
 * Variables: a kernel and a bias (f32 moments either way), and 4096 and 4480 elements (with
 * 8-bit states compact: whole blocks, read in place on tfjs's wasm heap; a padded last block,
 * held in the arena).
 */
async function throughApplyGradients(
  row: (typeof RULE_TABLE)[number],
  c: RuleCase,
  states: string,
): Promise<void> {
  const make = () => optimizerOf(row, c, "auto", { states });
  const prefix = `${row.rule}${unique++}`;
  const shapes: Record<string, number[]> = {
    [`${prefix}/k`]: [5, 3],
    [`${prefix}/b`]: [3],
    [`${prefix}/w`]: [16, 256],
    [`${prefix}/p`]: [70, 64],
  };
  const names = Object.keys(shapes);
  const init = names.map((n, i) => randoms(shapes[n].reduce((a, b) => a * b), 3 + i));
  const vars = names.map((n, i) => tf.variable(tf.tensor(init[i], shapes[n]), true, n));
  const opt = tfOptimizer(make());
  let state = await make().init(Object.fromEntries(names.map((n, i) => [n, init[i].slice()])));
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
  const codes = coreCodes(state);
  const weights = await opt.getWeights();
  const byName = new Map(weights.map((w) => [w.name, w.tensor]));
  const expected = ["iter"];
  row.moments(c).forEach((m, k) =>
    names.forEach((n) => {
      const name = `${n}/${suffixOf(m)}`;
      const held = codes[k]?.[n];
      if (held === undefined) {
        expected.push(name);
        assert.deepEqual(byName.get(name)!.dataSync(), moments[m][n], name);
        return;
      }
      expected.push(`${name}.codes`, `${name}.scales`);
      const signed = held.codes instanceof Int8Array;
      assert.deepEqual(
        unpackCodes(byName.get(`${name}.codes`)!, held.codes.length, signed),
        held.codes,
      );
      assert.deepEqual(byName.get(`${name}.scales`)!.dataSync(), held.scales);
    })
  );
  assert.deepEqual(weights.map((w) => w.name), expected);
  // 8-bit states hold the two large variables in 8 bits (4096 elements or more), no other.
  const compact = states === "8bit" && row.moments(c).length > 0 ? 2 : 0;
  assert.equal(Object.keys(codes[0] ?? {}).length, compact);
  tf.dispose(weights.map((w) => w.tensor));
  opt.dispose();
  tf.dispose(vars);
}

const sanitize = await webgpuTestOptions();

for (const row of RULE_TABLE) {
  for (const states of FORMATS) {
    Deno.test({
      name:
        `tfjs webgpu: ${row.rule} (${states}) through model.fit runs on the GPU, lowers the loss, keeps its moments`,
      ...sanitize,
      ignore: sanitize.ignore,
      async fn() {
        await useBackend("webgpu");
        const model = states === "8bit" ? bigNet(9) : denseNet(9);
        const optimizer = tfOptimizer(optimizerOf(row, row.example, "auto", { states }));
        model.compile({ optimizer, loss: "meanSquaredError" });
        const { x, y } = data(states === "8bit" ? [70] : [6], 32, 7);
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
        const kind = (w: { name: string }) =>
          w.name.split("/").pop()!.replace(/\.(codes|scales)$/, "");
        assert.ok(weights.slice(1).every((w) => suffixes.includes(kind(w))));
        // In 8 bits the two kernels' moments are codes and scales: one weight more each.
        const coded = states === "8bit" ? 2 : 0;
        assert.equal(weights.length - 1, suffixes.length * (model.trainableWeights.length + coded));
        tf.dispose([x, y, ...weights.map((w) => w.tensor)]);
        optimizer.dispose();
        model.dispose();
      },
    });
  }
}
