import assert from "node:assert/strict";
import { DOMParser } from "@xmldom/xmldom";
import { encode, VOCABULARY, VOCABULARY_SIZE } from "./corpus.ts";
import { DEFAULTS, parseFlags, QUICK, UsageError } from "./flags.ts";
import { STUDY_OPTIMIZERS } from "./optimizers.ts";
import { addToHistogram, HIST_BINS, rectification, stepSizes } from "./step_sizes.ts";

Deno.test("study: RAdam's rectifier switches on at step 6 at β2 = 0.999, r6 ≈ 0.0258", () => {
  for (let t = 1; t <= 5; t++) assert.equal(rectification(0.999, t), 0);
  assert.ok(Math.abs(rectification(0.999, 6) - 0.0258) < 1e-4);
  assert.ok(rectification(0.999, 1000) > rectification(0.999, 100));
});

Deno.test("study: Adam's first step has size lr in every coordinate; RAdam's is lr·|m̂|", () => {
  const g = Float32Array.from([0.5, -2, 1e-3]);
  const m = g.map((x) => 0.1 * x), v = g.map((x) => 0.001 * x * x);
  const out = new Float64Array(3);
  stepSizes({ kind: "adam", lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 1, m, v, out);
  for (const x of out) assert.ok(Math.abs(x - 1e-2) < 1e-6 * 1e-2 / 1e-3, `${x}`);
  stepSizes({ kind: "radam", lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, 1, m, v, out);
  out.forEach((x, i) => assert.ok(Math.abs(x - 1e-2 * Math.abs(g[i])) < 1e-9));
  const histogram = new Float64Array(HIST_BINS);
  assert.equal(addToHistogram(Float64Array.from([0, 1e-3, 1e-3, 5]), histogram), 1);
  assert.equal(histogram.reduce((a, b) => a + b), 3);
});

Deno.test("study: the corpus folds text onto its 50 symbols", () => {
  assert.equal(VOCABULARY_SIZE, 50);
  const codes = encode("The U.S. — “Union”’s 1st€");
  const back = [...codes].map((c) => VOCABULARY[c]).join("");
  assert.equal(back, 'the u.s. - "union"\'s 1st\u00b7');
});

Deno.test("study: flags, defaults and --quick", () => {
  assert.deepEqual(parseFlags([]), DEFAULTS);
  const quick = parseFlags(["--quick", "--out", "x"]);
  assert.equal(quick.steps, QUICK.steps);
  assert.deepEqual(quick.lrs, QUICK.lrs);
  assert.equal(quick.out, "x");
  assert.deepEqual(parseFlags(["--lrs", "1e-2,1e-3"]).lrs, [1e-3, 1e-2]);
  assert.throws(() => parseFlags(["--tasks", "audio"]), UsageError);
  assert.throws(() => parseFlags(["--steps", "0"]), UsageError);
  assert.throws(() => parseFlags(["--bogus"]), UsageError);
});

interface QuickResult {
  job: { task: string; optimizer: string; lr: number; traceSteps: number; steps: number };
  losses: (number | null)[];
  evalLoss: number;
  evalAccuracy: number;
  diverged: boolean;
  updateBackend: string;
  tfjsBackend: string;
  trace?: {
    rows: { t: number; histogram: number[]; zeros: number; median: number }[];
    check: { compared: number; outside: number };
  };
}

Deno.test("study: deno task study --quick trains every optimizer and writes sane outputs", async () => {
  const out = await Deno.makeTempDir({ prefix: "study-quick-" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        "--allow-sys=cpus",
        `--allow-write=${out}`,
        new URL("./main.ts", import.meta.url).pathname,
        "--quick",
        "--out",
        out,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, stderr);
    const { results, info } = JSON.parse(await Deno.readTextFile(`${out}/results.json`)) as {
      results: QuickResult[];
      info: { tfjsBackend: string; updateBackends: string[]; cpuSeconds: number };
    };
    assert.equal(info.tfjsBackend, "wasm");
    assert.deepEqual(info.updateBackends, ["wasm"]);
    assert.ok(info.cpuSeconds > 0);
    const sweep = results.filter((r) => r.job.traceSteps === 0);
    for (const task of ["image", "language"]) {
      const ids = sweep.filter((r) => r.job.task === task).map((r) => r.job.optimizer).sort();
      assert.deepEqual(ids, STUDY_OPTIMIZERS.map((o) => o.id).sort(), task);
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    for (const r of sweep) {
      const name = `${r.job.task}/${r.job.optimizer}`;
      assert.equal(r.diverged, false, name);
      assert.equal(r.losses.length, QUICK.steps, name);
      assert.ok(r.losses.every((x) => typeof x === "number" && Number.isFinite(x)), name);
      const losses = r.losses as number[];
      assert.ok(
        mean(losses.slice(-10)) < mean(losses.slice(0, 5)),
        `${name} did not learn: ${losses}`,
      );
      assert.ok(Number.isFinite(r.evalLoss) && r.evalAccuracy > 0 && r.evalAccuracy <= 1, name);
    }
    // the step-size histograms: Adam, Adam + warmup and RAdam in both tasks, every traced step
    const traced = results.filter((r) => r.job.traceSteps > 0);
    assert.deepEqual(
      traced.map((r) => `${r.job.task}/${r.job.optimizer}`).sort(),
      [
        "image/adam",
        "image/adam-warmup-50",
        "image/radam",
        "language/adam",
        "language/adam-warmup-50",
        "language/radam",
      ],
    );
    for (const r of traced) {
      const rows = r.trace!.rows;
      assert.deepEqual(
        rows.map((row) => row.t),
        Array.from({ length: QUICK.traceSteps }, (_, i) => i + 1),
      );
      const params = r.job.task === "image" ? 5386 : 12562;
      for (const row of rows) {
        assert.equal(row.histogram.reduce((a, b) => a + b, 0) + row.zeros, params);
        assert.ok(row.median > 0 && row.median < 1);
      }
      // the sizes are those of the steps taken
      assert.equal(r.trace!.check.compared, params * QUICK.traceSteps);
      assert.equal(r.trace!.check.outside, 0);
    }
    // Adam's first step is lr in every coordinate that moved; RAdam's first steps are far smaller
    const first = (task: string, id: string) =>
      traced.find((r) => r.job.task === task && r.job.optimizer === id)!.trace!.rows[0].median;
    for (const task of ["image", "language"]) {
      assert.ok(Math.abs(first(task, "adam") - QUICK.lrs[0]) < 1e-3 * QUICK.lrs[0]);
      assert.ok(first(task, "radam") < first(task, "adam") / 10);
    }
    // the figures and tables
    const parser = new DOMParser();
    for (const name of ["study.svg", "study_curves.svg", "study_steps.svg"]) {
      const doc = parser.parseFromString(
        await Deno.readTextFile(`${out}/${name}`),
        "image/svg+xml",
      );
      assert.equal(doc.documentElement?.nodeName, "svg", name);
    }
    const steps = await Deno.readTextFile(`${out}/study_steps.svg`);
    assert.equal(steps.match(/class="ridge"/g)?.length, 2 * 3 * 12); // t = 1..8, 10, 12, 15, 20 of 20
    const md = await Deno.readTextFile(`${out}/results.md`);
    assert.match(md, /Made by `deno task study --quick --out /);
    assert.match(md, /## image[\s\S]*\| 1e-2 \|[\s\S]*## language/);
    // --from renders the same tables again from results.json, without training
    const again = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        `--allow-write=${out}`,
        new URL("./main.ts", import.meta.url).pathname,
        "--from",
        `${out}/results.json`,
        "--out",
        `${out}/again`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(again.code, 0, new TextDecoder().decode(again.stderr));
    const md2 = await Deno.readTextFile(`${out}/again/results.md`);
    assert.match(md2, /re-rendered from that run's results\.json by `deno task study --from /);
    const tables = (text: string) => text.split("\n").filter((l) => l.startsWith("|")).join("\n");
    assert.equal(tables(md2), tables(md));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
