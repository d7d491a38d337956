/**
 * Side-by-side step throughput: this library against what a user would pick instead
 * (TensorFlow.js Adam on its wasm and cpu backends) and against the same update in C (the
 * practical limit of the machine). `deno task bench` runs it; it prints a table and writes
 * bench/RESULTS.md and bench/throughput.svg.
 *
 * Every contender runs at every size in the same process run, several rounds, each round in a
 * new random order (and the states made in one); a figure is the median over rounds of the mean
 * step time within a round. Ratios therefore come from one run, on one machine, under the same
 * load.
 *
 * Flags: `--quick` (fewer rounds, sizes up to 4M, no power-of-two section), `--sizes=4K,256K`,
 * `--only=wasm,c-sse` (contender keys), `--rounds=N`, `--seed=N` (the random orders),
 * `--no-write`, `--cliff` (only the power-of-two section, printed, nothing written),
 * `--no-cliff` (without it).
 *
 * @module
 */
import { dispose, lion, type OptimizerState, radam, step } from "../mod.ts";
import { planArena } from "../base/arena.ts";
import { createWasmBackend } from "../cpu/wasm_backend.ts";
import { createThreadedWasmBackend } from "../cpu/threaded_wasm_backend.ts";
import { machine } from "./machine.ts";
import { collectGarbage, seeded, shuffled } from "./order.ts";
import { writeSvgChart } from "./svg_chart.ts";

// ---------------------------------------------------------------------------------------------
// Settings

const ALL_SIZES: [string, number][] = [
  ["4K", 4096],
  ["256K", 262_144],
  ["4M", 4_194_304],
  ["16M", 16_777_216],
  ["64M", 67_108_864],
];
const args = new Set(Deno.args);
const quick = args.has("--quick");
const sizeArg = Deno.args.find((a) => a.startsWith("--sizes="))?.slice("--sizes=".length);
const SIZES = sizeArg
  ? ALL_SIZES.filter(([label]) => sizeArg.split(",").includes(label))
  : quick
  ? ALL_SIZES.slice(0, 3)
  : ALL_SIZES;
const onlyArg = Deno.args.find((a) => a.startsWith("--only="))?.slice("--only=".length);
const roundsArg = Deno.args.find((a) => a.startsWith("--rounds="))?.slice("--rounds=".length);
const ROUNDS = roundsArg ? Number(roundsArg) : quick ? 3 : 7;
const seedArg = Deno.args.find((a) => a.startsWith("--seed="))?.slice("--seed=".length);
/** The orders of set-up and of turns (`--seed=N`, default 1). */
const random = seeded(seedArg ? Number(seedArg) : 1);
/** Target length of one timed sample, in seconds. */
const SAMPLE_SECONDS = quick ? 0.05 : 0.1;
/** A contender whose single step takes longer than this is timed over one round only. */
const SLOW_STEP_SECONDS = 1.5;
const THREADS = navigator.hardwareConcurrency;
const BENCH_DIR = new URL(".", import.meta.url);

// ---------------------------------------------------------------------------------------------
// Contenders

/** One contender, set up at one size. */
interface Runner {
  /** Called before each timed sample (switches the tfjs backend, for example). */
  enter?(): Promise<void>;
  /** Seconds per step, over `steps` steps. */
  time(steps: number): Promise<number>;
  dispose?(): void;
}

interface Contender {
  name: string;
  /** Short key, used in the ratio columns. */
  key: string;
  /** A runner, or the reason this contender is skipped at this size. */
  setup(n: number): Promise<Runner | string>;
}

function syncTimer(stepOnce: () => void): (steps: number) => Promise<number> {
  return (steps) => {
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) stepOnce();
    return Promise.resolve((performance.now() - t0) / 1e3 / steps);
  };
}

function gradient(n: number, i: number): number {
  return Math.cos(i + n) * 1e-2;
}

/** A layout of `count` tensors, transformer-like, whose sizes add up to `total`. */
export function mixedLayout(total: number, count: number): number[] {
  const blocks = count / 8;
  // per block: qkv weight 3d², qkv bias 3d, out weight d², out bias d, mlp up 4d², mlp up bias
  // 4d, mlp down 4d², norm weight d: 12d² + 9d elements
  let d = Math.floor(Math.sqrt(total / blocks / 12));
  while (blocks * (12 * d * d + 9 * d) > total) d--;
  const sizes: number[] = [];
  for (let b = 0; b < blocks; b++) {
    sizes.push(3 * d * d, 3 * d, d * d, d, 4 * d * d, 4 * d, 4 * d * d, d);
  }
  sizes[0] += total - sizes.reduce((a, b) => a + b, 0);
  return sizes;
}

async function rectifiedState(
  backend: "wasm" | "js",
  sizes: number[],
  threads = 1,
  checked = false,
  rule: "radam" | "lion" = "radam",
): Promise<OptimizerState> {
  const params: Record<string, Float32Array> = {};
  sizes.forEach((n, t) => {
    const p = new Float32Array(n);
    for (let i = 0; i < n; i++) p[i] = Math.sin(i + t);
    params[`t${t}`] = p;
  });
  // nonFinite "propagate": the same update as the C, TensorFlow.js and PyTorch (no check pass);
  // `checked`: the default, "skip", whose check reads the gradients once more (zero-copy) or as
  // they are copied in, and has rows of its own.
  // threadThreshold 0: the threaded contender runs on its threads at every size (the threshold
  // itself is measured by bench/thread_threshold.ts).
  const nonFinite = checked ? "skip" : "propagate";
  const options = { backend, nonFinite, threads, threadThreshold: 0 } as const;
  let state = await (rule === "lion" ? lion(options) : radam(options)).init(params);
  state.names.forEach((name, t) => {
    const g = state.grads[name];
    for (let i = 0; i < g.length; i++) g[i] = gradient(t, i);
  });
  // past step 6, so that the timed steps take the rectified (adaptive) path
  for (let t = 0; t < 7; t++) state = step(state);
  return state;
}

function libraryContender(
  name: string,
  key: string,
  backend: "wasm" | "js",
  copied: boolean,
  tensors = 1,
  threads = 1,
  checked = false,
  rule: "radam" | "lion" = "radam",
): Contender {
  return {
    name,
    key,
    async setup(n) {
      const sizes = tensors === 1 ? [n] : mixedLayout(n, tensors);
      let state = await rectifiedState(backend, sizes, threads, checked, rule);
      if (threads > 1) {
        return { time: syncTimer(() => state = step(state)), dispose: () => dispose(state) };
      }
      if (!copied) return { time: syncTimer(() => state = step(state)) };
      const external: Record<string, Float32Array> = {};
      state.names.forEach((tensor, t) => {
        external[tensor] = Float32Array.from(state.grads[tensor], (_, i) => gradient(t, i));
      });
      return { time: syncTimer(() => state = step(state, external)) };
    },
  };
}

/**
 * The default check's read pass alone (the kernel's `nonFinite` over the gradient section of a
 * one-tensor arena, no step), on one thread or split over `threads` as a threaded state runs it:
 * with the "propagate" step's time on as many threads it gives the bound of any scheme that must
 * read every gradient before the first store, step / (step + check).
 */
function checkPassContender(threads = 1): Contender {
  return {
    name: `the default check's read pass alone (wasm, ${
      threads === 1 ? "1 thread" : `${threads} threads`
    }; no step)`,
    key: threads === 1 ? "check-pass" : "check-pass-threads",
    async setup(n) {
      const layout = planArena(["w"], [n]);
      const backend = threads === 1
        ? await createWasmBackend(layout)
        : await createThreadedWasmBackend(layout, threads);
      const g = backend.grads.w;
      for (let i = 0; i < n; i++) g[i] = gradient(0, i);
      return {
        time: syncTimer(() => {
          if (backend.gradsNonFinite()) throw new Error("a finite gradient was found non-finite");
        }),
        dispose: () => backend.dispose(),
      };
    },
  };
}

// deno-lint-ignore no-explicit-any
type Tf = any;
let tfModule: Promise<Tf | string> | undefined;

/** TensorFlow.js core with its cpu and wasm backends, or why it could not be loaded. */
function loadTf(): Promise<Tf | string> {
  tfModule ??= (async () => {
    try {
      const tf = await import("@tensorflow/tfjs-core");
      await import("@tensorflow/tfjs-backend-cpu");
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      const entry = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
      wasm.setWasmPaths(entry.pathname.replace(/[^/]*$/, ""));
      // tfjs prints a hint about tfjs-node on the cpu backend; it is not one of the contenders
      tf.env().set("IS_TEST", true);
      return tf;
    } catch (error) {
      return `TensorFlow.js did not load: ${(error as Error).message.split("\n")[0]}`;
    }
  })();
  return tfModule;
}

function tfContender(backendName: "wasm" | "cpu"): Contender {
  return {
    name: `TensorFlow.js Adam, ${backendName} backend`,
    key: `tfjs-${backendName}`,
    async setup(n) {
      const tf = await loadTf();
      if (typeof tf === "string") return tf;
      if (!(await tf.setBackend(backendName))) return `tfjs backend ${backendName} unavailable`;
      await tf.ready();
      const p = new Float32Array(n);
      const g = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        p[i] = Math.sin(i);
        g[i] = gradient(0, i);
      }
      try {
        const weights = tf.variable(tf.tensor1d(p));
        const grads = tf.tensor1d(g);
        const optimizer = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
        const named = { [weights.name]: grads };
        const stepOnce = () => optimizer.applyGradients(named);
        stepOnce();
        return {
          enter: async () => {
            await tf.setBackend(backendName);
          },
          time: syncTimer(stepOnce),
          dispose() {
            optimizer.dispose();
            weights.dispose();
            grads.dispose();
          },
        };
      } catch (error) {
        return `failed: ${(error as Error).message.split("\n")[0]}`;
      }
    },
  };
}

interface CVariant {
  name: string;
  key: string;
  flags: string[];
  threads: number;
}

const C_VARIANTS: CVariant[] = [
  { name: "C -O3 -msse4.2 (128-bit)", key: "c-sse", flags: ["-O3", "-msse4.2"], threads: 1 },
  { name: "C -O3 -march=native", key: "c-native", flags: ["-O3", "-march=native"], threads: 1 },
  {
    name: `C -O3 -march=native, OpenMP ${THREADS} threads`,
    key: "c-omp",
    flags: ["-O3", "-march=native", "-fopenmp"],
    threads: THREADS,
  },
];

/** Compiled C binaries by key, or why there are none. */
async function compileC(): Promise<Map<string, string> | string> {
  const source = new URL("radam_step.c", BENCH_DIR).pathname;
  // bench/build/ is git-ignored
  const dir = new URL("build", BENCH_DIR).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const binaries = new Map<string, string>();
  for (const variant of C_VARIANTS) {
    const out = `${dir}/${variant.key}`;
    try {
      const result = await new Deno.Command("cc", {
        // no fused multiply-add and no errno: the same f32 operations as the wasm kernel
        args: [...variant.flags, "-fno-math-errno", "-ffp-contract=off", "-o", out, source, "-lm"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!result.success) {
        console.error(`${variant.name}: ${new TextDecoder().decode(result.stderr).trim()}`);
        continue;
      }
      binaries.set(variant.key, out);
    } catch (error) {
      return `no C compiler (cc): ${(error as Error).message}`;
    }
  }
  return binaries;
}

function cContender(variant: CVariant, binaries: Map<string, string> | string): Contender {
  return {
    name: variant.name,
    key: variant.key,
    setup(n) {
      if (typeof binaries === "string") return Promise.resolve(binaries);
      const binary = binaries.get(variant.key);
      if (!binary) return Promise.resolve("did not compile");
      return Promise.resolve({
        async time(steps: number) {
          const result = await new Deno.Command(binary, {
            args: [String(n), String(steps)],
            env: { OMP_NUM_THREADS: String(variant.threads), OMP_PROC_BIND: "true" },
            stdout: "piped",
          }).output();
          if (!result.success) throw new Error(`${variant.name} failed at ${n}`);
          return Number(new TextDecoder().decode(result.stdout).split(" ")[0]);
        },
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Timing

interface Measure {
  /** Median seconds per step, or the reason there is none. */
  seconds?: number;
  note?: string;
}

/** Times every contender at size `n`, alternating them within each round. */
async function measureSize(n: number, contenders: Contender[]): Promise<Map<string, Measure>> {
  const results = new Map<string, Measure>();
  const runners: { contender: Contender; runner: Runner; steps: number; samples: number[] }[] = [];
  // the last size's memories are freed first (where run with --expose-gc); states are made, and
  // take their turns in each round, in random orders (bench/order.ts)
  collectGarbage();
  for (const index of shuffled(contenders.length, random)) {
    const contender = contenders[index];
    const runner = await contender.setup(n);
    if (typeof runner === "string") {
      results.set(contender.key, { note: runner });
      continue;
    }
    await runner.enter?.();
    const warm = await runner.time(1);
    const steps = Math.max(1, Math.min(100_000, Math.round(SAMPLE_SECONDS / warm)));
    runners.push({ contender, runner, steps, samples: warm > SLOW_STEP_SECONDS ? [warm] : [] });
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const k of shuffled(runners.length, random)) {
      const entry = runners[k];
      if (entry.samples.length > 0 && entry.samples[0] > SLOW_STEP_SECONDS) continue;
      await entry.runner.enter?.();
      entry.samples.push(await entry.runner.time(entry.steps));
    }
  }
  for (const { contender, runner, samples } of runners) {
    runner.dispose?.();
    const sorted = samples.toSorted((a, b) => a - b);
    results.set(contender.key, {
      seconds: sorted[Math.floor(sorted.length / 2)],
      note: samples.length === 1 ? "one sample (slow)" : undefined,
    });
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// Run

const binaries = await compileC();
if (typeof binaries === "string") console.error(`C baselines skipped: ${binaries}`);

const contenders: Contender[] = ([
  libraryContender("radam wasm, zero-copy gradients", "wasm", "wasm", false),
  libraryContender(
    'radam wasm, zero-copy, default nonFinite ("skip")',
    "wasm-skip",
    "wasm",
    false,
    1,
    1,
    true,
  ),
  libraryContender("radam wasm, copied-in gradients", "wasm-copy", "wasm", true),
  libraryContender(
    'radam wasm, copied-in, default nonFinite ("skip")',
    "wasm-copy-skip",
    "wasm",
    true,
    1,
    1,
    true,
  ),
  libraryContender("radam js", "js", "js", false),
  // Lion moves 20 bytes a parameter (p, g, m read; p, m written) to RAdam's 28.
  libraryContender(
    "lion wasm, zero-copy gradients",
    "lion-wasm",
    "wasm",
    false,
    1,
    1,
    false,
    "lion",
  ),
  libraryContender(
    `radam wasm, ${THREADS} threads (zero-copy)`,
    "wasm-threads",
    "wasm",
    false,
    1,
    THREADS,
  ),
  libraryContender(
    `radam wasm, ${THREADS} threads, default nonFinite ("skip")`,
    "wasm-threads-skip",
    "wasm",
    false,
    1,
    THREADS,
    true,
  ),
  checkPassContender(),
  checkPassContender(THREADS),
  tfContender("wasm"),
  tfContender("cpu"),
  ...C_VARIANTS.map((variant) => cContender(variant, binaries)),
] as Contender[]).filter((c) => !onlyArg || onlyArg.split(",").includes(c.key));

// power-of-two totals against 5% more (issue #15: sections 2^k bytes apart alias in the caches)
const CLIFF_SIZES: [string, number][] = [["16M", 2 ** 24], ["32M", 2 ** 25], ["64M", 2 ** 26]];
const CLIFF_SKEW = 1.05;
const cliffOnly = args.has("--cliff");
const runCliff = cliffOnly || (!quick && !args.has("--no-cliff"));
const cliffKinds = ([
  ["wasm", "radam wasm, zero-copy, 1 thread", 1],
  ["wasm-threads", `radam wasm, zero-copy, ${THREADS} threads`, THREADS],
] as const).filter(([key]) => !onlyArg || onlyArg.split(",").includes(key));

/** A contender that runs at size `n` whatever size it is set up at. */
function atSize(contender: Contender, n: number): Contender {
  return { ...contender, setup: () => contender.setup(n) };
}

/** Per size of CLIFF_SIZES: each kind's measure at 2^k and at 2^k × CLIFF_SKEW. */
const cliff = new Map<string, Map<string, Measure>>();
if (runCliff) {
  for (const [label, n] of CLIFF_SIZES) {
    console.error(`measuring ${label} against ${label} × ${CLIFF_SKEW} …`);
    const skewed = Math.round(n * CLIFF_SKEW);
    const pair = cliffKinds.flatMap(([key, name, threads]) => [
      atSize(libraryContender(name, `${key}@pow2`, "wasm", false, 1, threads), n),
      atSize(libraryContender(name, `${key}@skew`, "wasm", false, 1, threads), skewed),
    ]);
    // alternated within each round (in random orders), as every other size
    cliff.set(label, await measureSize(n, pair));
  }
}

const table = new Map<string, Map<string, Measure>>();
for (const [label, n] of cliffOnly ? [] : SIZES) {
  console.error(`measuring ${label} (${n} parameters)…`);
  table.set(label, await measureSize(n, contenders));
}

// many-tensor model against one tensor of the same total size
const MANY_SIZE = 4_194_304;
const manyContenders = [
  libraryContender("wasm, 1 tensor of 4M", "one", "wasm", false),
  libraryContender("wasm, 200 tensors totalling 4M", "many", "wasm", false, 200),
  libraryContender("wasm copied-in, 1 tensor of 4M", "one-copy", "wasm", true),
  libraryContender("wasm copied-in, 200 tensors totalling 4M", "many-copy", "wasm", true, 200),
];
if (!cliffOnly) console.error("measuring the 200-tensor model…");
const many = cliffOnly ? new Map<string, Measure>() : await measureSize(MANY_SIZE, manyContenders);

// ---------------------------------------------------------------------------------------------
// Report

const rate = (m: Measure | undefined, n: number) => m?.seconds ? n / m.seconds : undefined;
const fmtRate = (r: number | undefined) =>
  r === undefined ? "—" : r >= 1e9 ? `${(r / 1e9).toFixed(2)} G` : `${(r / 1e6).toFixed(1)} M`;
const fmtRatio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? "—" : `${(a / b).toFixed(2)}×`;

const lines: string[] = [];
lines.push(
  "| contender | " + SIZES.map(([l]) => l).join(" | ") + " |",
  "|---|" + SIZES.map(() => "---:").join("|") + "|",
);
for (const c of contenders) {
  const cells = SIZES.map(([label, n]) => {
    const m = table.get(label)?.get(c.key);
    return m?.seconds ? fmtRate(rate(m, n)) : `— (${m?.note ?? "n/a"})`;
  });
  lines.push(`| ${c.name} | ${cells.join(" | ")} |`);
}
const throughputTable = lines.join("\n");

const ratioRows: [string, string, string][] = [
  ["wasm / C -msse4.2", "wasm", "c-sse"],
  ["wasm / C -march=native", "wasm", "c-native"],
  ["wasm copied-in / C -msse4.2", "wasm-copy", "c-sse"],
  ['wasm default nonFinite ("skip") / "propagate", zero-copy', "wasm-skip", "wasm"],
  ['wasm default nonFinite ("skip") / "propagate", copied-in', "wasm-copy-skip", "wasm-copy"],
  [
    `wasm ${THREADS} threads default nonFinite ("skip") / "propagate"`,
    "wasm-threads-skip",
    "wasm-threads",
  ],
  ["wasm / js", "wasm", "js"],
  ["wasm / TensorFlow.js wasm", "wasm", "tfjs-wasm"],
  ["wasm / TensorFlow.js cpu", "wasm", "tfjs-cpu"],
  [
    "C -march=native / TensorFlow.js wasm (the most any kernel could lead by)",
    "c-native",
    "tfjs-wasm",
  ],
  ["wasm / C OpenMP (all cores)", "wasm", "c-omp"],
  [`wasm ${THREADS} threads / C OpenMP ${THREADS} threads`, "wasm-threads", "c-omp"],
  [`wasm ${THREADS} threads / wasm 1 thread`, "wasm-threads", "wasm"],
  ["lion wasm / radam wasm (bytes moved: 28 / 20 = 1.4)", "lion-wasm", "wasm"],
];
const ratioLines = [
  "| ratio (params/s) | " + SIZES.map(([l]) => l).join(" | ") + " |",
  "|---|" + SIZES.map(() => "---:").join("|") + "|",
];
const ratioOf = (label: string, n: number, a: string, b: string) =>
  [rate(table.get(label)?.get(a), n), rate(table.get(label)?.get(b), n)] as const;
for (const [title, a, b] of ratioRows) {
  const cells = SIZES.map(([label, n]) => fmtRatio(...ratioOf(label, n, a, b)));
  ratioLines.push(`| ${title} | ${cells.join(" | ")} |`);
}
const ratioTable = ratioLines.join("\n");

const manyRate = (key: string) => rate(many.get(key), MANY_SIZE);
const manyTable = [
  "| layout | params/s | ratio to one tensor |",
  "|---|---:|---:|",
  ...manyContenders.map((c) => {
    const base = c.key.endsWith("copy") ? "one-copy" : "one";
    return `| ${c.name} | ${fmtRate(manyRate(c.key))} | ${
      fmtRatio(manyRate(c.key), manyRate(base))
    } |`;
  }),
].join("\n");

const cliffLines = [
  `| size | ${
    cliffKinds.map(([, name]) => `${name}: 2^k | × ${CLIFF_SKEW} | ratio`).join(" | ")
  } |`,
  "|---|" + cliffKinds.map(() => "---:|---:|---:").join("|") + "|",
];
/** 2^k rate / 2^k × CLIFF_SKEW rate of one kind at one size. */
const cliffRatio = (label: string, n: number, key: string) => {
  const m = cliff.get(label);
  const a = rate(m?.get(`${key}@pow2`), n);
  const b = rate(m?.get(`${key}@skew`), Math.round(n * CLIFF_SKEW));
  return [a, b] as const;
};
for (const [label, n] of runCliff ? CLIFF_SIZES : []) {
  const cells = cliffKinds.map(([key]) => {
    const [a, b] = cliffRatio(label, n, key);
    return `${fmtRate(a)} | ${fmtRate(b)} | ${fmtRatio(a, b)}`;
  });
  cliffLines.push(`| ${label} | ${cells.join(" | ")} |`);
}
const cliffTable = cliffLines.join("\n");

// targets
type Verdict = { target: string; met: boolean | undefined; detail: string };
const verdicts: Verdict[] = [];
/** Adds the verdict of `target` (every pair's ratio ≥ `bound`) and returns it. */
function check(
  target: string,
  pairs: [string, number, string, string][],
  bound: number,
): Verdict {
  const values = pairs.map(([label, n, a, b]) => {
    const [x, y] = table.has(label) ? ratioOf(label, n, a, b) : [undefined, undefined];
    return { label, ratio: x !== undefined && y !== undefined ? x / y : undefined };
  });
  const known = values.filter((v) => v.ratio !== undefined);
  const verdict = {
    target,
    met: known.length === 0 ? undefined : known.every((v) => v.ratio! >= bound),
    detail: values.map((v) => `${v.label} ${v.ratio?.toFixed(2) ?? "—"}×`).join(", "),
  };
  verdicts.push(verdict);
  return verdict;
}
const sizesFrom = (min: number) => SIZES.filter(([, n]) => n >= min);
check(
  "wasm ≥ 0.9× C -msse4.2 at every size ≥ 256K",
  sizesFrom(262_144).map(([l, n]) => [l, n, "wasm", "c-sse"]),
  0.9,
);
check(
  "wasm ≥ 0.9× C -march=native where memory is the bound (64M)",
  SIZES.filter(([l]) => l === "64M").map(([l, n]) => [l, n, "wasm", "c-native"]),
  0.9,
);
{
  const verdict = check(
    `wasm on ${THREADS} threads ≥ 0.85× C OpenMP on ${THREADS} threads at 16M and 64M (4M reported)`,
    SIZES.filter(([l]) => l === "16M" || l === "64M").map((
      [l, n],
    ) => [l, n, "wasm-threads", "c-omp"]),
    0.85,
  );
  const at4m = SIZES.find(([l]) => l === "4M");
  if (at4m) {
    const [x, y] = ratioOf("4M", at4m[1], "wasm-threads", "c-omp");
    verdict.detail += `; 4M ${x !== undefined && y !== undefined ? (x / y).toFixed(2) : "—"}×`;
  }
}
{
  // The default's rows, each with the bound of a separate read pass from this run's own
  // figures: step / (step + check).
  const at = SIZES.filter(([l]) => l === "4M" || l === "64M");
  const bound = (label: string, n: number, key: string, checkKey: string) => {
    const stepRate = rate(table.get(label)?.get(key), n);
    const checkRate = rate(table.get(label)?.get(checkKey), n);
    if (stepRate === undefined || checkRate === undefined) return "—";
    return `${(checkRate / (stepRate + checkRate)).toFixed(2)}×`;
  };
  // [target, default's key, "propagate" key, check pass key, how the bound is introduced]
  const rows: [string, string, string, string, string][] = [
    [
      'default nonFinite ("skip") ≥ 0.9× "propagate" at 4M and 64M (wasm zero-copy, 1 thread)',
      "wasm-skip",
      "wasm",
      "check-pass",
      "bound of a read pass before the step, this run",
    ],
    [
      "the same, copied-in gradients",
      "wasm-copy-skip",
      "wasm-copy",
      "check-pass",
      "the same bound",
    ],
    [
      `the same, ${THREADS} threads (zero-copy)`,
      "wasm-threads-skip",
      "wasm-threads",
      "check-pass-threads",
      `the bound on ${THREADS} threads, from their own check pass`,
    ],
  ];
  for (const [target, skipKey, key, checkKey, intro] of rows) {
    const verdict = check(target, at.map(([l, n]) => [l, n, skipKey, key]), 0.9);
    verdict.detail += ` (${intro}: ${
      at.map(([l, n]) => `${l} ${bound(l, n, key, checkKey)}`).join(", ")
    })`;
  }
}
check(
  "wasm ≥ 10× TensorFlow.js Adam (wasm backend) at every size",
  SIZES.map(([l, n]) => [l, n, "wasm", "tfjs-wasm"]),
  10,
);
{
  const r = manyRate("many")! / manyRate("one")!;
  verdicts.push({
    target: "200-tensor model within 1.1× of one tensor of the same size (zero-copy)",
    met: Number.isFinite(r) ? r >= 1 / 1.1 : undefined,
    detail: `${r.toFixed(2)}× the one-tensor rate (copied-in: ${
      (manyRate("many-copy")! / manyRate("one-copy")!).toFixed(2)
    }×)`,
  });
}
if (runCliff) {
  const values = CLIFF_SIZES.flatMap(([label, n]) =>
    cliffKinds.map(([key, , threads]) => {
      const [a, b] = cliffRatio(label, n, key);
      return { what: `${label} ${threads}T`, ratio: a && b ? a / b : undefined };
    })
  );
  const known = values.filter((v) => v.ratio !== undefined);
  verdicts.push({
    target:
      `no cliff: wasm at 2^k ≥ 0.9× wasm at 2^k × ${CLIFF_SKEW} (16M, 32M, 64M; 1 and ${THREADS} threads)`,
    met: known.length === 0 ? undefined : known.every((v) => v.ratio! >= 0.9),
    detail: values.map((v) => `${v.what} ${v.ratio?.toFixed(2) ?? "—"}×`).join(", "),
  });
}
const verdictTable = [
  "| target | met | ratios |",
  "|---|---|---|",
  ...verdicts.map((v) =>
    `| ${v.target} | ${
      v.met === undefined ? "not measured" : v.met ? "yes" : "**no**"
    } | ${v.detail} |`
  ),
].join("\n");

const when = new Date().toISOString().replace(/\.\d+Z$/, "Z");
const report = `# Benchmark results

Generated by \`deno task bench\` (bench/compare.ts) on ${when}.

Machine: ${machine()}.

One RAdam step on the rectified (adaptive) path; TensorFlow.js has no RAdam, so its Adam
(\`tf.train.adam\`, same memory traffic: read params, grads, two moments; write params and two
moments) stands in. C is bench/radam_step.c, the same f32 operations in the same order (no
fused multiply-add), compiled by \`cc\`. Each figure is the median over ${ROUNDS} rounds, each
in a new random order (seed ${seedArg ?? 1}), of the mean step time within a round (≈${
  SAMPLE_SECONDS * 1e3
} ms of steps);
ratios come from this one run.

## Throughput (parameters per second)

${throughputTable}

![throughput against size](throughput.svg)

## Ratios

${ratioTable}

## Many tensors: 200 tensors of mixed sizes (transformer-like) against one, 4M parameters

${manyTable}

## Power-of-two sizes (no cliff)

The same zero-copy step at 2^k parameters and at 2^k × ${CLIFF_SKEW}, alternated in one
measurement: the arena's sections of a power-of-two total must not alias in the caches
(base/arena.ts \`sectionStride\`).

${runCliff ? cliffTable : "Not measured in this run (--quick or --no-cliff)."}

## Targets

${verdictTable}

What limits the missed targets, the instruction counts of the kernel, relaxed SIMD and the
\`threads\` option: see [ANALYSIS.md](ANALYSIS.md) (written by hand, not by this script).
`;

if (cliffOnly) {
  console.log(`Machine: ${machine()}.\n\n${cliffTable}\n\n${verdicts.at(-1)?.detail ?? ""}`);
} else {
  console.log(
    [throughputTable, ratioTable, manyTable, runCliff ? cliffTable : "", verdictTable].join("\n\n"),
  );
}

if (!args.has("--no-write") && !cliffOnly) {
  // Sections other scripts write (<!-- BEGIN name --> … <!-- END name -->) are kept.
  const previous = await Deno.readTextFile(new URL("RESULTS.md", BENCH_DIR)).catch(() => "");
  const kept = previous.match(/<!-- BEGIN (\S+) -->[\s\S]*?<!-- END \1 -->/g) ?? [];
  await Deno.writeTextFile(
    new URL("RESULTS.md", BENCH_DIR),
    kept.length > 0 ? `${report.trimEnd()}\n\n${kept.join("\n\n")}\n` : report,
  );
  // the check pass is not a step: left out of the chart
  const series = contenders.filter((c) => !c.key.startsWith("check-pass")).map((c) => ({
    name: c.name,
    points: SIZES.flatMap(([label, n]) => {
      const r = rate(table.get(label)?.get(c.key), n);
      return r === undefined ? [] : [{ x: n, y: r }];
    }),
  })).filter((s) => s.points.length > 0);
  await Deno.writeTextFile(
    new URL("throughput.svg", BENCH_DIR),
    writeSvgChart(series, {
      title: "RAdam step throughput",
      xLabel: "parameters",
      yLabel: "parameters per second",
    }),
  );
  console.error("wrote bench/RESULTS.md and bench/throughput.svg");
}
