/**
 * Side-by-side step throughput: this library against what a user would pick instead
 * (TensorFlow.js Adam on its wasm and cpu backends) and against the same update in C (the
 * practical limit of the machine). `deno task bench` runs it; it prints a table and writes
 * bench/RESULTS.md and bench/throughput.svg. `deno task bench --help` lists its flags.
 *
 * Every contender runs at every size in the same process run, several rounds, each round in a
 * new random order (and the states made in one); a figure is the median over rounds of the mean
 * step time within a round. Ratios therefore come from one run, on one machine, under the same
 * load.
 *
 * The parts, in bench/compare/: `contenders.ts` (who runs, in table order; every rule of the
 * registry gets a row through `rule_rows.ts`, the one place that reads it), `library.ts`,
 * `tfjs.ts` and `c_baseline.ts` (each kind of contender), `timing.ts` (rounds and orders),
 * `tables.ts`, `targets.ts` and `report.ts` (what is printed and written).
 *
 * @module
 */
import { defineFlags, readFlags } from "./_flags.ts";
import { seeded } from "./order.ts";
import { compileC, cVariants } from "./compare/c_baseline.ts";
import {
  CLIFF_SIZES,
  CLIFF_SKEW,
  cliffPair,
  contenderKeys,
  type Lineup,
  lineup,
  MANY_SIZE,
} from "./compare/contenders.ts";
import { report } from "./compare/report.ts";
import type { Cliff, Results } from "./compare/tables.ts";
import { type Measure, measureSize, type Size, type Timing } from "./compare/timing.ts";

const ALL_SIZES: Size[] = [
  ["4K", 4096],
  ["256K", 262_144],
  ["4M", 4_194_304],
  ["16M", 16_777_216],
  ["64M", 67_108_864],
];
const THREADS = navigator.hardwareConcurrency;

const FLAGS = defineFlags({
  quick: {
    type: "boolean",
    help: "3 rounds of shorter samples, sizes up to 4M, no power-of-two section",
  },
  sizes: {
    type: "strings",
    choices: ALL_SIZES.map(([label]) => label),
    help: "the sizes to time: all by default, 4K,256K,4M with --quick",
  },
  only: {
    type: "strings",
    choices: contenderKeys(THREADS),
    help: "only these contenders, by key",
  },
  rounds: { type: "number", min: 1, whole: true, help: "rounds: 7, or 3 with --quick" },
  seed: { type: "number", whole: true, default: 1, help: "the seed of the random orders" },
  "no-write": {
    type: "boolean",
    help: "print the tables only; write neither bench/RESULTS.md nor bench/throughput.svg",
  },
  cliff: {
    type: "boolean",
    help: "only the power-of-two section, printed, nothing written",
  },
  "no-cliff": { type: "boolean", help: "without the power-of-two section" },
});

const flags = readFlags(FLAGS, {
  command: "deno task bench [flags]",
  summary:
    "Times one step of this library, TensorFlow.js Adam and the same update in C, at 4K to\n" +
    "64M parameters; prints the tables and writes bench/RESULTS.md and bench/throughput.svg.",
});
const quick = flags.quick;
const sizes = flags.sizes
  ? ALL_SIZES.filter(([label]) => flags.sizes!.includes(label))
  : quick
  ? ALL_SIZES.slice(0, 3)
  : ALL_SIZES;
const timing: Timing = {
  rounds: flags.rounds ?? (quick ? 3 : 7),
  sampleSeconds: quick ? 0.05 : 0.1,
  random: seeded(flags.seed),
};
const cliffOnly = flags.cliff;
const runCliff = cliffOnly || (!quick && !flags["no-cliff"]);

/** Times the powers of two, then every size, then the many-tensor model, in that order. */
async function measureAll(who: Lineup): Promise<Results> {
  let cliff: Cliff | undefined;
  if (runCliff) {
    cliff = { sizes: CLIFF_SIZES, kinds: who.cliffKinds, measures: new Map() };
    for (const [label, n] of CLIFF_SIZES) {
      console.error(`measuring ${label} against ${label} × ${CLIFF_SKEW} …`);
      const pairs = who.cliffKinds.flatMap((kind) => cliffPair(kind, n));
      // alternated within each round (in random orders), as every other size
      cliff.measures.set(label, await measureSize(n, pairs, timing));
    }
  }
  const table = new Map<string, Map<string, Measure>>();
  for (const [label, n] of cliffOnly ? [] : sizes) {
    console.error(`measuring ${label} (${n} parameters)…`);
    table.set(label, await measureSize(n, who.contenders, timing));
  }
  // the many-tensor model against one tensor of the same total size
  if (!cliffOnly) console.error("measuring the 200-tensor model…");
  const manyMeasures = cliffOnly ? new Map() : await measureSize(MANY_SIZE, who.many, timing);
  return {
    sizes,
    threads: THREADS,
    contenders: who.contenders,
    table,
    many: who.many,
    manySize: MANY_SIZE,
    manyMeasures,
    cliff,
  };
}

const variants = cVariants(THREADS);
const binaries = await compileC(variants, flags.only);
if (typeof binaries === "string") console.error(`C baselines skipped: ${binaries}`);
const results = await measureAll(lineup(THREADS, variants, binaries, flags.only));
await report(results, {
  rounds: timing.rounds,
  seed: flags.seed,
  sampleSeconds: timing.sampleSeconds,
}, {
  cliffOnly,
  write: !flags["no-write"] && !cliffOnly,
});
